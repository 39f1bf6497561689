"""The notebook explorers and the fitting app, driven from Python as a page drives them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from morph import fit, load_runs, predict_latency, preset
from morph.latency.calibration import load_measurements, published_a100_measurements
from morph.data import data_dir
from morph.reproduce import load_published
from morph.app.widgets import (
    UPLOAD_LIMIT_BYTES,
    ComputeExplorer,
    FittingApp,
    LatencyExplorer,
    LawExplorer,
    parameter_table,
)

# -- helpers -----------------------------------------------------------------------------------


def upload(app: FittingApp, content: bytes, name: str = "runs.csv", files: int = 1) -> None:
    """Set the FileUpload's value as ipywidgets 8 does after the browser sends a file."""
    entry = {"name": name, "type": "text/csv", "size": len(content), "content": memoryview(content),
             "last_modified": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}
    app.upload.value = tuple(dict(entry) for _ in range(files))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8")


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return load_runs()


@pytest.fixture
def app() -> FittingApp:
    return FittingApp()


def snapshot(app: FittingApp) -> dict:
    """Everything a failed upload or fit must leave as it was."""
    return {
        "result": app.result,
        "report": app.report.value,
        "parameters": app.parameters.value,
        "source": (app.source.options, app.source.value),
        "choices": app.choices(),
        "options": (app.law.options, app.variant.options, app.fit_set.options),
        "figure": [(t.name, tuple(np.asarray(t.y, dtype=float))) for t in app.figure.data],
    }


# -- the fitting app: the paper's runs ---------------------------------------------------------


def test_app_opens_on_the_papers_main_fit(app, runs):
    expected = fit(runs, fit_set="in_fit_B")
    assert app.result.params == expected.params
    assert app.source.value == "paper" and app.fit_set.value == "in_fit_B"
    report = app.report.value
    # A fixed-width block at single spacing (an HTML widget's own line height would double it).
    assert report.startswith('<pre class="morph-report"') and "line-height:1.35" in report
    assert "in_fit_B: 27 of 76 points" in report and "0.998237" in report
    table = app.parameters.value
    # The table shows each parameter as the fit holds it, to 8 significant digits...
    for name in ("A", "B", "E", "alpha", "eps"):
        assert f"<td>{expected.params[name]:.8g}</td>" in table, name
    assert "tied to alpha" in table
    # ...and that is the paper's fit B, within the digits the fit supports (data/paper_numbers.csv).
    for number in load_published():
        if number.key.startswith("param/B/inference-efficient/tied/"):
            name = number.key.rsplit("/", 1)[1]
            shown = float(f"{app.result.params[name]:.8g}")
            assert abs(shown - float(number.paper)) <= number.tolerance, name
    assert "need bootstrap refits" in table
    assert app.fit_warnings.level is None and app.messages.level is None
    names = [t.name for t in app.figure.data]
    assert "fit points (27)" in names and "held-out points (49)" in names
    # the page draws the widget from its state at construction: it must hold the figure already
    assert [t["name"] for t in app.figure.get_state()["_widget_data"]] == names
    labelled = [t for t in app.figure.data if t.name == "labelled"][0]
    assert sorted(labelled.text) == ["1B_v1", "1B_v3", "1B_v6", "1B_v8"]


def test_fit_set_a_shows_the_identifiability_warning(app):
    app.fit_set.value = "in_fit_A"
    app.fit_button.click()
    assert "in_fit_A: 24 of 76 points" in app.report.value
    assert app.fit_warnings.level == "warning"
    assert "tokens per parameter" in app.fit_warnings.text and "A = " in app.fit_warnings.text
    assert app.fit_warnings.value.count("<li>") == len(app.result.warnings) >= 2
    assert app.result.params["A"] < 0
    assert app.messages.level is None and not app.fit_button.disabled


def test_variant_choices_follow_the_law(app):
    app.law.value = "chinchilla"
    assert app.variant.options == ("tied", "untied") and app.variant.value == "tied"
    app.law.value = "inference-efficient"
    app.variant.value = "nonequal"
    app.law.value = "u-shaped"
    assert app.variant.options == ("tied", "untied") and app.variant.value == "tied"
    app.law.value = "inference-efficient"
    assert "nonequal" in app.variant.options


def test_non_equal_fit_reproduces_the_papers_number(app):
    app.variant.value = "nonequal"
    app.fit_button.click()
    assert app.result.variant == "nonequal" and "0.998451" in app.report.value
    assert app.result.metrics()["all"].mse == pytest.approx(0.000487, abs=5e-7)


def test_bootstrap_adds_intervals_to_the_table(app):
    app.bootstrap.value = 20
    app.fit_button.click()
    assert app.result.conf_int is not None
    table = parameter_table(app.result)
    free = table[table["status"] == "free"]
    assert (free["ci_low"] < free["value"]).all() and (free["value"] < free["ci_high"]).all()
    assert "95% CI low" in app.parameters.value and "need bootstrap refits" not in app.parameters.value


def test_a_failing_fit_keeps_the_previous_results(app):
    before = snapshot(app)
    app.fit_set.value, app.variant.value = "in_fit_T1", "untied"  # 6 points, 7 free parameters
    app.fit_button.click()
    assert app.messages.level == "error"
    assert app.messages.text == (
        "6 fit points cannot determine the 7 free parameters of the inference-efficient law (untied); "
        "give at least 7 points"
    )
    after = snapshot(app)
    assert after["result"] is before["result"] and after["report"] == before["report"]
    assert after["figure"] == before["figure"]
    assert app.fit_set.value == "in_fit_T1" and app.variant.value == "untied"  # the user's choices stay
    assert not app.fit_button.disabled and app.fit_button.description == "Fit"
    app.variant.value = "tied"
    app.fit_button.click()
    assert app.messages.level is None and app.result.n_fit == 6


def test_residual_axis_redraws(app):
    app.residual_axis.value = "N"
    assert app.figure.layout.xaxis.title.text == "parameters N" and app.figure.layout.xaxis.type == "log"
    app.residual_axis.value = "loss"
    assert app.figure.layout.xaxis.type == "linear"


def test_parameter_table_of_a_tied_fit(runs):
    result = fit(runs, fit_set="in_fit_B")
    table = parameter_table(result).set_index("parameter")
    assert list(table.index) == ["A", "B", "E", "alpha", "beta", "eps", "gamma"]
    assert table.loc["beta", "status"] == "tied to alpha" and np.isnan(table.loc["beta", "std_error"])
    assert table.loc["alpha", "std_error"] == pytest.approx(result.stderr["alpha"])
    # The percentage is the standard error from the fit's covariance matrix (its diagonal) over the value.
    i = list(result.free_parameters).index("A")
    assert table.loc["A", "relative_error_pct"] == pytest.approx(
        100 * np.sqrt(result.covariance[i, i]) / result.params["A"], rel=1e-9)


# -- the fitting app: uploads --------------------------------------------------------------------


def _own_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The 80M-164M runs with a fit-set column of the user's own name."""
    chosen = runs[runs["size_label"].isin(["80M", "116M", "164M"])]
    frame = chosen[["variant", "n_layers", "d_model", "N", "D", "loss", "in_fit_B"]]
    return frame.rename(columns={"in_fit_B": "in_fit_mine"})


def test_a_good_upload_becomes_the_table(app, runs):
    mine = _own_runs(runs)
    upload(app, csv_bytes(mine), "mine.csv")
    assert app.messages.level == "info"
    assert app.messages.text == (
        f"Loaded mine.csv: {len(mine)} runs, {len(mine)} of them fitted. "
        "It has no in_fit_B column, so every row was fitted."
    )
    assert app.source.value == "upload" and app.source.options[1] == (f"mine.csv ({len(mine)} runs)", "upload")
    assert app.fit_set.options == ((f"all rows ({len(mine)})", ""), (f"in_fit_mine ({mine.in_fit_mine.sum()} rows)",
                                                                        "in_fit_mine"))
    assert len(app.table) == len(mine) and app.result.n_fit == len(mine)
    assert app.upload.value == ()  # cleared, so the same file can be chosen again
    app.fit_set.value = "in_fit_mine"
    app.fit_button.click()
    assert app.result.n_fit == mine["in_fit_mine"].sum()
    assert f"in_fit_mine: {app.result.n_fit} of {len(mine)} points" in app.report.value
    # the labelled runs of a table without 1B runs are those of the largest N
    labelled = [t for t in app.figure.data if t.name == "labelled"][0]
    assert set(labelled.text) == set(mine.loc[mine["N"] == mine["N"].max(), "variant"])
    # back to the paper's runs: refitted there with the same choices where they apply
    app.source.value = "paper"
    assert len(app.result.data) == 76 and app.fit_set.value == "" and app.result.n_fit == 76


def test_a_table_without_shapes_can_only_fit_chinchilla(app, runs):
    upload(app, csv_bytes(runs[["N", "D", "loss"]].rename(columns={"N": "params", "D": "tokens"})), "plain.csv")
    assert app.law.options == ("chinchilla",) and app.result.family == "chinchilla"
    assert "so the chinchilla law was fitted" in app.messages.text
    assert [value for _, value in app.residual_axis.options][0] == "N"


GOOD_HEADER = b"n_layers,d_model,N,D,loss\n"
BAD_UPLOADS = {
    "missing column": (b"N,D\n1e8,2e9\n", "runs.csv is missing the column(s) loss"),
    "non-numeric": (b"N,D,loss\n1e8,2e9,abc\n1e8,4e9,3\n",
                    "runs.csv: column 'loss', row 1 holds 'abc', which is not a finite number"),
    "NaN": (b"N,D,loss\n1e8,2e9,3\n1e8,4e9,NaN\n",
            "runs.csv: column 'loss', row 2 holds 'NaN', which is not a finite number"),
    "empty cell": (b"N,D,loss\n1e8,,3\n1e8,4e9,2.9\n", "runs.csv: column 'D', row 1 is empty"),
    "negative": (b"N,D,loss\n1e8,2e9,3\n1e8,4e9,-3\n",
                 "runs.csv: column 'loss', row 2 is -3; it must be greater than zero"),
    "duplicate rows": (b"N,D,loss\n1e8,2e9,3\n1e8,2e9,3\n", "runs.csv: row 2 repeats row 1 exactly; remove the duplicate"),
    "not UTF-8": (b"N,D,loss\n1e8,2e9,3\xff\n",
                  "runs.csv is not UTF-8 text (byte 0xff at position 18); save it as a UTF-8 CSV"),
    "header only": (b"N,D,loss\n", "runs.csv has a header but no rows"),
    "decimal comma": (b"N;D;loss\n1e8;2e9;3,12\n1e8;4e9;2,9\n",
                      "runs.csv: column 'loss', row 1 holds '3,12', which is not a finite number (a decimal comma? "
                      "Morph reads a point as the decimal mark: write 3.12, or export the CSV with '.' as the "
                      "decimal separator)"),
    "too few points": (GOOD_HEADER + b"2,128,1e8,2e9,3\n4,128,2e8,2e9,2.9\n4,256,3e8,4e9,2.8\n",
                       "3 fit points cannot determine the 5 free parameters of the inference-efficient law (tied); "
                       "give at least 5 points"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_says_why_and_changes_nothing(app, runs, case):
    content, message = BAD_UPLOADS[case]
    before = snapshot(app)
    upload(app, content)
    assert app.messages.level == "error" and app.messages.text == message
    assert "morph-error" in app.messages.value and "\n" not in app.messages.text
    assert snapshot(app) == before
    assert app.upload.value == ()
    # the app keeps working: a good table is taken next
    upload(app, csv_bytes(_own_runs(runs)), "mine.csv")
    assert app.messages.level == "info" and app.source.value == "upload"


def test_a_fit_that_fails_on_upload_keeps_the_previous_table(app, runs):
    upload(app, csv_bytes(_own_runs(runs)), "mine.csv")
    before = snapshot(app)
    broken = runs[runs["in_fit_B"] == 1].copy()
    broken.loc[broken.index[0], "D"] = 1e-320  # a positive number, but B / D^beta overflows
    upload(app, csv_bytes(broken), "broken.csv")
    assert app.messages.level == "error"
    assert app.messages.text == "the paper method ended at parameters that predict non-finite losses; try --method robust"
    assert snapshot(app) == before and app.source.options[1][0].startswith("mine.csv")


def test_fit_after_a_bad_upload_says_which_table_it_fitted(app, runs):
    upload(app, b"N,D\n1e8,2e9\n", "mine.csv")
    assert app.messages.level == "error"
    app.fit_button.click()
    # The previous table is refitted, and the page says so: not a silent fit passed off as the upload's.
    assert app.messages.level == "warning"
    assert app.messages.text == (
        "Fitted the paper's 76 runs, not the last upload, which was not loaded: mine.csv is missing the column(s) loss"
    )
    upload(app, csv_bytes(_own_runs(runs)), "mine.csv")  # a good upload ends the reminder
    app.fit_button.click()
    assert app.messages.level != "warning" and app.failed_upload is None


def test_uploads_that_are_not_one_small_csv(runs):
    app = FittingApp(max_bytes=2000)
    before = snapshot(app)
    big = csv_bytes(runs)
    assert len(big) > 2000 and UPLOAD_LIMIT_BYTES > len(big)
    upload(app, big, "all.csv")
    assert app.messages.text == (
        f"all.csv is {len(big) / 2**20:.1f} MB, over the 0.00191 MB limit for uploads; fit it on the command line "
        "with `morph fit all.csv`"
    )
    upload(app, b"N,D,loss\n1e8,2e9,3\n", "runs.xlsx")
    assert app.messages.text == "runs.xlsx is not a .csv file; upload a CSV table of runs"
    upload(app, b"N,D,loss\n1e8,2e9,3\n", "runs.csv", files=2)
    assert app.messages.text == "2 files were chosen; upload one .csv table of runs at a time"
    upload(app, b"N,D\n1e8,2e9\n", "../<i>x.csv")  # only the file's own name is used, and escaped
    assert app.messages.text == "<i>x.csv is missing the column(s) loss"
    assert "&lt;i&gt;x.csv" in app.messages.value and "<i>" not in app.messages.value
    assert snapshot(app) == before


# -- explorers ---------------------------------------------------------------------------------


def test_law_explorer_reads_out_the_law():
    explorer = LawExplorer("bian2025")
    law = preset("bian2025")
    expected = float(law.predict(1_668_885_504, 28_991_029_248, 256.0))
    assert f"<b>{expected:.4f}</b>" in explorer.readout.value
    assert list(explorer.sliders) == ["A", "B", "E", "alpha", "eps"]
    assert explorer.sliders["alpha"].description == "alpha = beta = gamma"
    explorer.N.value = 1e9
    assert f"<b>{float(law.predict(1e9, 28_991_029_248, 256.0)):.4f}</b>" in explorer.readout.value
    explorer.sliders["alpha"].value = 0.5
    moved = law.replace(alpha=0.5, beta=0.5, gamma=0.5)
    assert explorer.law == moved
    point = [t for t in explorer.figure.data if t.name == "the point"][0]
    assert point.y[0] == pytest.approx(float(moved.predict(1e9, 28_991_029_248, 256.0)))
    explorer.preset.value = "hoffmann2022"
    assert list(explorer.sliders) == ["A", "B", "E", "alpha", "beta"]
    assert "shape factor 1.0000" in explorer.readout.value and explorer.messages.level is None


def test_compute_explorer_reads_out_the_optimum():
    explorer = ComputeExplorer(("besiroglu2024", "hoffmann2022"), flops=1e22)
    table = explorer.optimum_table().set_index("law")
    expected = preset("besiroglu2024").compute_optimal(1e22)
    assert table.loc["besiroglu2024", "D / N"] == pytest.approx(float(expected.tokens_per_parameter))
    assert f"{float(expected.tokens_per_parameter):.3g}" in explorer.readout.value
    explorer.flops.value = 1e24
    assert table.loc["hoffmann2022", "D / N"] < explorer.optimum_table().set_index("law").loc["hoffmann2022", "D / N"]
    before = [tuple(t.y) for t in explorer.figure.data]
    explorer.laws.value = ()
    assert explorer.messages.level == "error" and explorer.messages.text == "choose at least one law"
    assert [tuple(t.y) for t in explorer.figure.data] == before
    explorer.laws.value = ("bian2025",)
    assert explorer.messages.level is None and len(explorer.optimum_table()) == 1


def test_latency_explorer_reproduces_the_published_timings():
    explorer = LatencyExplorer(measurements={"a100-40gb": published_a100_measurements()})
    assert "<b>3.61 s</b>" in explorer.readout.value  # Open-LM-1B, 24 x 2048
    explorer.n_layers.value, explorer.d_model.value = 12, 3072
    assert "<b>1.96 s</b>" in explorer.readout.value  # Morph-1B
    measured = [t for t in explorer.figure.data if t.name.startswith("measured")]
    assert [len(t.x) for t in measured] == [1, 1]  # 12x3072 on both panels
    explorer.batch.value = 64
    batch64 = predict_latency(12, 3072, batch=64)
    assert f"<b>{float(batch64.latency_s):.3g} s</b>" in explorer.readout.value


def test_latency_explorer_on_the_cpu():
    cpu = load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv")
    explorer = LatencyExplorer(measurements={"cpu": cpu}, n_layers=6, d_model=512)
    explorer.input_tokens.value, explorer.output_tokens.value = 64, 32
    explorer.hardware.value = "cpu"
    assert explorer.dtype.value == "fp32" and explorer.messages.level == "info"
    measured = [t for t in explorer.figure.data if t.name.startswith("measured")]
    assert [len(t.x) for t in measured] == [11, 9]
    before = [tuple(t.y) for t in explorer.figure.data]
    explorer.dtype.value = "bf16"
    assert explorer.messages.level == "error" and "no bf16 throughput figure" in explorer.messages.text
    assert [tuple(t.y) for t in explorer.figure.data] == before
    explorer.dtype.value = "fp32"
    assert explorer.messages.level is None
