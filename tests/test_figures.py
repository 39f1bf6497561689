"""Figure builders: the numbers they draw are the package's, and a widget redraws in place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from morph import MorphError, fit, load_runs, predict_latency, preset
from morph.app import figures
from morph.app.dashboard import SELECTED, trace
from morph.latency.calibration import load_measurements, published_a100_measurements
from morph.data import data_dir
from morph.frontier import candidates_from_table, evaluate_candidates, select


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return load_runs()


@pytest.fixture(scope="module")
def fit_b(runs):
    return fit(runs, fit_set="in_fit_B")


@pytest.fixture(scope="module")
def cpu_sweep() -> pd.DataFrame:
    return load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv")


def _trace(fig: go.Figure, name: str):
    matches = [t for t in fig.data if t.name == name]
    assert len(matches) == 1, [t.name for t in fig.data]
    return matches[0]


def test_runs_scatter_groups_by_budget(runs):
    fig = figures.runs_scatter(runs)
    counts = {t.name: len(t.x) for t in fig.data}
    assert counts == {"20N": 35, "40N": 23, "160N": 18}
    assert fig.layout.xaxis.type == "log" and "nats/token" in fig.layout.yaxis.title.text


def test_loss_terms_add_up_to_the_loss():
    law = preset("besiroglu2024")
    fig = figures.loss_terms(law, tokens_per_parameter=20)
    *terms, total = fig.data
    assert total.name == "loss"
    np.testing.assert_allclose(sum(np.asarray(t.y) for t in terms), total.y, rtol=1e-12)
    N = np.asarray(total.x)
    np.testing.assert_allclose(total.y, law.predict(N, 20 * N), rtol=1e-12)


def test_law_overview_marks_the_point():
    law = preset("bian2025")
    fig = figures.law_overview(law, N=1.67e9, D=2.9e10, aspect_ratio=256)
    points = [t for t in fig.data if t.name == "the point"]
    expected = float(law.predict(1.67e9, 2.9e10, 256))
    assert [p.y[0] for p in points] == [expected, expected]
    assert f"{expected:.4f}" in fig.layout.title.text
    shape_curve = _trace(fig, "loss vs R")
    assert np.all(np.diff(shape_curve.y) > 0)  # eps > 0: wider per layer is worse


def test_compute_optimal_frontier_draws_the_closed_form():
    laws = {"besiroglu": preset("besiroglu2024"), "hoffmann": preset("hoffmann2022")}
    fig = figures.compute_optimal_frontier(laws, flops=(1e20, 1e24), budget=1e22)
    for name, law in laws.items():
        ratio = _trace(fig, f"{name}: D/N")
        expected = law.compute_optimal(np.asarray(ratio.x)).tokens_per_parameter
        np.testing.assert_allclose(ratio.y, expected, rtol=1e-12)
    besiroglu = _trace(fig, "besiroglu: D/N").y
    hoffmann = _trace(fig, "hoffmann: D/N").y
    assert 15 < min(besiroglu) and max(besiroglu) < 25  # about 20 tokens per parameter
    assert hoffmann[-1] > 2 * hoffmann[0]  # grows with compute
    assert fig.layout.xaxis.title.text == figures.AXIS_TITLES["flops"]


def test_compute_optimal_frontier_refuses_an_unphysical_law(runs):
    fit_a = fit(runs, fit_set="in_fit_A")  # A < 0
    with pytest.raises(MorphError, match="no compute-optimal allocation"):
        figures.compute_optimal_frontier(fit_a.law)


def test_loss_vs_aspect_ratio_panels(runs, fit_b):
    fig = figures.loss_vs_aspect_ratio(runs, {"inference-efficient": fit_b.law})
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["80M@20N", "116M@20N", "164M@20N", "80M@40N", "116M@40N", "164M@40N"]
    points = [t for t in fig.data if t.name == "runs"]
    assert [len(t.x) for t in points] == [5, 6, 5, 5, 5, 5]
    with pytest.raises(MorphError, match="no runs in group"):
        figures.loss_vs_aspect_ratio(runs, {"ie": fit_b.law}, groups=["7B@20N"])


def test_latency_vs_shape_overlays_the_matching_measurements(cpu_sweep):
    fig = figures.latency_vs_shape(hardware="cpu", d_model=512, n_layers=6, depth=(1, 32), width=(256, 1536),
                                   input_tokens=64, output_tokens=32, dtype="fp32", measurements=cpu_sweep,
                                   mark_shape=True)
    measured = [t for t in fig.data if t.name.startswith("measured")]
    # depth sweep at 512 (10 shapes, plus 29x512 of the equal-size sweep); width sweep at 6 layers (9)
    assert [len(t.x) for t in measured] == [11, 9]
    model = [t for t in fig.data if t.name.startswith("model")]
    np.testing.assert_allclose(
        model[0].y, predict_latency(np.asarray(model[0].x), 512, hardware="cpu", input_tokens=64, output_tokens=32,
                                    dtype="fp32").latency_s)
    floors = [t for t in fig.data if t.name == "roofline floor"]
    assert all(np.all(np.asarray(f.y) < np.asarray(m.y)) for f, m in zip(floors, model))
    # another workload: no measurement matches
    other = figures.latency_vs_shape(hardware="cpu", dtype="fp32", measurements=cpu_sweep)
    assert [len(t.x) for t in other.data if t.name.startswith("measured")] == [0, 0]


def test_latency_at_equal_size_reproduces_the_published_pair():
    fig = figures.latency_at_equal_size(1.55e9, tolerance=0.1, measurements=published_a100_measurements(),
                                        measurement_tolerance=0.1)
    model = fig.data[0]
    N = np.asarray(model.customdata)[:, 1]
    assert np.all(np.abs(N / 1.55e9 - 1) <= 0.1)
    measured = fig.data[-1]
    assert sorted(measured.text) == ["12x3072", "24x2048"]
    assert sorted(np.round(measured.y, 2)) == [1.96, 3.61]
    lookup = dict(zip(np.asarray(model.x), np.asarray(model.y)))
    assert lookup[24] > 1.5 * lookup[12]  # latency grows about linearly with depth at equal size


def test_throughput_vs_batch_grows_with_batch():
    fig = figures.throughput_vs_batch([(24, 2048), (12, 3072)], batch_max=64)
    wide = next(t for t in fig.data if t.name == "12x3072" and t.xaxis == "x")  # the throughput panel
    assert list(wide.x) == [1, 2, 4, 8, 16, 32, 64]
    assert np.all(np.diff(wide.y) > 0)
    assert wide.y[0] == pytest.approx(256 / 1.96, rel=1e-3)


def test_fit_figures_separate_fit_and_heldout_points(fit_b):
    fig = figures.fit_diagnostics(fit_b)
    names = [t.name for t in fig.data]
    assert "fit points (27)" in names and "held-out points (49)" in names
    labelled = [t for t in fig.data if t.name == "labelled"]
    assert len(labelled) == 2 and sorted(labelled[0].text) == ["1B_v1", "1B_v3", "1B_v6", "1B_v8"]
    residuals = next(t for t in fig.data if t.name == "fit points (27)" and t.xaxis == "x")
    np.testing.assert_allclose(residuals.y, fit_b.residuals[fit_b.fit_mask])
    assert "held-out R^2" in fig.layout.title.text
    assert {a.text for a in fig.layout.annotations} >= {"1B_v1", "1B_v8"}
    single = figures.residuals_figure(fit_b, x="N")
    assert single.layout.xaxis.title.text == figures.AXIS_TITLES["N"]
    pva = figures.predicted_vs_actual(fit_b)
    diagonal = _trace(pva, "predicted = actual")
    assert diagonal.x == diagonal.y


def test_compare_residuals_has_one_panel_per_fit(runs, fit_b):
    chinchilla = fit(runs, "chinchilla", fit_set="in_fit_B")
    fig = figures.compare_residuals({"inference-efficient": fit_b, "chinchilla": chinchilla})
    assert [a.text for a in fig.layout.annotations][:2] == ["inference-efficient", "chinchilla"]
    assert {t.xaxis for t in fig.data} == {"x", "x2"}


def test_selection_figure_draws_what_the_dashboard_draws():
    evaluation = evaluate_candidates(candidates_from_table(data_dir() / "morph_1b_candidates.csv"), "bian2025")
    selection = select(evaluation, 2.0, top_k=3)
    fig = figures.selection_figure(selection)
    # The dashboard's own traces, in the same style (morph.app.decision_view).
    from morph.app.dashboard import Dashboard

    dashboard = Dashboard()
    for name in ("candidates", "Pareto frontier", "selected (top k)"):
        mine, theirs = _trace(fig, name), next(t for t in dashboard.figure.data if t.name == name)
        assert mine.marker.color == theirs.marker.color and mine.marker.size == theirs.marker.size, name
    # The paper's pick first at 2 s; every one of the 15 candidates drawn; the rule at the budget.
    selected = _trace(fig, "selected (top k)")
    assert selected.text[0] == "1. 1B_v8" and len(selected.text) == 3
    assert list(selected.marker.symbol) == list(trace(dashboard.figure, SELECTED).marker.symbol)
    assert len(_trace(fig, "candidates").x) == 15
    assert [shape.x0 for shape in fig.layout.shapes] == [2.0]
    assert selected.error_x.visible  # the latency band of the serving stack's calibration


def test_selection_figure_draws_a_throughput_budget_at_its_latency_and_none_for_prefill():
    evaluation = evaluate_candidates(candidates_from_table(data_dir() / "morph_1b_candidates.csv"), "bian2025")
    # 256 generated tokens at no fewer than 128 tokens/s: at most 2 s.
    floor = figures.selection_figure(select(evaluation, 128.0, top_k=3, budget_metric="tokens_per_s"))
    assert [shape.x0 for shape in floor.layout.shapes] == [pytest.approx(2.0, rel=1e-12)]
    assert "at least 128 tokens/s" in floor.layout.title.text
    prefill = figures.selection_figure(select(evaluation, 1.0, top_k=3, budget_metric="ttft_s"))
    assert not prefill.layout.shapes and "time to first token at most 1 s" in prefill.layout.title.text


def test_si_format():
    assert [figures.si_format(v) for v in (1_668_885_504, 2.9e10, 78_914_048, 512, 1.2e13)] == [
        "1.67B", "29B", "78.9M", "512", "12T"]


def test_label_positions_move_neighbours_apart():
    positions = figures._label_positions(np.array([1.0, 1.1, 5.0]), np.array([2.0, 3.0, 1.0]))
    assert list(positions[:2]) == ["bottom right", "top right"]


def test_fill_updates_in_place_or_replaces(fit_b, runs):
    widget = go.FigureWidget(figures.fit_diagnostics(fit_b))
    first = widget.data[0]
    figures.fit_diagnostics(fit_b, x="N", into=widget)
    assert widget.data[0] is first and widget.layout.xaxis.title.text == figures.AXIS_TITLES["N"]
    figures.runs_scatter(runs, into=widget)
    assert [t.name for t in widget.data] == ["20N", "40N", "160N"]
    assert widget.layout.title.text == "76 training runs" and not widget.layout.annotations
    assert "xaxis2" not in widget.layout.to_plotly_json()  # the second panel's axis went with it
    # a view made later (a page draws from the widget's own state) sees the new figure
    assert [t["name"] for t in widget._widget_data] == ["20N", "40N", "160N"]
    assert widget._widget_layout["title"]["text"] == "76 training runs"
    empty = go.FigureWidget()
    figures.fit_diagnostics(fit_b, into=empty)
    assert empty.layout.template == figures.fit_diagnostics(fit_b).layout.template
