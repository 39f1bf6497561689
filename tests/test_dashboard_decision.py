"""The dashboard's bands, plausibly best shapes, stack, prior, feasibility, fit-range shading and compute optima.

No browser: the widgets' own state. The bands and probabilities are checked
against the published timings they rest on and against :func:`morph.decision.assess`
called directly on the same selection (the wiring), with the plausibly-best
threshold stated here: 0.05.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from morph.app import decision_view
from morph.app.dashboard import INFEASIBLE, OPTIMA, SELECTED, Dashboard, trace as figure_trace
from morph.app.settings import DashboardSettings, settings_from_query
from morph.data import data_dir
from morph.decision import assess, fit_range, preset_fit
from morph.errors import MorphError
from morph.frontier import evaluate_candidates, select
from morph.latency import Workload
from morph.laws import preset
from morph.latency.uncertainty import prior_ends

THRESHOLD = 0.05
"""Probability of being best at or above which a shape is plausibly best (stated, not read from the code)."""


@pytest.fixture(scope="module")
def dashboard() -> Dashboard:
    return Dashboard()


def _direct(board: Dashboard):
    """The assessment of the board's selection, made without the dashboard (its preset re-derived, 200 refits)."""
    return assess(board.selection, fit_range(board.settings.law), fit_result=preset_fit(board.settings.law, 200))


def _validity_lines(board: Dashboard) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'<div class="morph-validity[^"]*"[^>]*>(.*?)</div>',
                                                 board.notes_html.value)]


class _Cells(HTMLParser):
    """Header and body cells of the ranked table, as the page shows them (unescaped text)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _table(board: Dashboard) -> dict[str, list[str]]:
    """The ranked table's columns, by header."""
    parser = _Cells()
    parser.feed(board.table.value)
    header, *body = parser.rows
    return {name: [row[k] for row in body] for k, name in enumerate(header)}


def test_kept_candidates_carry_latency_and_loss_bars(dashboard):
    selected = figure_trace(dashboard.figure, SELECTED)
    x, y = np.array(selected.x), np.array(selected.y)
    up, down = np.array(selected.error_x.array), np.array(selected.error_x.arrayminus)
    assert selected.error_x.visible and np.all(up > 0) and np.all(down > 0)
    # The eager band is a log-normal factor whose central 95% reaches every published timing of 24x2048
    # from the fitted 3.61 s (the farthest: OPT-IML-1.3B's 2.54 s), widened by a twentieth in log.
    timings = pd.read_csv(data_dir() / "published_timings.csv").query(
        "stack == 'hf-eager' and n_layers == 24 and d_model == 2048")["value"]
    gap = float(np.max(np.abs(np.log(timings / 3.61))))
    assert gap == pytest.approx(np.log(3.61 / 2.54))
    factor = (x + up) / x
    assert np.all(factor >= np.exp(gap)) and np.all(factor <= np.exp(1.05 * gap))
    # One factor shared by every shape, symmetric in log: the same band (relative) for each.
    np.testing.assert_allclose(factor, factor[0], rtol=1e-4)
    np.testing.assert_allclose(x / (x - down), factor, rtol=1e-4)
    assert selected.error_y.visible and np.all(np.array(selected.error_y.array) >= 0)
    assert np.all(np.array(selected.error_y.arrayminus) >= 0)
    assert all("P(best)" in h and "meets the budget with probability" in h for h in selected.hovertext)


def test_plausibly_best_shapes_are_marked_in_plot_and_table(dashboard):
    selected = figure_trace(dashboard.figure, SELECTED)
    probability = np.array([row[0] for row in selected.customdata], dtype=float)
    plausibly = [row[1] for row in selected.customdata]
    assert np.all((probability >= 0) & (probability <= 1))
    assert plausibly == [bool(p >= THRESHOLD) for p in probability]
    assert list(selected.marker.symbol) == ["star" if p >= THRESHOLD else "circle" for p in probability]
    for hover, p in zip(selected.hovertext, probability):
        verdict = "plausibly best" if p >= THRESHOLD else "not plausibly best"
        assert f"{verdict}: P(best) {p:.2f}" in hover and "0.05" in hover
    # The same numbers as the package's assessment of the same selection.
    direct = _direct(dashboard)
    i = dashboard.selection.selected_index
    np.testing.assert_allclose(probability, direct.columns["probability_best"][i])
    table = _table(dashboard)
    column = next(c for c in table if c.startswith("plausibly best"))
    assert "0.05" in column and not any(c.startswith("tied") for c in table)
    assert table[column] == ["yes" if p >= THRESHOLD else "no" for p in probability]
    assert table["P(best)"] == [f"{p:.2f}" for p in probability]
    assert table["P(meets budget)"] == [f"{p:.2f}" for p in direct.columns["probability_within_budget"][i]]


def test_a_preset_without_its_fit_says_n_a_never_nan():
    board = Dashboard(bootstrap=0)  # the published digits alone: no loss draws, no P(best)
    table = _table(board)
    assert not any(cell.lower() == "nan" for cells in table.values() for cell in cells)
    column = next(c for c in table if c.startswith("plausibly best"))
    assert set(table[column]) == {"n/a"} and set(table["P(best)"]) == {"n/a"}
    assert set(table["loss 95% band"]) == {"n/a"}
    # The latency draws do not need the law: the budget's probability is there.
    assert all(re.fullmatch(r"[01]\.\d\d", p) for p in table["P(meets budget)"])
    trace = figure_trace(board.figure, SELECTED)
    assert list(trace.marker.symbol) == ["circle"] * len(trace.x)
    assert all("no band" in h for h in trace.hovertext)


def test_fit_range_is_shaded_and_warned(dashboard):
    shading = [s for s in dashboard.figure.layout.shapes if s.name == "outside the law's runs"]
    # Fit set B's aspect ratios run from 384 / 22 (80M_v7) to 384.
    assert len(shading) == 2
    assert shading[0].x1 == pytest.approx(384 / 22) and shading[1].x0 == pytest.approx(384.0)
    assert "morph-validity" in dashboard.notes_html.value and "extrapolation" in dashboard.notes_html.value


def test_the_stack_control_changes_latency_and_the_link():
    board = Dashboard()
    eager = board.selection.selected["latency_s"].to_numpy()
    board.set_controls(stack="cuda-graphs", hardware="h200")
    assert "stack=cuda-graphs" in board.share.query and "hardware=h200" in board.share.query
    graph = board.evaluation.latency_s
    assert graph.max() < eager.min()
    lines = _validity_lines(board)
    # The H200 has no graph-captured timings of its own: it borrows the A100 80GB's, a transfer said once.
    basis = next(line for line in lines if line.startswith("Serving stack cuda-graphs:"))
    assert "200 joint draws" in basis and "basis transfer" in basis and "h200" in basis.lower()
    assert sum(line.startswith("TRANSFERRED: ") for line in lines) == 1
    assert board.result.assessment.latency_basis == "transfer"
    restored, notes = settings_from_query(board.share.query)
    assert restored.stack == "cuda-graphs" and notes == []
    # On the H100 the graph-captured stack was measured (Morph's depth sweep): no transfer.
    board.set_controls(hardware="h100-sxm")
    assert board.result.assessment.latency_basis == "measured"
    assert not any(line.startswith("TRANSFERRED: ") for line in _validity_lines(board))


def test_a_hostile_stack_in_a_link_is_ignored():
    settings, notes = settings_from_query("stack=%3Cimg%20src=x%3E")
    assert settings.stack == DashboardSettings().stack
    assert len(notes) == 1 and "not one of" in notes[0]


def test_infeasible_shapes_are_greyed_with_their_reason():
    # 16 sequences of 8,192 + 8,192 tokens: 24x2048 needs 51.5 GB of cache, 10x3200 33.6 GB (+ 3.2 GB weights).
    board = Dashboard(DashboardSettings(batch=16, input_tokens=8192, output_tokens=8192, latency_budget_s=1000.0))
    trace = figure_trace(board.figure, INFEASIBLE)
    assert trace.visible and len(trace.x) > 0
    assert all("KV cache" in reason and "40 GB" in reason for reason in trace.hovertext)
    assert board.selection.selected["label"].isin(trace.text).sum() == 0


def test_compute_mode_centres_on_the_compute_optimal_size():
    board = Dashboard(DashboardSettings(mode="compute", shapes="grid", flops=1e21, latency_budget_s=2.0))
    optimum = float(preset("bian2025").compute_optimal(1e21, 64.0).N)
    sizes = board.evaluation.candidates.N
    assert sizes.min() >= optimum / 8 * 0.999 and sizes.max() <= optimum * 8 * 1.001
    trace = figure_trace(board.figure, OPTIMA)
    assert trace.visible and len(trace.x) == 1
    best = int(np.argmin(board.evaluation.loss))
    assert trace.y[0] == pytest.approx(board.evaluation.loss[best])
    assert board.controls["params_min"].disabled and board.controls["params_max"].disabled


def test_an_answer_that_depends_on_the_prior_is_said_first():
    # Under graph capture the per-layer device cost is a prior (0-54 us per layer and step). At a budget of
    # 0.5 s the ends of that prior disagree on the best shape: derive each end's choice with the package's
    # selection, under the calibration set to that end.
    board = Dashboard.from_query("stack=cuda-graphs&latency=0.5")
    workload = board.settings.workload
    calibration = workload.resolved_calibration()
    choices = []
    for end in prior_ends(calibration, workload.device):
        evaluation = evaluate_candidates(board.evaluation.candidates, board.settings.law,
                                         workload=workload.replace(calibration=end, stack=None))
        try:
            choices.append(str(select(evaluation, 0.5, 1).selected["label"].iloc[0]))
        except MorphError:
            choices.append("no shape")
    assert choices[0] != choices[1]
    sentence = board.result.assessment.prior_dependence
    assert sentence is not None and all(choice in sentence for choice in choices)
    lines = _validity_lines(board)
    assert lines[0] == sentence and "per-layer device cost" in lines[0]
    assert 'class="morph-validity morph-prior-dependence"' in board.notes_html.value
    assert sum(line == sentence for line in lines) == 1  # once, though it is also the first warning
    assert _direct(board).prior_dependence == sentence
    # The plausibly-best marks follow the same draws here too.
    trace = figure_trace(board.figure, SELECTED)
    probability = np.array([row[0] for row in trace.customdata], dtype=float)
    assert list(trace.marker.symbol) == ["star" if p >= THRESHOLD else "circle" for p in probability]
    np.testing.assert_allclose(probability, _direct(board).columns["probability_best"][board.selection.selected_index])


def test_moving_the_budget_redraws_the_prior_sentence_with_one_assessment(monkeypatch):
    board = Dashboard.from_query("stack=cuda-graphs")
    assert board.result.assessment.prior_dependence is None
    assert "morph-prior-dependence" not in board.notes_html.value
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return assess(*args, **kwargs)

    monkeypatch.setattr(decision_view, "assess", counted)
    board.set_controls(latency_budget_s=0.5)  # the budget only: the evaluation is kept
    assert len(calls) == 1
    sentence = board.result.assessment.prior_dependence
    assert sentence is not None and _validity_lines(board)[0] == sentence
