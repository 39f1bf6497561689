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

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["Placement", "boxes_overlap", "label_size", "place_labels"]

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
    taken: list[tuple[float, float, float, float]] = [tuple(map(float, box)) for box in obstacles]  # type: ignore[misc]
    taken += [(px - marker_px, py - marker_px, px + marker_px, py + marker_px) for px, py in zip(x, y) if np.isfinite(px + py)]
    out_x, out_y = np.full(x.size, np.nan), np.full(x.size, np.nan)
    placed = np.zeros(x.size, dtype=bool)
    for i, (px, py) in enumerate(zip(x, y)):
        if not np.isfinite(px + py):
            continue
        w, h = sizes[i]
        for spot in _spots(px, py, w, h, marker_px):
            box = (spot[0] - w / 2, spot[1] - h / 2, spot[0] + w / 2, spot[1] + h / 2)
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height
            if inside and not any(boxes_overlap(box, other, pad_px) for other in taken):
                taken.append(box)
                out_x[i], out_y[i], placed[i] = spot[0], spot[1], True
                break
    return Placement(out_x, out_y, placed)


def _spots(px: float, py: float, w: float, h: float, marker_px: float) -> list[tuple[float, float]]:
    spots = []
    for reach in _REACH_PX:
        for dx, dy in _DIRECTIONS:
            spots.append((px + dx * (w / 2 + marker_px + reach), py + dy * (h / 2 + marker_px + reach)))
    return spots
