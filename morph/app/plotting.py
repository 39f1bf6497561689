"""Plotting plumbing every figure shares: style, axis titles, number formats, filling a widget in place."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import NDArray
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .kernel import quick_jsonschema

# A figure's first display loads plotly's renderers, nbformat and jsonschema: without jsonschema's IRI
# checker (see quick_jsonschema), 1.6 s less at a lesson's first figure.
quick_jsonschema()


def _remember_key_paths() -> None:
    """Parse each of plotly's property paths (``"marker.color"``) once per process.

    plotly parses the path string again on every property read and write: a
    third of the kernel's time in a dashboard slider move, for a few dozen
    distinct strings. The parse is a pure function of the string; the cache
    hands out a fresh copy of the one list it returns.
    """
    import plotly.basedatatypes as base

    parse = base._str_to_dict_path_full
    if getattr(parse, "remembered", False):
        return
    remembered = functools.lru_cache(maxsize=4096)(parse)

    def parse_once(key_path_str: str) -> tuple[tuple, list]:
        try:
            path, starts = remembered(key_path_str)
        except TypeError:  # not hashable: plotly's own parse says what is wrong with it
            return parse(key_path_str)
        return path, list(starts)

    parse_once.remembered = True  # type: ignore[attr-defined]
    parse_once.__wrapped__ = parse  # type: ignore[attr-defined]
    base._str_to_dict_path_full = parse_once


_remember_key_paths()

__all__ = [
    "AXIS_TITLES",
    "COLORS",
    "FIT_COLOR",
    "HELDOUT_COLOR",
    "LABEL_COLOR",
    "ROOFLINE_DASH",
    "fill",
    "finish",
    "new_figure",
    "quiet",
    "run_labels",
    "si_format",
    "two_lines",
]

FloatArray = NDArray[np.float64]

AXIS_TITLES: dict[str, str] = {
    "N": "parameters N",
    "D": "training tokens D",
    "aspect_ratio": "aspect ratio R = d_model / n_layers",
    "tokens_per_parameter": "tokens per parameter D / N",
    "loss": "training loss (nats/token, as released)",
    "predicted": "predicted loss (nats/token)",
    "residual": "actual - predicted loss (nats/token)",
    "flops": "training compute C = 6 N D (FLOPs)",
    "n_layers": "depth n_layers (blocks)",
    "d_model": "width d_model (features)",
    "latency_s": "latency of one generate call (s)",
    "tokens_per_s": "throughput (generated tokens/s)",
    "batch": "batch (sequences per call)",
}
"""Axis title, with its unit, for each quantity the figures plot."""

COLORS = qualitative.Plotly
FIT_COLOR, HELDOUT_COLOR, LABEL_COLOR = "#1f77b4", "#ff7f0e", "#d62728"
ROOFLINE_DASH = "dot"
FIGURE_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=90, b=50), hovermode="closest")


def fill(target: go.FigureWidget, source: go.Figure) -> go.FigureWidget:
    """Copy ``source`` into the widget ``target`` in one ``batch_update``.

    When both have the same traces (same count and types, the usual case when
    a slider moves) each trace is updated in place and the layout merged key
    by key, so the page only restyles and relayouts; otherwise traces and
    layout are replaced whole.

    A page draws a FigureWidget from the state it had when it was built and
    applies later edits only to views already shown: build the widget from a
    figure (``go.FigureWidget(builder(...))``), not empty, and fill it afterwards.

    Returns
    -------
    FigureWidget
        ``target``.
    """
    same = len(target.data) == len(source.data) and all(
        old.type == new.type for old, new in zip(target.data, source.data)
    )
    with target.batch_update():
        if not same:
            target.data = ()
            target.add_traces(list(source.data))
            target.layout = source.layout
            # A page shows messages like the ones above only in views that already
            # exist. Views made later draw the state the widget had when it was last
            # displayed; IPython's display protocol, which plotly implements to
            # refresh that state, brings it up to date (and displays nothing itself).
            target._repr_mimebundle_()
            return target
        for old, new in zip(target.data, source.data):
            old.update(new.to_plotly_json(), overwrite=True)
        layout = source.layout.to_plotly_json()
        if target.layout.template == source.layout.template:
            layout.pop("template", None)  # unchanged: not worth sending again
        # Shapes and annotations are lists: replace them whole, even when empty.
        layout.setdefault("shapes", [])
        layout.setdefault("annotations", [])
        target.update_layout(layout, overwrite=True)
    return target


def finish(fig: go.Figure, into: go.FigureWidget | None) -> go.Figure:
    """``fig``, or ``into`` filled with it (see :func:`fill`)."""
    return fill(into, fig) if into is not None else fig


def new_figure(rows: int = 1, cols: int = 1, **subplots: Any) -> go.Figure:
    """An empty figure (with subplots when asked) in Morph's style."""
    fig = make_subplots(rows=rows, cols=cols, **subplots) if rows * cols > 1 or subplots else go.Figure()
    fig.update_layout(**FIGURE_LAYOUT)
    return fig


def quiet() -> Any:
    """Silence numpy's floating-point warnings while a curve is computed."""
    # A fit on a degenerate design can hold exponents in the thousands; its
    # curves overflow to inf, which plotly draws as gaps. Say nothing.
    return np.errstate(all="ignore")


def si_format(value: float) -> str:
    """``1.67e9`` as ``1.67B``, ``2.9e10`` as ``29B``: how model and data sizes are spoken of."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def run_labels(frame: pd.DataFrame) -> NDArray[np.str_]:
    """A short name per run: ``run`` or ``variant`` if the table has one, else ``LxD``, else the row number."""
    for column in ("run", "variant", "name", "label", "model"):
        if column in frame.columns:
            return frame[column].astype(str).to_numpy()
    if {"n_layers", "d_model"} <= set(frame.columns):
        layers = frame["n_layers"].astype(np.int64).astype(str).to_numpy()
        return np.char.add(np.char.add(layers, "x"), frame["d_model"].astype(np.int64).astype(str).to_numpy())
    return np.char.add("row ", np.arange(1, len(frame) + 1).astype(str))


def two_lines(title: str, subtitle: str) -> str:
    """A title with a smaller second line."""
    return f"{title}<br><sup>{subtitle}</sup>"
