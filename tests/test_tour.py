"""The guided tour: each preset link reads back unchanged and shows what its text claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from morph.app.dashboard import Dashboard
from morph.app.settings import settings_from_query
from morph.app.tour import TOUR, tour_html

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def boards() -> dict[str, Dashboard]:
    return {stop.query: Dashboard.from_query(stop.query, bootstrap=5) for stop in TOUR}


@pytest.mark.parametrize("stop", TOUR, ids=[s.title for s in TOUR])
def test_every_link_reads_back_without_an_adjustment(stop, boards):
    settings, notes = settings_from_query(stop.query)
    assert notes == [] and settings.to_query() == stop.query  # canonical: what the page's address will show
    assert boards[stop.query].messages.level is None


def test_same_size_different_speed(boards):
    ev = boards[TOUR[0].query].evaluation
    c = ev.candidates
    assert 1.3e9 <= c.N.min() and c.N.max() <= 2.2e9
    assert ev.latency_s.max() / ev.latency_s.min() >= 3.5  # the paper's "up to 3.5x", and more here
    latency = {(int(L), int(d)): float(t) for L, d, t in zip(c.n_layers, c.d_model, ev.latency_s)}
    assert latency[24, 2048] > 1.5 * latency[12, 3072]  # the deeper of the paper's pair is far slower


def test_the_two_second_selection_is_morph_1b(boards):
    first = boards[TOUR[1].query].selection.selected.iloc[0]
    assert (first["n_layers"], first["d_model"]) == (12, 3072) and first["speedup"] == pytest.approx(1.84, abs=0.01)


def test_the_aspect_ratio_penalty(boards):
    tight = boards[TOUR[2].query].selection.selected
    assert (tight["aspect_ratio"] > 1000).all()
    morph_1b_loss = boards[TOUR[1].query].selection.selected["loss"].iloc[0]
    assert (tight["loss"] > morph_1b_loss + 0.1).all()  # "clearly worse": more than 0.1 nats/token


def test_batch_64_shifts_the_choice_inside_the_band(boards):
    board, paper = boards[TOUR[3].query], boards[TOUR[1].query]
    workload = board.settings.workload
    assert (workload.batch, workload.hardware) == (64, "a100-40gb") and workload.stack in (None, "hf-eager")
    first = board.selection.selected.iloc[0]
    assert (first["n_layers"], first["d_model"]) == (10, 3200) and first["latency_s"] == pytest.approx(1.84, abs=0.005)

    def at(b, shape):
        c = b.evaluation.candidates
        return int(np.flatnonzero((c.n_layers == shape[0]) & (c.d_model == shape[1]))[0])

    # Morph-1B: 1.96 s at batch 1, 2.12 s at 64 (a larger batch adds device work per pass), past the budget.
    i = at(board, (12, 3072))
    assert paper.evaluation.latency_s[at(paper, (12, 3072))] == pytest.approx(1.96, abs=0.005)
    assert board.evaluation.latency_s[i] == pytest.approx(2.12, abs=0.005) and board.evaluation.latency_s[i] > 2.0
    # The band the text quotes is the decision layer's, from its joint draws (independent of the law's bootstrap).
    columns = board.result.assessment.columns
    assert columns["latency_low_s"][i] == pytest.approx(1.48, abs=0.01)
    assert columns["latency_high_s"][i] == pytest.approx(3.05, abs=0.01)
    shift = board.evaluation.latency_s[i] - paper.evaluation.latency_s[at(paper, (12, 3072))]
    assert shift < 0.2 * (columns["latency_high_s"][i] - columns["latency_low_s"][i])  # a tenth of the band: 0.16 of 1.57 s
    # Under eager generate the H100 predicts what the A100 does: its coefficients are the A100's, a transfer.
    from morph.latency import Workload, predict_latency
    from morph.latency.uncertainty import uncertainty_of

    h100 = Workload(hardware="h100-sxm", batch=64)
    assert float(predict_latency(12, 3072, workload=h100).latency_s) == pytest.approx(
        float(predict_latency(12, 3072, workload=workload).latency_s), rel=0.06)
    assert uncertainty_of(h100.resolved_calibration(), h100.device).basis == "transfer"


def test_a_graph_captured_stack_shrinks_the_speed_up(boards):
    eager, graphs = boards[TOUR[1].query], boards[TOUR[4].query]
    assert graphs.settings.workload.stack == "cuda-graphs"

    def latency(board, shape):
        c = board.evaluation.candidates
        at = {(int(L), int(d)): float(t) for L, d, t in zip(c.n_layers, c.d_model, board.evaluation.latency_s)}
        return at[shape]

    # Under eager generate 12x3072 is the paper's 1.84x faster than 24x2048. With the host time gone, 12x3072
    # streams 16% more weights while 24x2048 pays 12 more layers of the per-layer device cost, 0-54 us
    # a step: at the prior's median the two about cancel, far from 1.84x.
    assert latency(eager, (24, 2048)) / latency(eager, (12, 3072)) == pytest.approx(1.84, abs=0.01)
    assert 0.9 < latency(graphs, (24, 2048)) / latency(graphs, (12, 3072)) < 1.15
    assert (graphs.evaluation.latency_s < 2.0).all()  # the 2 s budget no longer binds


def test_the_tour_is_in_the_docs_the_readme_and_the_page():
    doc = (ROOT / "docs" / "tour.md").read_text(encoding="utf-8")
    for stop in TOUR:
        assert stop.title in doc and (not stop.query or f"?{stop.query}" in doc)
    assert "docs/tour.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    page = tour_html()
    assert page.count('class="morph-tour-link"') == len(TOUR) and 'href="?latency=1&amp;top_k=5"' in page
    assert "morph-tour-link" not in tour_html(links=False) and "<code>?latency=1&amp;top_k=5</code>" in tour_html(links=False)
    texts = [w.value for w in _descendants(Dashboard.from_query("", bootstrap=5).widget) if hasattr(w, "value")
             and isinstance(w.value, str)]
    assert any("Guided tour" in t for t in texts)
    assert np.all([stop.look_at for stop in TOUR])


def _descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _descendants(child)
