"""Plot labels that never overlap: a greedy, collision-avoiding placement in pixels.

Each label is a box of known size (pixels) that should sit near its point. Labels are
placed in priority order (the best-ranked shape first): each tries a fixed list of
spots around its point, nearest first, and takes the first one that stays inside the
plot area and overlaps neither a label already placed, nor an obstacle (a marker, the
budget's caption). A label with no free spot is left out (``placed`` is False): the
ranked table and the hover text still name it. Pure numpy; the dashboard converts the
spots to plotly annotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["Placement", "boxes_overlap", "label_size", "leader", "place_caption", "place_labels",
           "segment_hits_box", "segments_cross"]

FloatArray = NDArray[np.float64]

CHAR_WIDTH_PX = 7.0
"""Upper bound on the mean width of a character at plotly's 11 px label font (Open Sans about 6.2 px)."""
LINE_HEIGHT_PX = 16.0
"""Height of a one-line label box at 11 px, with its padding."""

# Centre offsets tried around a point, as multiples of (half box width + gap,
# half box height + gap): right, left, above, below, then the diagonals, each
# at growing distances. The first free one wins, so nearer spots come first.
_DIRECTIONS = ((1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1))
_REACH_PX = (6.0, 22.0, 40.0, 64.0, 96.0)


@dataclass(frozen=True)
class Placement:
    """Where each label went.

    Attributes
    ----------
    x, y : ndarray
        Centre of each label box (pixels from the plot area's top-left corner;
        ``y`` grows downwards, as on screen). NaN where not placed.
    placed : ndarray of bool
    """

    x: FloatArray
    y: FloatArray
    placed: NDArray[np.bool_]


def label_size(text: str, font_px: float = 11.0) -> tuple[float, float]:
    """A generous (width, height) in pixels of a one-line label: wide enough for any common font."""
    scale = font_px / 11.0
    return (len(text) * CHAR_WIDTH_PX * scale + 6.0, LINE_HEIGHT_PX * scale)


def boxes_overlap(a: Sequence[float], b: Sequence[float], pad: float = 0.0) -> bool:
    """Whether two boxes ``(x0, y0, x1, y1)`` overlap, counting ``pad`` pixels around ``a``."""
    return a[0] - pad < b[2] and b[0] < a[2] + pad and a[1] - pad < b[3] and b[1] < a[3] + pad


def segments_cross(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether segments ``a`` and ``b`` (``(x0, y0, x1, y1)``) cross properly (sharing an end is not crossing)."""
    def side(x0: float, y0: float, x1: float, y1: float, x: float, y: float) -> float:
        return (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)

    eps = 1e-9
    d1, d2 = side(*a, b[0], b[1]), side(*a, b[2], b[3])
    d3, d4 = side(*b, a[0], a[1]), side(*b, a[2], a[3])
    return ((d1 > eps and d2 < -eps) or (d1 < -eps and d2 > eps)) and ((d3 > eps and d4 < -eps) or (d3 < -eps and d4 > eps))


def segment_hits_box(segment: Sequence[float], box: Sequence[float], pad: float = 0.0) -> bool:
    """Whether a segment ``(x0, y0, x1, y1)`` passes through the inside of a box ``(x0, y0, x1, y1)`` grown by ``pad``."""
    x0, y0, x1, y1 = segment
    bx0, by0, bx1, by1 = box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad
    # Liang-Barsky clipping: the part of the segment inside the box, if any, has positive length.
    t0, t1 = 0.0, 1.0
    for p, q in ((-(x1 - x0), x0 - bx0), (x1 - x0, bx1 - x0), (-(y1 - y0), y0 - by0), (y1 - y0, by1 - y0)):
        if p == 0.0:
            if q <= 0.0:
                return False
        else:
            t = q / p
            if p < 0.0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    return t1 - t0 > 1e-9


def leader(px: float, py: float, box: Sequence[float]) -> tuple[float, float, float, float]:
    """The leader line from a point to the edge of its label's box (plotly draws the arrow so)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    hw, hh = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    dx, dy = px - cx, py - cy
    if abs(dx) <= hw and abs(dy) <= hh:
        return (px, py, px, py)  # the point is under its own box
    scale = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return (px, py, cx + dx * scale, cy + dy * scale)


def place_caption(
    x: float,
    size: tuple[float, float],
    area: tuple[float, float],
    markers: Sequence[Sequence[float]] = (),
    gap_px: float = 3.0,
    step_px: float = 6.0,
) -> tuple[tuple[float, float, float, float], bool]:
    """Where a caption of a vertical line at ``x`` (pixels) goes: ``(box, right_side)``.

    Top of the plot, right of the line (left when it does not fit), moved down in
    ``step_px`` steps until it covers none of the ``markers`` (boxes); at the top if
    no spot in the upper half is free.
    """
    w, h = size
    width, height = area
    sides = [True, False] if x + gap_px + w <= width else [False, True]
    sides = [right for right in sides if (x + gap_px + w <= width if right else x - gap_px - w >= 0)] or sides[:1]
    def box_at(right: bool, top: float) -> tuple[float, float, float, float]:
        return (x + gap_px, top, x + gap_px + w, top + h) if right else (x - gap_px - w, top, x - gap_px, top + h)

    top = 0.0
    while top + h <= height / 2:
        for right in sides:
            box = box_at(right, top)
            if not any(boxes_overlap(box, marker, 1.0) for marker in markers):
                return box, right
        top += step_px
    return box_at(sides[0], 0.0), sides[0]


def place_labels(
    x: FloatArray,
    y: FloatArray,
    sizes: Sequence[tuple[float, float]],
    area: tuple[float, float],
    obstacles: Sequence[Sequence[float]] = (),
    marker_px: float = 8.0,
    pad_px: float = 2.0,
) -> Placement:
    """Place one label per point, in the given (priority) order, without any two overlapping.

    Parameters
    ----------
    x, y : ndarray
        The labelled points, in pixels from the plot area's top-left corner.
    sizes : sequence of (width, height)
        Each label's box, in pixels (:func:`label_size`).
    area : (width, height)
        The plot area in pixels: every label stays inside it.
    obstacles : sequence of (x0, y0, x1, y1)
        Boxes no label may cover (pixels), besides the labelled points' markers.
    marker_px : float
        Half the size of a labelled point's marker: no label covers any of them.
    pad_px : float
        Clear space kept between boxes.

    Returns
    -------
    Placement
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    width, height = area
    blocked: list[tuple[float, float, float, float]] = [tuple(map(float, box)) for box in obstacles]  # type: ignore[misc]
    markers = [(px - marker_px, py - marker_px, px + marker_px, py + marker_px) for px, py in zip(x, y) if np.isfinite(px + py)]
    boxes: list[tuple[float, float, float, float]] = []  # labels placed so far
    leaders: list[tuple[float, float, float, float]] = []
    out_x, out_y = np.full(x.size, np.nan), np.full(x.size, np.nan)
    placed = np.zeros(x.size, dtype=bool)
    for i, (px, py) in enumerate(zip(x, y)):
        if not np.isfinite(px + py):
            continue
        w, h = sizes[i]
        for spot in _spots(px, py, w, h, marker_px):
            box = (spot[0] - w / 2, spot[1] - h / 2, spot[0] + w / 2, spot[1] + h / 2)
            if not (box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height):
                continue
            if any(boxes_overlap(box, other, pad_px) for other in (*blocked, *markers, *boxes)):
                continue
            line = leader(float(px), float(py), box)
            if (any(segment_hits_box(line, other) for other in (*blocked, *boxes))
                    or any(segments_cross(line, other) for other in leaders)
                    or any(segment_hits_box(other, box, pad_px) for other in leaders)):
                continue
            boxes.append(box)
            leaders.append(line)
            out_x[i], out_y[i], placed[i] = spot[0], spot[1], True
            break
    return Placement(out_x, out_y, placed)


def _spots(px: float, py: float, w: float, h: float, marker_px: float) -> list[tuple[float, float]]:
    spots = []
    for reach in _REACH_PX:
        for dx, dy in _DIRECTIONS:
            spots.append((px + dx * (w / 2 + marker_px + reach), py + dy * (h / 2 + marker_px + reach)))
    return spots
