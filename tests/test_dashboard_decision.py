"""The dashboard's bands, ties, stack, feasibility, fit-range shading and compute optima (no browser)."""

from __future__ import annotations

import numpy as np
import pytest

from morph.app.dashboard import INFEASIBLE, OPTIMA, SELECTED, Dashboard
from morph.app.settings import DashboardSettings, settings_from_query
from morph.laws import preset


@pytest.fixture(scope="module")
def dashboard() -> Dashboard:
    return Dashboard()


def test_kept_candidates_carry_latency_and_loss_bars(dashboard):
    trace = dashboard.figure.data[SELECTED]
    x, y = np.array(trace.x), np.array(trace.y)
    up, down = np.array(trace.error_x.array), np.array(trace.error_x.arrayminus)
    assert trace.error_x.visible and np.all(up > 0) and np.all(down > 0)
    # The eager calibration's band is x (1 + 0.2964): (3.61 - 2.54) / 3.61 of the published 24x2048 timings.
    np.testing.assert_allclose(x + up, x * (1 + (3.61 - 2.54) / 3.61), rtol=1e-9)
    assert trace.error_y.visible and np.all(np.array(trace.error_y.array) >= 0)
    assert np.all(np.array(trace.error_y.arrayminus) >= 0)
    assert all("probability of being best" in h for h in trace.hovertext)


def test_ties_with_the_best_are_marked_in_plot_and_table(dashboard):
    trace = dashboard.figure.data[SELECTED]
    tied = [row[1] for row in trace.customdata]
    assert tied[0] is True  # the best is tied with itself
    assert list(trace.marker.symbol) == ["star" if t else "circle" for t in tied]
    assert "tied with best" in dashboard.table.value and "P(best)" in dashboard.table.value
    probabilities = [row[0] for row in trace.customdata]
    assert all(0 <= p <= 1 for p in probabilities)


def test_fit_range_is_shaded_and_warned(dashboard):
    shading = [s for s in dashboard.figure.layout.shapes if s.name == "outside the law's runs"]
    # Fit set B's aspect ratios run from 384 / 22 (80M_v7) to 384.
    assert len(shading) == 2
    assert shading[0].x1 == pytest.approx(384 / 22) and shading[1].x0 == pytest.approx(384.0)
    assert "morph-validity" in dashboard.notes_html.value and "extrapolation" in dashboard.notes_html.value


def test_the_stack_control_changes_latency_and_the_link():
    board = Dashboard()
    eager = board.selection.selected["latency_s"].to_numpy()
    board.set_controls(stack="cuda-graphs", hardware="h100-sxm")
    assert "stack=cuda-graphs" in board.share.query and "hardware=h100-sxm" in board.share.query
    graph = board.evaluation.latency_s
    assert graph.max() < eager.min()
    assert "TRANSFERRED" in board.notes_html.value
    restored, notes = settings_from_query(board.share.query)
    assert restored.stack == "cuda-graphs" and notes == []


def test_a_hostile_stack_in_a_link_is_ignored():
    settings, notes = settings_from_query("stack=%3Cimg%20src=x%3E")
    assert settings.stack == DashboardSettings().stack
    assert len(notes) == 1 and "not one of" in notes[0]


def test_infeasible_shapes_are_greyed_with_their_reason():
    # 16 sequences of 8,192 + 8,192 tokens: 24x2048 needs 51.5 GB of cache, 10x3200 33.6 GB (+ 3.2 GB weights).
    board = Dashboard(DashboardSettings(batch=16, input_tokens=8192, output_tokens=8192, latency_budget_s=1000.0))
    trace = board.figure.data[INFEASIBLE]
    assert trace.visible and len(trace.x) > 0
    assert all("KV cache" in reason and "40 GB" in reason for reason in trace.hovertext)
    assert board.selection.selected["label"].isin(trace.text).sum() == 0


def test_compute_mode_centres_on_the_compute_optimal_size():
    board = Dashboard(DashboardSettings(mode="compute", shapes="grid", flops=1e21, latency_budget_s=2.0))
    optimum = float(preset("bian2025").compute_optimal(1e21, 64.0).N)
    sizes = board.evaluation.candidates.N
    assert sizes.min() >= optimum / 8 * 0.999 and sizes.max() <= optimum * 8 * 1.001
    trace = board.figure.data[OPTIMA]
    assert trace.visible and len(trace.x) == 1
    best = int(np.argmin(board.evaluation.loss))
    assert trace.y[0] == pytest.approx(board.evaluation.loss[best])
    assert board.controls["params_min"].disabled and board.controls["params_max"].disabled
