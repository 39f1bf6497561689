"""``morph fit`` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from morph import fit
from morph.cli import main
from morph.data import data_dir

RUNS = str(data_dir() / "morph_runs.csv")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "morph", *args], capture_output=True, text=True, timeout=120)


def test_fit_json_has_the_documented_keys():
    """The one test that runs ``python -m morph`` as a separate process: the entry point itself."""
    out = _run("fit", RUNS, "--fit-set", "in_fit_B", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    # The same fit as in Python (same machine, same numbers), which is the paper's within the
    # digits the fit supports (data/paper_numbers.csv: 5e-5 relative).
    assert payload["params"] == pytest.approx(fit(RUNS, fit_set="in_fit_B").params, rel=1e-12)
    assert payload["params"]["A"] == pytest.approx(54753.967, rel=5e-5)
    metrics = payload["metrics"]
    assert round(metrics["mse"], 6) == 0.000554 and round(metrics["r2"], 6) == 0.998237
    assert metrics["heldout_mse"] > metrics["mse"] and metrics["heldout_r2"] < metrics["r2"]
    assert len(payload["predictions"]) == 76 and payload["warnings"] == []


def test_fit_report_and_other_laws(capsys):
    assert main(["fit", RUNS, "--law", "chinchilla", "--fit-set", "in_fit_B"]) == 0
    assert "0.989512" in capsys.readouterr().out
    assert main(["fit", RUNS, "--variant", "nonequal", "--fit-set", "in_fit_B", "--json"]) == 0
    assert round(json.loads(capsys.readouterr().out)["metrics"]["mse"], 6) == 0.000487
    assert main(["fit", RUNS, "--law", "u-shaped", "--method", "robust", "--fit-set", "in_fit_B", "--json"]) == 0
    assert "r_opt" in json.loads(capsys.readouterr().out)["params"]


def test_fit_warnings_reach_json(capsys):
    assert main(["fit", RUNS, "--fit-set", "in_fit_A", "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any("tokens per parameter" in w for w in warnings) and any("negative" in w for w in warnings)


def test_aliases_and_bootstrap(tmp_path, capsys):
    table = tmp_path / "mine.csv"
    table.write_text("params,tokens,loss\n" + "\n".join(
        f"{n:.6g},{d:.6g},{1.8 + 400 / n**0.34 + 2000 / d**0.36:.6f}"
        for n in (1e7, 3e7, 1e8, 3e8) for d in (1e9, 1e10, 1e11)))
    assert main(["fit", str(table), "--law", "chinchilla", "--variant", "untied", "--method", "robust",
                 "--bootstrap", "20", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["params"]["alpha"] == pytest.approx(0.34, rel=0.02)
    assert set(payload["conf_int"]) == {"A", "B", "E", "alpha", "beta"}
    assert payload["metrics"]["heldout_mse"] is None


@pytest.mark.parametrize(
    "content, message",
    [
        ("N,D\n1,2\n", "missing the column(s) loss"),
        ("N,D,loss\n1e8,2e9,oops\n", "not a finite number"),
        ("N,D,loss\n1e8,2e9,3\n2e8,2e9,3\n", "2 fit points cannot determine"),
        ("N,D,loss\n-1,2e9,3\n", "greater than zero"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, message, cli):
    table = tmp_path / "bad.csv"
    table.write_text(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = cli("fit", str(table), "--law", "chinchilla", "--json")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_bad_arguments_exit_2(cli):
    assert cli("fit", RUNS, "--bootstrap", "-3").returncode == 2
    assert cli("fit", RUNS, "--law", "kaplan").returncode == 2
    assert cli("fit", RUNS, "--fit-set", "nope").returncode == 2
    assert cli().returncode == 2
