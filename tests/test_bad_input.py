"""Bad input, fuzzed: every table loads with its documented meaning or fails with one clear line.

The corpus in tests/corpus/ holds one small file per kind of trouble; the
100,000-row and random-bytes cases are generated here. Each case goes through
the loader, the fitters and the ``morph fit`` command line, with a bound on
time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morph import DataError, FitError, MorphError, fit, load_runs, preset
from morph.cli import main
from morph.latency import predict_latency, roofline_latency

CORPUS = Path(__file__).parent / "corpus"
#: Seconds any single case may take through the CLI (interpreter start included).
CLI_BOUND_S = 30.0

# file -> ("ok", first N, number of rows) or ("error", words of the one-line message)
EXPECTED: dict[str, tuple] = {
    "empty.csv": ("error", "is empty"),
    "blank-lines.csv": ("error", "is empty"),
    "header-only.csv": ("error", "has a header but no rows"),
    "pipe-delimited.csv": ("error", "single column named 'N|D|loss'"),
    "semicolon.csv": ("ok", 1e8, 2),
    "tab.csv": ("ok", 1e8, 2),
    "bom.csv": ("ok", 1e8, 2),
    "latin1.csv": ("error", "is not UTF-8 text"),
    "binary.png.csv": ("error", "is not UTF-8 text"),
    "quoted-numbers.csv": ("ok", 1e8, 2),
    "scientific.csv": ("ok", 1e8, 2),
    "thousands.csv": ("ok", 1e8, 2),
    "thousands-unquoted.csv": ("error", "row 1 has 5 fields but the header has 3"),
    "inf.csv": ("error", "column 'loss', row 1 holds 'inf', which is not a finite number"),
    "nan.csv": ("error", "column 'loss', row 1 holds 'NaN', which is not a finite number"),
    "empty-cell.csv": ("error", "column 'loss', row 1 is empty"),
    "negative.csv": ("error", "column 'N', row 1 is -1e+08; it must be greater than zero"),
    "zero.csv": ("error", "column 'D', row 1 is 0; it must be greater than zero"),
    "huge.csv": ("ok", 1e300, 5),
    "overflow.csv": ("error", "column 'N', row 1 holds '1e999', which is not a finite number"),
    "duplicated-column.csv": ("error", "column 'N' appears more than once"),
    "trailing-comma.csv": ("error", "column 4 of the header has no name"),
    "duplicated-row.csv": ("error", "row 2 repeats row 1 exactly"),
    "short-row.csv": ("error", "row 1 has 2 fields but the header has 3"),
    "text-in-number.csv": ("error", "holds 'two billion', which is not a finite number"),
    "aliases.csv": ("ok", 1e8, 1),
    "crlf.csv": ("ok", 1e8, 2),
    "wrong-columns.csv": ("error", "missing the column(s) N or params, D or tokens, loss"),
    "perplexity.csv": ("error", "column 'loss', row 1 is 120.5, above 50 nats per token; is it a perplexity?"),
}


def test_corpus_and_expectations_match():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_on_the_corpus(name):
    expected = EXPECTED[name]
    path = CORPUS / name
    if expected[0] == "ok":
        frame = load_runs(path)
        assert frame["N"].iloc[0] == expected[1] and len(frame) == expected[2]
        assert np.isfinite(frame[["N", "D", "loss"]].to_numpy()).all()
    else:
        with pytest.raises(DataError) as info:
            load_runs(path)
        message = str(info.value)
        assert expected[1] in message and "\n" not in message and message.startswith(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_on_the_corpus_is_bounded_and_never_a_traceback(name):
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "morph", "fit", str(CORPUS / name), "--law", "chinchilla", "--json"],
        capture_output=True, text=True, timeout=CLI_BOUND_S,
    )
    elapsed = time.perf_counter() - start
    assert elapsed < CLI_BOUND_S
    assert "Traceback" not in out.stderr
    if out.returncode == 0:
        payload = json.loads(out.stdout)
        assert all(np.isfinite(payload["predictions"]))
    else:
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.startswith("morph: error: ") and out.stderr.count("\n") == 1
    if EXPECTED[name][0] == "error":
        assert out.returncode == 2 and EXPECTED[name][1] in out.stderr


def test_huge_values_fit_without_overflow():
    result = fit(CORPUS / "huge.csv", "chinchilla", "tied", method="robust")
    assert np.all(np.isfinite(result.predictions))


def test_one_hundred_thousand_rows(tmp_path):
    rng = np.random.default_rng(0)
    n = 100_000
    N = 10 ** rng.uniform(7, 10, n)
    D = N * 10 ** rng.uniform(0.5, 3, n)
    loss = preset("besiroglu2024").predict(N, D) * np.exp(rng.normal(0, 0.01, n))
    path = tmp_path / "big.csv"
    pd.DataFrame({"N": N, "D": D, "loss": loss}).to_csv(path, index=False)
    start = time.perf_counter()
    frame = load_runs(path)
    assert len(frame) == n and time.perf_counter() - start < 15
    start = time.perf_counter()
    result = fit(frame, "chinchilla", "untied", method="robust")
    assert time.perf_counter() - start < 60
    assert result.params["alpha"] == pytest.approx(0.3478, rel=0.02)


def test_a_table_with_100000_columns_is_refused_before_parsing(tmp_path, capsys):
    header = ",".join(["N", "D", "loss"] + [f"c{i}" for i in range(100_000 - 3)])
    row = ",".join(["1e9", "2e10", "2.5"] + ["0"] * (100_000 - 3))
    path = tmp_path / "wide.csv"
    path.write_text(header + "\n" + row + "\n")
    with pytest.raises(DataError, match="wide.csv has 100,000 columns; a table of runs has at most 1,000"):
        load_runs(path)
    assert main(["fit", str(path), "--law", "chinchilla"]) == 2
    assert capsys.readouterr().err.strip() == (
        "morph: error: wide.csv has 100,000 columns; a table of runs has at most 1,000")


def test_a_table_with_too_many_cells_is_refused_before_parsing():
    # 20 columns x 100,001 lines: 2,000,020 cells, just over the 2,000,000 read.
    text = ",".join(f"c{i}" for i in range(20)) + "\n" + (",".join(["1"] * 20) + "\n") * 100_000
    with pytest.raises(DataError, match=r"^the table has about 2,000,0\d\d cells; at most 2,000,000 are read"):
        load_runs(text.encode())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_load_or_fail_clearly(raw):
    try:
        frame = load_runs(raw)
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert np.isfinite(frame[["N", "D", "loss"]].to_numpy()).all()
        assert (frame[["N", "D", "loss"]].to_numpy() > 0).all()


_cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**20, 10**20).map(str),
    st.sampled_from(["", "nan", "inf", "-0", "1e999", "1,000", '"2,000,000"', "abc", " 3 ", "1_000", "0x10"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_cell, _cell, _cell), min_size=0, max_size=12))
def test_random_tables_through_the_fitters(rows):
    text = "N,D,loss\n" + "\n".join(",".join(r) for r in rows)
    try:
        frame = load_runs(text.encode())
    except DataError as exc:
        assert "\n" not in str(exc)
        return
    for method in ("paper", "robust"):
        try:
            result = fit(frame, "chinchilla", "tied", method=method)
        except FitError as exc:
            assert "\n" not in str(exc)
        else:
            assert result.law is not None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_random_text_through_the_cli(text, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text(text, encoding="utf-8")
    status = main(["fit", str(path), "--law", "chinchilla", "--json"])
    err = capsys.readouterr().err
    assert status in (0, 2) and "Traceback" not in err
    if status == 2:
        assert err.count("\n") == 1


# -- numerical faults ---------------------------------------------------------------------

LAW = preset("besiroglu2024")


def _frame(N, D, noise=0.0, seed=0):
    N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
    loss = LAW.predict(N, D) * np.exp(np.random.default_rng(seed).normal(0, noise, N.size))
    return pd.DataFrame({"N": N, "D": D, "loss": loss})


DEGENERATE = {
    "one N": (_frame(1e9, np.geomspace(1e9, 1e12, 12), 0.005), "same N"),
    "one D": (_frame(np.geomspace(1e7, 1e10, 12), 1e11, 0.005), "same D"),
    "collinear D = 20 N": (_frame(np.geomspace(1e7, 1e10, 12), 20 * np.geomspace(1e7, 1e10, 12), 0.005),
                           "tokens per parameter"),
}


@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("method", ["paper", "robust"])
def test_degenerate_designs_end_with_a_warning_or_an_error_about_the_data(case, method):
    frame, words = DEGENERATE[case]
    try:
        result = fit(frame, "chinchilla", "untied", method=method)
    except FitError as exc:
        assert "\n" not in str(exc)
        return
    assert any(words in w for w in result.warnings), result.warnings
    assert np.all(np.isfinite(result.predictions))


def test_two_points_are_refused_with_the_reason():
    with pytest.raises(FitError, match="2 fit points cannot determine the 4 free parameters"):
        fit(_frame([1e8, 1e9], [1e10, 1e11]), "chinchilla", "tied")


def test_outliers_do_not_derail_the_robust_fit():
    N = np.geomspace(1e7, 1e10, 30)
    frame = _frame(np.repeat(N, 3), np.tile([1e10, 1e11, 1e12], 30), 0.003)
    frame.loc[[3, 40, 77], "loss"] *= [3.0, 0.5, 10.0]
    result = fit(frame, "chinchilla", "untied", method="robust")
    assert result.params["E"] == pytest.approx(LAW.E, rel=0.05)


_layers = st.integers(1, 1024)
_width = st.integers(1, 1024).map(lambda k: 64 * k)


@settings(max_examples=200, deadline=None)
@given(layers=_layers, width=_width, batch=st.integers(1, 1024), prompt=st.integers(1, 32768),
       output=st.integers(1, 100_000),
       hardware=st.sampled_from(["a100-40gb", "a100-80gb", "a30", "h100-sxm", "h100-pcie", "h200", "l4",
                                 "rtx-4090", "cpu"]))
def test_latency_model_is_finite_at_every_extreme(layers, width, batch, prompt, output, hardware):
    dtype = "fp32" if hardware == "cpu" else "bf16"
    p = predict_latency(layers, width, hardware=hardware, batch=batch, input_tokens=prompt,
                        output_tokens=output, dtype=dtype)
    values = np.array([p.latency_s, p.prefill_s, p.ms_per_token, p.tokens_per_s, p.roofline_s], dtype=float)
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert float(p.latency_s) >= float(roofline_latency(layers, width, hardware=hardware, batch=batch,
                                                        input_tokens=prompt, output_tokens=output,
                                                        dtype=dtype)) * (1 - 1e-9)


def test_errors_are_morph_errors():
    assert issubclass(DataError, MorphError) and issubclass(FitError, MorphError)
