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
    # The line y = x spans every point of the panel: from below the lowest loss to above the highest.
    losses = np.concatenate([fit_b.data["loss"].to_numpy(), fit_b.predictions])
    assert min(diagonal.x) <= losses.min() and max(diagonal.x) >= losses.max()


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
    # a view made later draws from the state the widget sends a new page (ipywidgets' get_state)
    state = widget.get_state()
    assert [t["name"] for t in state["_widget_data"]] == ["20N", "40N", "160N"]
    assert state["_widget_layout"]["title"]["text"] == "76 training runs"
    empty = go.FigureWidget()
    figures.fit_diagnostics(fit_b, into=empty)
    # Filled in place: the residual panels of the fit's 27 fit points and 49 held-out ones (76 runs of the paper).
    assert {"fit points (27)", "held-out points (49)"} <= {t.name for t in empty.data}


# -- the classic figures: isoFLOP curves and L(N, D) contours -----------------------------------


def test_isoflop_groups_hold_runs_of_one_compute_and_are_far_apart(runs):
    groups = figures.isoflop_groups(runs)
    flops = 6.0 * runs["N"].to_numpy(float) * runs["D"].to_numpy(float)
    spans = []
    for g in np.unique(groups):
        inside = flops[groups == g]
        assert inside.max() / inside.min() <= 1.25  # one compute, within 25%
        spans.append((inside.min(), inside.max()))
    spans.sort()
    for (_, hi), (lo, _) in zip(spans, spans[1:]):
        assert lo / hi > figures.ISOFLOP_GAP  # every run outside a group is more than the gap away from it
    assert len(spans) == 8  # the runs' near-doublings of compute, 7.5e17 to 2.9e20 FLOPs


def test_an_isoflop_curves_points_are_exactly_the_runs_of_that_compute(runs):
    fig = figures.isoflop_curves(runs)
    flops = 6.0 * runs["N"].to_numpy(float) * runs["D"].to_numpy(float)
    law = preset("bian2025")
    markers = [t for t in fig.data if t.mode == "markers" and t.showlegend is not False]
    assert len(markers) == 8 and {t.type for t in fig.data} == {"scatter"}
    seen = 0
    for trace_ in markers:
        C = np.exp(np.log(np.asarray(trace_.customdata)).mean())
        # Independently: the runs whose 6ND lies within 13% of the group's compute (the groups span at most 25%).
        expected = runs[(flops > C / 1.13) & (flops < C * 1.13)]
        assert sorted(np.asarray(trace_.x)) == sorted(expected["N"].to_numpy(float))
        assert sorted(np.asarray(trace_.y)) == sorted(expected["loss"].to_numpy(float))
        seen += len(expected)
        curve = next(t for t in fig.data if t.name == f"{trace_.name}: law")
        ratio = float(np.median(expected["aspect_ratio"]))
        x = np.asarray(curve.x)
        # The law at L(N, C / 6N): its lowest point is the law's compute-optimal N (to the grid's spacing).
        np.testing.assert_allclose(curve.y, law.predict(x, C / (6 * x), ratio), rtol=1e-12)
        optimum = next(t for t in fig.data if t.name == f"{trace_.name}: law's optimum")
        step = x[1] / x[0]
        assert x[np.argmin(curve.y)] == pytest.approx(optimum.x[0], rel=step - 1)
    assert seen == len(runs)


def test_loss_contours_put_the_budgets_optimum_on_the_closed_form_frontier(runs):
    law = preset("bian2025")
    fig = figures.loss_contours(law, flops=1e20, runs=runs)
    contour = next(t for t in fig.data if t.type == "contour")
    assert {t.type for t in fig.data} == {"contour", "scatter"}
    a, b = law.alpha, law.beta
    # Closed form, derived here: minimise A N^-a + B D^-b with 6 N D = C gives
    # N = G (C / 6)^(b / (a + b)), G = (a A / (b B))^(1 / (a + b)); the shape factor does not move it.
    G = (a * law.A / (b * law.B)) ** (1 / (a + b))
    n_opt = G * (1e20 / 6) ** (b / (a + b))
    star = next(t for t in fig.data if t.name == "the least loss at that compute")
    assert star.x[0] == pytest.approx(n_opt, rel=1e-9) and star.y[0] == pytest.approx(1e20 / (6 * n_opt), rel=1e-9)
    frontier = next(t for t in fig.data if t.name == "compute-optimal frontier")
    C = np.asarray(frontier.customdata)
    np.testing.assert_allclose(frontier.x, G * (C / 6) ** (b / (a + b)), rtol=1e-9)
    # Numerically too: along 6 N D = 1e20 the law's least loss is at n_opt (within a 0.1% grid).
    n = np.geomspace(n_opt / 10, n_opt * 10, 4001)
    assert n[np.argmin(law.predict(n, 1e20 / (6 * n), 64.0))] == pytest.approx(n_opt, rel=2e-3)
    # The contours are the law itself; the fit range shaded is fit set B's.
    np.testing.assert_allclose(np.asarray(contour.z)[5, 7], min(float(law.predict(contour.x[7], contour.y[5], 64.0)),
                                                                np.asarray(contour.z).max()), rtol=1e-12)
    fit_range = next(t for t in fig.data if str(t.name).startswith("fit range"))
    fitted = runs[runs["in_fit_B"] == 1]["N"]
    assert min(fit_range.x) == fitted.min() and max(fit_range.x) == fitted.max()


def test_the_contour_explorer_moves_the_budget():
    from morph.app.widgets import ContourExplorer

    explorer = ContourExplorer(flops=1e20)
    explorer.flops.value = 1e22
    star = next(t for t in explorer.figure.data if t.name == "the least loss at that compute")
    assert star.x[0] == pytest.approx(float(preset("bian2025").compute_optimal(1e22, 64.0).N), rel=1e-9)
    assert explorer.messages.level is None


@pytest.mark.parametrize("key", ["marker.color", "error_x.array", "xaxis2.range[0]", "annotations[3].font.size",
                                 "a_b__c_", "_private", "", "data[0].marker.line.width"])
def test_remembered_property_paths_parse_as_plotly_does(key):
    # Morph parses each property path once (plotting.py); the expectation is plotly's own parser.
    import plotly.basedatatypes as base

    parse = base._str_to_dict_path_full
    assert getattr(parse, "remembered", False)
    expected = parse.__wrapped__(key)
    first, again = parse(key), parse(key)
    assert first == expected and again == expected
    first[1].append(-1)  # a caller that changes the list it got leaves the next caller's alone
    assert parse(key) == expected
