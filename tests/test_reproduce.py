"""The paper's published numbers (data/paper_numbers.csv) against Morph's, each within its stated tolerance.

Every tolerance is written next to its number in the data file, with the
reason; ``morph.reproduce`` explains how the reasons were measured. These
tests hold on any CPU: they run in CI once with numpy's AVX-512 kernels and
once without them.
"""

from __future__ import annotations

import json
import math

import pytest

from morph.cli import main
from morph.errors import DataError
from morph.reproduce import PAPER_NUMBERS_FILE, load_published, perturbation_spread, reproduce

PUBLISHED = load_published()


@pytest.fixture(scope="module")
def reproduction():
    return reproduce()


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def test_the_file_covers_every_kind_of_published_number():
    kinds = {n.key.split("/")[0] for n in PUBLISHED}
    assert kinds == {"mse", "r2", "param", "sign", "relerr_1b", "spearman_1b", "selection_first", "latency", "speedup"}
    assert sum(n.key.startswith(("mse/", "r2/")) for n in PUBLISHED) == 14  # the 7-row table of section 5
    assert sum(n.key.startswith("relerr_1b/") for n in PUBLISHED) == 8
    for number in PUBLISHED:
        assert number.source and number.tolerance_why and number.quantity, number.key


@pytest.mark.parametrize("number", PUBLISHED, ids=[n.key for n in PUBLISHED])
def test_published_number_is_reproduced_within_its_tolerance(reproduction, number):
    row = next(r for r in reproduction.rows if r.key == number.key)
    assert row.paper == number.paper
    if number.is_number:
        assert abs(float(row.computed) - float(number.paper)) <= number.tolerance, row
        assert row.difference is not None and abs(row.difference) <= number.tolerance
    else:
        assert row.computed == number.paper
    assert row.ok


def test_every_number_matches(reproduction):
    assert reproduction.all_ok and reproduction.mismatches == []
    assert reproduction.summary() == f"{len(PUBLISHED)} of {len(PUBLISHED)} numbers match the paper within their tolerance"


@pytest.mark.parametrize("number", [n for n in PUBLISHED if n.tolerance_why.startswith("every printed digit")],
                         ids=lambda n: n.key)
def test_every_printed_digit_means_half_a_unit_of_the_last_one(number):
    assert number.tolerance == pytest.approx(0.5 * 10.0 ** -_decimals(number.paper), rel=1e-12)


def test_well_conditioned_fits_keep_every_printed_digit():
    """Fit B, fit T1 (inference-efficient) and the non-equal law: MSE and R^2 to every digit the paper prints."""
    for fit_set, law, variant in (("B", "inference-efficient", "tied"), ("B", "chinchilla", "tied"),
                                  ("T1", "inference-efficient", "tied"), ("B", "inference-efficient", "nonequal")):
        for kind in ("mse", "r2"):
            number = next(n for n in PUBLISHED if n.key == f"{kind}/{fit_set}/{law}/{variant}")
            assert number.tolerance == 0.5 * 10.0 ** -_decimals(number.paper), number.key


def test_fit_a_is_held_to_the_four_decimals_its_conditioning_supports():
    fit_a = [n for n in PUBLISHED if n.key.startswith(("mse/A/", "r2/A/"))]
    assert len(fit_a) == 4
    for number in fit_a:
        assert number.tolerance == 5e-5 and "4 decimals" in number.tolerance_why


@pytest.mark.slow
def test_tolerances_cover_a_last_bit_change_of_the_data(reproduction):
    """Refits with every loss changed by up to 4 machine epsilons stay within each tolerance."""
    spread = perturbation_spread(n_perturbations=10, seed=7)
    for row in reproduction.rows:
        if row.tolerance is not None:
            assert abs(row.difference) + spread[row.key] <= row.tolerance, (row.key, spread[row.key])


def test_cli_report_and_json(capsys):
    assert main(["reproduce"]) == 0
    out = capsys.readouterr().out
    assert f"{len(PUBLISHED)} of {len(PUBLISHED)} numbers match" in out
    for text in ("0.998237", "-2.125895", "54753.967", "1B_v8 (12x3072)", "3.61", "1.96"):
        assert text in out
    assert main(["reproduce", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["all_ok"] and payload["n"] == payload["n_ok"] == len(PUBLISHED)
    assert {"quantity", "paper", "computed", "tolerance", "ok", "tolerance_why", "source"} <= set(payload["rows"][0])


def test_cli_exits_1_on_a_mismatch(tmp_path, capsys):
    from morph.data import data_dir

    text = (data_dir() / PAPER_NUMBERS_FILE).read_text()
    wrong = tmp_path / "numbers.csv"
    assert text.count(",0.998237,") == 1
    wrong.write_text(text.replace(",0.998237,", ",0.998337,"))  # one digit off
    assert main(["reproduce", "--numbers", str(wrong)]) == 1
    out = capsys.readouterr().out
    assert "NO" in out and f"{len(PUBLISHED) - 1} of {len(PUBLISHED)} numbers match" in out


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace(",5e-07,", ",-1,", 1), "must be a positive number or empty"),
    (lambda t: t.replace("tolerance_why,", "why,", 1), "missing the column(s) tolerance_why"),
    (lambda t: t + t.splitlines()[1] + "\n", "repeats the key"),
])
def test_a_malformed_numbers_file_is_one_clear_error(tmp_path, capsys, edit, message):
    from morph.data import data_dir

    path = tmp_path / "numbers.csv"
    path.write_text(edit((data_dir() / PAPER_NUMBERS_FILE).read_text()))
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_published(path)
    assert main(["reproduce", "--numbers", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00binary", None])
def test_an_unreadable_numbers_file_exits_2(tmp_path, capsys, content):
    path = tmp_path / "numbers.csv"
    if content is not None:
        path.write_bytes(content)
    assert main(["reproduce", "--numbers", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("morph: error:") and err.count("\n") == 1


def test_unknown_key_is_a_clear_error(tmp_path):
    from morph.data import data_dir

    path = tmp_path / "numbers.csv"
    path.write_text((data_dir() / PAPER_NUMBERS_FILE).read_text().replace("speedup/", "slowdown/"))
    with pytest.raises(DataError, match="unknown kind of number 'slowdown'"):
        reproduce(path)


def test_speedup_is_the_ratio_of_the_two_timings(reproduction):
    rows = {r.key: r for r in reproduction.rows}
    ratio = float(rows["latency/24x2048"].computed) / float(rows["latency/12x3072"].computed)
    assert math.isclose(float(rows["speedup/12x3072/24x2048"].computed), ratio, rel_tol=1e-3)
    assert math.isclose(ratio, 3.61 / 1.96, rel_tol=1e-4)  # the published timings, 1.84
