"""The dashboard's layout helpers: label placement, figure geometry, numbers for people."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from morph.app.dashboard import PUBLISHED, SELECTED, Dashboard, trace
from morph.app.labels import boxes_overlap, label_size, place_labels
from morph.app.layout import STACK_BELOW_PX, figure_geometry
from morph.app.readouts import human_seconds, round_outward, round_significant, spoken


def _boxes(placement, sizes):
    return [
        (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        for x, y, (w, h), ok in zip(placement.x, placement.y, sizes, placement.placed) if ok
    ]


def test_placed_labels_never_overlap_each_other_the_markers_or_the_edges():
    rng = np.random.default_rng(7)
    x, y = rng.uniform(20, 380, 30), rng.uniform(20, 280, 30)
    sizes = [label_size(f"{k + 1}: 12x3072") for k in range(30)]
    placement = place_labels(x, y, sizes, (400, 300), marker_px=6)
    boxes = _boxes(placement, sizes)
    assert len(boxes) >= 5  # the first labels always find room on an uncrowded plot
    assert not any(boxes_overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    markers = [(px - 6, py - 6, px + 6, py + 6) for px, py in zip(x, y)]
    assert not any(boxes_overlap(b, m) for b in boxes for m in markers)
    assert all(b[0] >= 0 and b[1] >= 0 and b[2] <= 400 and b[3] <= 300 for b in boxes)


def test_the_best_label_goes_first_and_coincident_points_still_get_separate_labels():
    # Three shapes at one spot (same depth, nearly the same loss): rank 1 right of it, the others elsewhere.
    sizes = [label_size(t) for t in ("1: 12x3072", "2: 12x2816", "3: 10x3200")]
    placement = place_labels(np.array([200.0, 200.0, 201.0]), np.array([150.0, 150.0, 151.0]), sizes, (400, 300))
    assert placement.placed.all()
    assert placement.x[0] > 200 and placement.y[0] == pytest.approx(150)  # straight to the right
    boxes = _boxes(placement, sizes)
    assert not any(boxes_overlap(a, b) for a, b in itertools.combinations(boxes, 2))


def test_a_label_with_no_room_is_left_out():
    placement = place_labels(np.array([10.0]), np.array([10.0]), [(500.0, 16.0)], (100, 100))
    assert not placement.placed[0] and np.isnan(placement.x[0])


def test_geometry_stacks_the_plots_on_narrow_boxes():
    wide, narrow = figure_geometry(1000), figure_geometry(360)
    assert not wide.stacked and narrow.stacked and figure_geometry(STACK_BELOW_PX - 1).stacked
    # Side by side: the left plot ends before the right one starts; stacked: the top one is above.
    assert wide.domains["xaxis"][1] < wide.domains["xaxis2"][0]
    assert narrow.domains["yaxis2"][1] < narrow.domains["yaxis"][0]
    for g in (wide, narrow):
        w, h = g.plot_area()
        assert 200 < w < g.width and 150 < h < g.height
    assert figure_geometry(None) == figure_geometry(900) and figure_geometry(100).width == 300


def test_numbers_for_people():
    assert round_significant(2.5118864315095797) == 2.51
    assert round_significant(28_991_029_248) == 2.9e10 and round_significant(0.0) == 0.0
    # A budget a shape still meets: a ceiling rounds up, a floor down; a 3-digit value stays.
    assert round_outward(1.2345, up=True) == 1.24 and round_outward(1.2345, up=False) == 1.23
    assert round_outward(130.612, up=False) == 130.0 and round_outward(0.0076601, up=True) == 0.00767
    assert round_outward(2.0, up=True) == round_outward(2.0, up=False) == 2.0 and round_outward(0.0, up=True) == 0.0
    assert spoken(1.3e9, "parameters") == "1.3B parameters"
    assert spoken(28_991_029_248, "tokens") == "29B tokens"
    assert spoken(2.9e20, "FLOPs") == "2.9e20 FLOPs"
    assert human_seconds(2.0) == "2 s" and human_seconds(1000.0) == "1,000 s" and human_seconds(0.0123) == "0.0123 s"


@pytest.fixture(scope="module")
def board():
    return Dashboard(bootstrap=10)


def test_a_moved_slider_gives_a_rounded_setting_and_link(board):
    board.controls["latency_budget_s"].value = 10**0.4  # where the log slider lands: 2.5118864315095797
    assert board.settings.latency_budget_s == 2.51
    assert board.share.query == "latency=2.51"
    # Settings nobody moved keep every digit: the paper's token count stays exact.
    assert board.settings.tokens == 28_991_029_248
    board.controls["latency_budget_s"].value = 2.0


def test_the_published_models_never_sit_on_the_rank_1_dot(board):
    # They have no published loss: a strip of their own (axis y3) along the top, above every loss dot.
    published, selected = trace(board.figure, PUBLISHED), trace(board.figure, SELECTED)
    assert published.yaxis == "y3" and min(published.y) > 0.85
    (low, high) = board.figure.layout.yaxis.range
    assert all((y - low) / (high - low) < 0.85 for y in selected.y)


# The figure's box width at the viewports 1400x1000, 1024x768 and 390x844 (read in Chromium
# from gd._fullLayout.width), and a few more.
FIGURE_WIDTHS = [1014, 638, 360, 640, 1000]


def drawn_labels(board):
    """What the left plot shows, in its pixels: label boxes, their leader lines, the markers, the budget caption.

    Derived from the figure's own annotations and axis ranges as plotly draws them: an
    annotation's text box is centred ``ax``, ``ay`` pixels from its point, its arrow runs
    from the point to the box's edge.
    """
    from morph.app.labels import leader

    fig = board.figure
    w, h = board.geometry.plot_area()
    (x0, x1), (y0, y1) = fig.layout.xaxis.range, fig.layout.yaxis.range

    def to_px(x, y, axis):
        fraction = (y - y0) / (y1 - y0) if axis == "y" else y  # y3: the strip, 0 at the bottom, 1 at the top
        return (x - x0) / (x1 - x0) * w, (1 - fraction) * h

    labels, leaders = [], []
    for a in fig.layout.annotations:
        if a.name != "label":
            continue
        px, py = to_px(a.x, a.y, a.yref)
        lw, lh = label_size(a.text)
        box = (px + a.ax - lw / 2, py + a.ay - lh / 2, px + a.ax + lw / 2, py + a.ay + lh / 2)
        labels.append((a.text, box))
        leaders.append((a.text, leader(px, py, box)))
    markers = []
    for shown, half in ((trace(fig, SELECTED), 5.0), (trace(fig, PUBLISHED), 5.5)):
        if shown.visible is False:
            continue
        for x, y in zip(() if shown.x is None else shown.x, () if shown.y is None else shown.y):
            px, py = to_px(math.log10(x), y, "y3" if shown.yaxis == "y3" else "y")
            markers.append((px - half, py - half, px + half, py + half))
    caption = None
    for a in fig.layout.annotations:
        if a.name == "budget":
            cw, ch = label_size(a.text)
            bx = (a.x - x0) / (x1 - x0) * w + a.xshift
            top = -(a.yshift or 0)
            caption = (bx, top, bx + cw, top + ch) if a.xanchor == "left" else (bx - cw, top, bx, top + ch)
    return labels, leaders, markers, caption


def test_segment_helpers():
    from morph.app.labels import leader, segment_hits_box, segments_cross

    assert segments_cross((0, 0, 10, 10), (0, 10, 10, 0))
    assert not segments_cross((0, 0, 10, 10), (10, 10, 20, 0))  # sharing an end
    assert not segments_cross((0, 0, 10, 0), (0, 1, 10, 1))
    assert segment_hits_box((0, 5, 20, 5), (8, 0, 12, 10)) and not segment_hits_box((0, 15, 20, 15), (8, 0, 12, 10))
    assert not segment_hits_box((0, 0, 8, 0), (8, -5, 12, 5))  # ends on the edge
    assert leader(0, 0, (10, -5, 30, 5)) == (0, 0, 10, 0)


def test_labels_are_placed_so_no_leader_line_crosses_another_or_a_label():
    from morph.app.labels import leader, segment_hits_box, segments_cross

    # Two rows of points whose nearest spots would make their leaders cross.
    rng = np.random.default_rng(3)
    x, y = rng.uniform(30, 370, 24), rng.uniform(30, 270, 24)
    sizes = [label_size(f"{k + 1}: 12x3072") for k in range(24)]
    placement = place_labels(x, y, sizes, (400, 300), marker_px=6)
    boxes = _boxes(placement, sizes)
    points = [(px, py) for px, py, ok in zip(x, y, placement.placed) if ok]
    lines = [leader(px, py, box) for (px, py), box in zip(points, boxes)]
    assert len(boxes) >= 5
    assert not any(segments_cross(a, b) for a, b in itertools.combinations(lines, 2))
    assert not any(segment_hits_box(line, box) for i, line in enumerate(lines)
                   for j, box in enumerate(boxes) if i != j)


@pytest.mark.parametrize("query", ["", "latency=3&top_k=8", "latency=1.2"])
@pytest.mark.parametrize("width", FIGURE_WIDTHS)
def test_plot_labels_in_pixels_neither_overlap_nor_cross_at_any_width(width, query):
    from morph.app.labels import segment_hits_box, segments_cross

    board = _boards(query)
    board.probe.width = width
    assert board.geometry.stacked == (width < STACK_BELOW_PX) and board.figure.layout.width == width
    labels, leaders, markers, caption = drawn_labels(board)
    if query == "":
        assert labels[0][0] == "1: 12x3072"
        assert caption is not None and any(text.startswith("OPT") or "+" in text or text[0].isalpha()
                                           for text, _ in labels[1:])  # the strip's models are named too
    boxes = [box for _, box in labels] + ([caption] if caption else [])
    assert not [(a, b) for a, b in itertools.combinations(boxes, 2) if boxes_overlap(a, b)]
    crossing = [(a, b) for (a, la), (b, lb) in itertools.combinations(leaders, 2) if segments_cross(la, lb)]
    assert crossing == []
    through = [(a, b) for a, line in leaders for b, box in labels if a != b and segment_hits_box(line, box)]
    assert through == []
    if caption is not None:
        assert not any(boxes_overlap(caption, marker) for marker in markers), "the budget label sits on a marker"
        assert not any(segment_hits_box(line, caption) for _, line in leaders)


_BOARDS: dict = {}


def _boards(query):
    if query not in _BOARDS:
        _BOARDS[query] = Dashboard.from_query(query, bootstrap=10) if query else Dashboard(bootstrap=10)
    return _BOARDS[query]


def test_what_the_lessons_show():
    from morph import preset
    from morph.app.teaching import flops_words, law_card, monospace, percent

    report = monospace("A   1.0 <x>\nB  22.0")
    assert report._repr_html_().startswith('<pre class="morph-report"') and "&lt;x&gt;" in report._repr_html_()
    assert repr(report) == "A   1.0 <x>\nB  22.0"  # plain-text frontends keep the columns too
    assert percent(0.673641) == "67.4%" and flops_words(1e20) == "1e20 FLOPs"
    card = law_card(preset("besiroglu2024"), "besiroglu2024")
    # The replication's published values (Besiroglu et al. 2024): E = 1.817, alpha = 0.3478.
    assert card.loc["E", "value"] == "1.817" and card.loc["alpha", "value"] == "0.3478"
    assert card.loc["E", "meaning"]  # each parameter says what it is


@pytest.mark.parametrize("width", [900, 1014, 360])
def test_the_page_holds_the_first_draw_until_the_figure_is_laid_out_for_its_width(width):
    # 900 px is the width assumed before the page reports one (figure_geometry(None)):
    # nothing to lay out again, and the hold is released all the same.
    board = Dashboard()
    assert board.figure._morph_hold is True
    seen = []
    board.figure.observe(lambda change: seen.append((change["new"], board.figure.layout.width)), names="_morph_hold")
    board.probe.width = width
    # Released once, after the layout for the width is in the figure (its edits are sent first).
    assert seen == [(False, max(300, width))]


def test_figures_outside_the_dashboard_are_never_held():
    from morph.app.bundle import figure_widget_class

    assert figure_widget_class()()._morph_hold is False
