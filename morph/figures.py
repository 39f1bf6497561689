"""Plotly figures of laws, compute-optimal allocation, latency and fits.

Every builder is a pure function of package objects (laws, fits, tables,
hardware names) that returns a new :class:`plotly.graph_objects.Figure`.
Given ``into=`` a :class:`plotly.graph_objects.FigureWidget`, it fills that
widget instead (see :func:`fill`) and returns it, so an interactive explorer
redraws in place: one widget, mutated under ``batch_update()``, is much cheaper
in a page than a new figure per slider move.

Curves are computed as whole arrays; loops run over curves and groups, never
over points. Axis titles carry units: loss in nats per token (the training
loss as released by Bian et al.), compute in FLOPs, time in seconds.

Builders
--------
Laws and data: :func:`runs_scatter`, :func:`loss_terms`, :func:`loss_vs_params`,
:func:`law_overview`, :func:`compute_optimal_frontier`, :func:`loss_vs_aspect_ratio`.
Latency: :func:`latency_vs_shape`, :func:`latency_at_equal_size`, :func:`throughput_vs_batch`.
Fits: :func:`residuals_figure`, :func:`predicted_vs_actual`, :func:`fit_diagnostics`,
:func:`compare_residuals`. Selection: :func:`selection_figure`.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import ArrayLike, NDArray
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .data import load_runs
from .errors import MorphError
from .frontier import Selection
from .hardware import get_hardware
from .laws import ScalingLaw
from .latency import predict_latency, resolve_calibration, roofline_latency
from .shapes import enumerate_shapes, parameter_count

if TYPE_CHECKING:  # only annotations: the dashboard draws without scipy.optimize
    from .fitting import FitResult

__all__ = [
    "AXIS_TITLES",
    "fill",
    "si_format",
    "runs_scatter",
    "loss_terms",
    "loss_vs_params",
    "law_overview",
    "compute_optimal_frontier",
    "loss_vs_aspect_ratio",
    "latency_vs_shape",
    "latency_at_equal_size",
    "throughput_vs_batch",
    "residuals_figure",
    "predicted_vs_actual",
    "fit_diagnostics",
    "compare_residuals",
    "selection_figure",
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
_FIGURE_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=90, b=50), hovermode="closest")


# -- plumbing ------------------------------------------------------------------------------


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
            # exist; keep the widget's own state current for views made later.
            target._widget_data = copy.deepcopy(target._data)
            target._widget_layout = copy.deepcopy(target._layout_obj._props)
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


def _finish(fig: go.Figure, into: go.FigureWidget | None) -> go.Figure:
    return fill(into, fig) if into is not None else fig


def _figure(rows: int = 1, cols: int = 1, **subplots: Any) -> go.Figure:
    fig = make_subplots(rows=rows, cols=cols, **subplots) if rows * cols > 1 or subplots else go.Figure()
    fig.update_layout(**_FIGURE_LAYOUT)
    return fig


def _quiet() -> Any:
    # A fit on a degenerate design can hold exponents in the thousands; its
    # curves overflow to inf, which plotly draws as gaps. Say nothing.
    return np.errstate(all="ignore")


def si_format(value: float) -> str:
    """``1.67e9`` as ``1.67B``, ``2.9e10`` as ``29B``: how model and data sizes are spoken of."""
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def _run_labels(frame: pd.DataFrame) -> NDArray[np.str_]:
    """A short name per run: ``run`` or ``variant`` if the table has one, else ``LxD``, else the row number."""
    for column in ("run", "variant", "name", "label", "model"):
        if column in frame.columns:
            return frame[column].astype(str).to_numpy()
    if {"n_layers", "d_model"} <= set(frame.columns):
        layers = frame["n_layers"].astype(np.int64).astype(str).to_numpy()
        return np.char.add(np.char.add(layers, "x"), frame["d_model"].astype(np.int64).astype(str).to_numpy())
    return np.char.add("row ", np.arange(1, len(frame) + 1).astype(str))


def _x_values(frame: pd.DataFrame, x: str) -> FloatArray:
    if x == "tokens_per_parameter":
        return frame["D"].to_numpy(float) / frame["N"].to_numpy(float)
    if x not in frame.columns:
        raise MorphError(f"the runs have no {x!r} column to plot against; choose N, D, tokens_per_parameter or loss")
    return frame[x].to_numpy(float)


def _log_axis(x: str) -> str:
    return "linear" if x in ("loss",) else "log"


# -- laws and data ---------------------------------------------------------------------------


def runs_scatter(
    runs: pd.DataFrame | None = None, *, x: str = "N", color: str = "budget_label", into: go.FigureWidget | None = None
) -> go.Figure:
    """Training loss of each run against ``x``, one colour per value of ``color``.

    Parameters
    ----------
    runs : DataFrame, optional
        Validated runs (:func:`morph.data.load_runs`); the paper's 76 by default.
    x : {"N", "D", "aspect_ratio", "tokens_per_parameter"}
        Horizontal axis (logarithmic).
    color : str
        Column whose values get one colour each (``budget_label``: 20N, 40N,
        160N). Without that column every run has one colour.
    into : FigureWidget, optional
        Fill this widget instead of returning a new figure.
    """
    runs = load_runs() if runs is None else runs
    fig = _figure()
    xs, labels = _x_values(runs, x), _run_labels(runs)
    groups = runs[color].astype(str).to_numpy() if color in runs.columns else np.full(len(runs), "runs")
    order = pd.unique(groups)
    for i, group in enumerate(order):
        mask = groups == group
        fig.add_trace(go.Scatter(
            x=xs[mask], y=runs["loss"].to_numpy(float)[mask], mode="markers", name=str(group),
            marker=dict(color=COLORS[i % len(COLORS)], size=8),
            text=labels[mask], hovertemplate="%{text}<br>x = %{x:.4g}<br>loss = %{y:.4f}<extra></extra>",
        ))
    fig.update_xaxes(type=_log_axis(x), title=AXIS_TITLES.get(x, x))
    fig.update_yaxes(title=AXIS_TITLES["loss"])
    fig.update_layout(title=f"{len(runs)} training runs", legend_title=color if color in runs.columns else None)
    return _finish(fig, into)


def loss_terms(
    law: ScalingLaw,
    *,
    tokens_per_parameter: float = 20.0,
    aspect_ratio: float | None = None,
    params: tuple[float, float] = (1e7, 1e12),
    n_points: int = 200,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """The terms of ``E + A / N^alpha + B / D^beta`` along ``D = k N``, on log-log axes.

    Each power-law term is a straight line of slope ``-alpha`` or ``-beta``;
    the irreducible ``E`` is flat, and the loss approaches it from above.

    Parameters
    ----------
    law : ScalingLaw
    tokens_per_parameter : float
        ``k``: training tokens per parameter.
    aspect_ratio : float, optional
        Required by shape-aware laws (their total includes the shape factor).
    params : (float, float)
        Range of ``N`` (parameters).
    n_points : int
        Points per curve.
    """
    N = np.geomspace(*params, n_points)
    D = tokens_per_parameter * N
    fig = _figure()
    terms = {
        f"A / N^alpha (model size; alpha = {law.alpha:.3g})": law.A / N**law.alpha,
        f"B / D^beta (data; beta = {law.beta:.3g})": law.B / D**law.beta,
        f"E (irreducible) = {law.E:.3g}": np.full_like(N, law.E),
        "loss": law.predict(N, D, aspect_ratio),
    }
    for i, (name, values) in enumerate(terms.items()):
        fig.add_trace(go.Scatter(
            x=N, y=values, mode="lines", name=name,
            line=dict(color="black" if name == "loss" else COLORS[i], width=3 if name == "loss" else 2,
                      dash="solid" if name == "loss" else "dash"),
            hovertemplate="N = %{x:.3s}<br>%{y:.4g} nats/token<extra>" + name.split(" (")[0] + "</extra>",
        ))
    fig.update_xaxes(type="log", title=AXIS_TITLES["N"])
    fig.update_yaxes(type="log", title="loss and its terms (nats/token)")
    fig.update_layout(title=f"{law.family}: the terms of the loss at D = {tokens_per_parameter:g} N")
    return _finish(fig, into)


def _add_loss_vs_params(
    fig: go.Figure, law: ScalingLaw, tokens: Sequence[float], aspect_ratio: float | None,
    params: tuple[float, float], n_points: int, row: int | None = None, col: int | None = None,
    showlegend: bool = True,
) -> None:
    N = np.geomspace(*params, n_points)
    with _quiet():
        for i, D in enumerate(tokens):
            fig.add_trace(go.Scatter(
                x=N, y=law.predict(N, D, aspect_ratio), mode="lines", name=f"D = {si_format(D)} tokens",
                line=dict(color=COLORS[i % len(COLORS)]), showlegend=showlegend,
                hovertemplate="N = %{x:.3s}<br>loss = %{y:.4f}<extra>D = " + si_format(D) + "</extra>",
            ), row=row, col=col)
    fig.update_xaxes(type="log", title=AXIS_TITLES["N"], row=row, col=col)
    fig.update_yaxes(title=AXIS_TITLES["predicted"], row=row, col=col)


def loss_vs_params(
    law: ScalingLaw,
    tokens: Sequence[float] = (1e9, 1e10, 1e11, 1e12),
    *,
    aspect_ratio: float | None = None,
    params: tuple[float, float] = (1e7, 1e11),
    n_points: int = 200,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Predicted loss against parameters ``N``, one curve per token budget ``D``.

    Parameters
    ----------
    law : ScalingLaw
    tokens : sequence of float
        Training tokens ``D`` of each curve.
    aspect_ratio : float, optional
        ``d_model / n_layers``, required by shape-aware laws.
    params : (float, float)
        Range of ``N``.
    """
    fig = _figure()
    _add_loss_vs_params(fig, law, tokens, aspect_ratio, params, n_points)
    shape = f" at R = {aspect_ratio:g}" if law.needs_aspect_ratio else ""
    fig.update_layout(title=f"{law.family} law: loss vs model size{shape}", legend_title="training tokens")
    return _finish(fig, into)


def law_overview(
    law: ScalingLaw,
    *,
    N: float,
    D: float,
    aspect_ratio: float = 64.0,
    params: tuple[float, float] = (1e7, 1e12),
    ratios: tuple[float, float] = (4.0, 1024.0),
    n_points: int = 160,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Two views of one law around a point ``(N, D, R)``.

    Left: loss against ``N`` at ``D / 10``, ``D`` and ``10 D``. Right: loss
    against the aspect ratio at ``(N, D)``: flat for Chinchilla, rising for
    the inference-efficient law with ``eps > 0``, a U for the U-shaped law.
    A marker shows the point on both.

    Parameters
    ----------
    law : ScalingLaw
    N, D : float
        Parameters and training tokens of the point.
    aspect_ratio : float
        Its ``d_model / n_layers`` (ignored by Chinchilla).
    params, ratios : (float, float)
        Ranges of ``N`` and ``R`` shown.
    """
    with _quiet():
        loss = float(law.predict(N, D, aspect_ratio))
    fig = _figure(1, 2, horizontal_spacing=0.1,
                  subplot_titles=("loss vs parameters N", f"loss vs aspect ratio at N = {si_format(N)}, D = {si_format(D)}"))
    _add_loss_vs_params(fig, law, (D / 10, D, 10 * D), aspect_ratio, params, n_points, row=1, col=1)
    R = np.geomspace(*ratios, n_points)
    with _quiet():
        fig.add_trace(go.Scatter(
            x=R, y=np.broadcast_to(law.predict(N, D, R), R.shape), mode="lines", name="loss vs R",
            line=dict(color=COLORS[1]), showlegend=False,
            hovertemplate="R = %{x:.3g}<br>loss = %{y:.4f}<extra></extra>",
        ), row=1, col=2)
    for x, col in ((N, 1), (aspect_ratio, 2)):
        fig.add_trace(go.Scatter(
            x=[x], y=[loss], mode="markers", name="the point", showlegend=col == 1,
            marker=dict(color="black", size=11, symbol="x"),
            hovertemplate=f"N = {si_format(N)}, D = {si_format(D)}, R = {aspect_ratio:.3g}<br>loss = {loss:.4f}<extra></extra>",
        ), row=1, col=col)
    fig.update_xaxes(type="log", title=AXIS_TITLES["aspect_ratio"], row=1, col=2)
    fig.update_yaxes(title=AXIS_TITLES["predicted"], row=1, col=2)
    fig.update_layout(title=f"{law.family}: predicted loss {loss:.4f} nats/token at the marked point")
    return _finish(fig, into)


def compute_optimal_frontier(
    laws: ScalingLaw | Mapping[str, ScalingLaw],
    *,
    flops: tuple[float, float] = (1e18, 1e25),
    aspect_ratio: float = 64.0,
    budget: float | None = None,
    n_points: int = 120,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """The compute-optimal allocation of each law against training compute ``C = 6 N D``.

    Three panels: the least loss reachable at ``C``; the optimal ``N`` (solid)
    and ``D`` (dashed); and their ratio ``D / N``, about 20 for a
    Chinchilla-style law fitted as Besiroglu et al. did.

    Parameters
    ----------
    laws : ScalingLaw or mapping of name to ScalingLaw
    flops : (float, float)
        Range of training compute (FLOPs).
    aspect_ratio : float
        Shape at which shape-aware laws give their loss (it does not move the optimum).
    budget : float, optional
        A compute budget to mark on every panel.

    Raises
    ------
    MorphError
        If a law has no compute-optimal allocation (non-positive ``A``, ``B``
        or exponents).
    """
    named = {laws.family: laws} if isinstance(laws, ScalingLaw) else dict(laws)
    C = np.geomspace(*flops, n_points)
    fig = _figure(1, 3, horizontal_spacing=0.08, subplot_titles=(
        "least loss at compute C", "optimal N (solid) and D (dashed)", "tokens per parameter D / N"))
    for i, (name, law) in enumerate(named.items()):
        ratio = aspect_ratio if law.needs_aspect_ratio else None
        optimum = law.compute_optimal(C, ratio)
        color = COLORS[i % len(COLORS)]
        common = dict(mode="lines", legendgroup=name, line=dict(color=color))
        fig.add_trace(go.Scatter(x=C, y=optimum.loss, name=name, **common,
                                 hovertemplate="C = %{x:.3g} FLOPs<br>loss = %{y:.4f}<extra>" + name + "</extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=C, y=optimum.N, name=f"{name}: N", showlegend=False, **common,
                                 hovertemplate="C = %{x:.3g}<br>N = %{y:.3s}<extra>" + name + "</extra>"),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=C, y=optimum.D, name=f"{name}: D", showlegend=False, mode="lines",
                                 legendgroup=name, line=dict(color=color, dash="dash"),
                                 hovertemplate="C = %{x:.3g}<br>D = %{y:.3s}<extra>" + name + "</extra>"),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=C, y=optimum.tokens_per_parameter, name=f"{name}: D/N", showlegend=False,
                                 **common, hovertemplate="C = %{x:.3g}<br>D/N = %{y:.3g}<extra>" + name + "</extra>"),
                      row=1, col=3)
        if budget is not None:
            at = law.compute_optimal(budget, ratio)
            values = (float(at.loss), float(at.N), float(at.tokens_per_parameter))
            for col, y in zip((1, 2, 3), values):
                fig.add_trace(go.Scatter(
                    x=[budget], y=[y], mode="markers", name=f"{name} at C", showlegend=False, legendgroup=name,
                    marker=dict(color=color, size=10, symbol="circle-open", line=dict(width=2)),
                    hovertemplate=f"C = {budget:.3g}<br>%{{y:.4g}}<extra>{name}</extra>",
                ), row=1, col=col)
    fig.update_xaxes(type="log", title=AXIS_TITLES["flops"])
    fig.update_yaxes(title=AXIS_TITLES["predicted"], row=1, col=1)
    fig.update_yaxes(type="log", title="parameters N, tokens D", row=1, col=2)
    fig.update_yaxes(type="log", title=AXIS_TITLES["tokens_per_parameter"], row=1, col=3)
    fig.update_layout(title="Compute-optimal allocation (6 N D = C)", legend_title="law")
    return _finish(fig, into)


def loss_vs_aspect_ratio(
    runs: pd.DataFrame | None,
    laws: Mapping[str, ScalingLaw],
    *,
    groups: Sequence[str] | None = None,
    min_runs: int = 5,
    cols: int = 3,
    ratios: tuple[float, float] = (8.0, 512.0),
    n_points: int = 120,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Loss against aspect ratio within groups of runs of one size and token budget, with law curves.

    One panel per group (``size_label@budget_label``): the runs as points,
    and each law's prediction along ``R`` at the group's median ``N`` and
    ``D``. Runs of one nominal size differ slightly in ``N``, so points sit a
    little off a curve even where the law is right about shape.

    Parameters
    ----------
    runs : DataFrame or None
        Runs with ``size_label``, ``budget_label`` and ``aspect_ratio``
        (the paper's 76 when None).
    laws : mapping of name to ScalingLaw
    groups : sequence of str, optional
        Panels to draw, e.g. ``["80M@20N", "116M@20N"]``; by default every
        group with at least ``min_runs`` runs.
    cols : int
        Panels per row.
    ratios : (float, float)
        Range of ``R`` for the curves.
    """
    runs = load_runs() if runs is None else runs
    missing = {"size_label", "budget_label", "aspect_ratio"} - set(runs.columns)
    if missing:
        raise MorphError(f"the runs need the column(s) {', '.join(sorted(missing))} to be grouped by size and budget")
    key = (runs["size_label"].astype(str) + "@" + runs["budget_label"].astype(str)).to_numpy()
    if groups is None:
        counts = pd.Series(key).value_counts()
        size = runs["N"].groupby(key).median()
        # Order by budget (20N before 40N), then size; labels that are not "<k>N" sort by tokens per parameter.
        budget = pd.to_numeric(runs["budget_label"].astype(str).str.rstrip("N"), errors="coerce")
        budget = budget.fillna(runs["D"] / runs["N"]).groupby(key).median()
        ranked = pd.DataFrame({"n": counts, "N": size, "k": budget}).query("n >= @min_runs")
        groups = ranked.sort_values(["k", "N"]).index.tolist()
    unknown = [g for g in groups if g not in set(key)]
    if unknown or not groups:
        raise MorphError(f"no runs in group(s) {', '.join(unknown) or '(none chosen)'}; groups look like 80M@20N")
    rows = math.ceil(len(groups) / cols)
    fig = _figure(rows, cols, subplot_titles=list(groups), horizontal_spacing=0.06,
                  vertical_spacing=0.12 if rows > 1 else 0.0)
    R = np.geomspace(*ratios, n_points)
    labels = _run_labels(runs)
    for i, group in enumerate(groups):
        row, col = i // cols + 1, i % cols + 1
        mask = key == group
        members = runs[mask]
        fig.add_trace(go.Scatter(
            x=members["aspect_ratio"], y=members["loss"], mode="markers", name="runs", legendgroup="runs",
            showlegend=i == 0, marker=dict(color="black", size=8), text=labels[mask],
            hovertemplate="%{text}<br>R = %{x:.3g}<br>loss = %{y:.4f}<extra></extra>",
        ), row=row, col=col)
        N, D = float(members["N"].median()), float(members["D"].median())
        with _quiet():
            for j, (name, law) in enumerate(laws.items()):
                fig.add_trace(go.Scatter(
                    x=R, y=np.broadcast_to(law.predict(N, D, R), R.shape), mode="lines", name=name,
                    legendgroup=name, showlegend=i == 0, line=dict(color=COLORS[j % len(COLORS)]),
                    hovertemplate="R = %{x:.3g}<br>loss = %{y:.4f}<extra>" + name + "</extra>",
                ), row=row, col=col)
    fig.update_xaxes(type="log")
    for col in range(1, cols + 1):
        fig.update_xaxes(title=AXIS_TITLES["aspect_ratio"] if rows == 1 else "R = d_model / n_layers",
                         row=rows, col=col)
    for row in range(1, rows + 1):
        fig.update_yaxes(title="loss (nats/token)", row=row, col=1)
    fig.update_layout(title="Loss against shape at fixed size and tokens: points are runs, lines are laws",
                      height=max(380, 300 * rows))
    return _finish(fig, into)


# -- latency ---------------------------------------------------------------------------------


def _workload_mask(measurements: pd.DataFrame, hardware: str, batch: int, input_tokens: int,
                   output_tokens: int, dtype: str) -> NDArray[np.bool_]:
    """Rows timed under the given workload (columns a table lacks are not checked)."""
    mask = np.ones(len(measurements), dtype=bool)
    for column, value in (("batch", batch), ("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if column in measurements.columns:
            mask &= measurements[column].to_numpy() == value
    if "dtype" in measurements.columns:
        mask &= measurements["dtype"].astype(str).to_numpy() == dtype
    if "hardware" in measurements.columns:
        mask &= measurements["hardware"].astype(str).to_numpy() == hardware
    return mask


def _measurement_trace(frame: pd.DataFrame, x: str, name: str, showlegend: bool) -> go.Scatter:
    labels = _run_labels(frame[["n_layers", "d_model"]])
    return go.Scatter(
        x=frame[x], y=frame["latency_s"], mode="markers", name=name, legendgroup="measured", showlegend=showlegend,
        marker=dict(color=LABEL_COLOR, size=9, symbol="diamond"), text=labels,
        hovertemplate="%{text}: %{y:.3g} s measured<extra></extra>",
    )


def _two_lines(title: str, subtitle: str) -> str:
    return f"{title}<br><sup>{subtitle}</sup>"


def _workload_text(batch: int, input_tokens: int, output_tokens: int, dtype: str) -> str:
    return f"batch {batch}, {input_tokens} in + {output_tokens} out tokens, {dtype}"


def latency_vs_shape(
    *,
    hardware: str = "a100-40gb",
    calibration: Any = None,
    d_model: int = 2048,
    n_layers: int = 12,
    depth: tuple[int, int] = (1, 48),
    width: tuple[int, int] = (256, 8192),
    batch: int = 1,
    input_tokens: int = 128,
    output_tokens: int = 256,
    dtype: str = "bf16",
    measurements: pd.DataFrame | None = None,
    mark_shape: bool = False,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Latency against depth at fixed width (left) and against width at fixed depth (right).

    Each panel has the calibrated model (solid), the roofline floor (dotted:
    datasheet bandwidth and throughput, no host time) and, where given,
    measurements timed under the same workload with the panel's fixed
    dimension.

    Parameters
    ----------
    hardware : str
        Hardware preset (:func:`morph.hardware.hardware_presets`).
    calibration : str, path or Calibration, optional
        Latency-model coefficients; the hardware's default when None.
    d_model : int
        Width of the depth panel (features).
    n_layers : int
        Depth of the width panel (blocks).
    depth, width : (int, int)
        Ranges of the two panels (widths on a grid of 64).
    batch, input_tokens, output_tokens, dtype
        The ``generate`` workload (see :func:`morph.latency.predict_latency`).
    measurements : DataFrame, optional
        Timings with ``n_layers``, ``d_model``, ``latency_s`` (as from
        :func:`morph.calibration.load_measurements`); rows of another
        workload or hardware are left out. Given (even empty), the figure
        always has its measurement traces, so an explorer redraws in place.
    mark_shape : bool
        Mark the shape ``n_layers x d_model`` where the two panels meet.
    """
    device = get_hardware(hardware)
    name = resolve_calibration(calibration, device).name
    workload = dict(hardware=device, calibration=calibration, batch=batch, input_tokens=input_tokens,
                    output_tokens=output_tokens, dtype=dtype)
    layers = np.arange(max(1, depth[0]), depth[1] + 1)
    widths = np.arange(max(64, -(-width[0] // 64) * 64), width[1] + 1, 64)
    fig = _figure(1, 2, horizontal_spacing=0.1, subplot_titles=(
        f"depth at d_model = {d_model}", f"width at n_layers = {n_layers}"))
    panels = ((1, "n_layers", layers, np.full_like(layers, d_model)), (2, "d_model", np.full_like(widths, n_layers), widths))
    for col, x, L, d in panels:
        xs = L if x == "n_layers" else d
        model = predict_latency(L, d, **workload)
        floor = roofline_latency(L, d, **{k: v for k, v in workload.items() if k != "calibration"})
        fig.add_trace(go.Scatter(
            x=xs, y=model.latency_s, mode="lines", name=f"model ({name})", legendgroup="model", showlegend=col == 1,
            line=dict(color=COLORS[0], width=3), customdata=np.column_stack([model.ms_per_token, floor]),
            hovertemplate="%{x}: %{y:.3g} s, %{customdata[0]:.3g} ms/token<extra>model</extra>",
        ), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=xs, y=floor, mode="lines", name="roofline floor", legendgroup="roofline", showlegend=col == 1,
            line=dict(color=COLORS[2], dash=ROOFLINE_DASH),
            hovertemplate="%{x}: %{y:.3g} s<extra>roofline</extra>",
        ), row=1, col=col)
        fig.update_xaxes(title=AXIS_TITLES[x], row=1, col=col)
    if measurements is not None:
        keep = measurements[_workload_mask(measurements, device.name, batch, input_tokens, output_tokens, dtype)]
        source = str(measurements.attrs.get("source", "measured"))
        for col, x, fixed, value in ((1, "n_layers", "d_model", d_model), (2, "d_model", "n_layers", n_layers)):
            rows = keep[keep[fixed].to_numpy() == value]
            fig.add_trace(_measurement_trace(rows, x, f"measured ({source})", col == 1 and len(keep) > 0),
                          row=1, col=col)
    if mark_shape:
        at = predict_latency(n_layers, d_model, **workload)
        text = f"{n_layers}x{d_model}: {float(at.latency_s):.3g} s"
        for col, x in ((1, n_layers), (2, d_model)):
            fig.add_trace(go.Scatter(
                x=[x], y=[float(at.latency_s)], mode="markers", name=f"{n_layers}x{d_model}", legendgroup="shape",
                showlegend=col == 1, marker=dict(color="black", size=11, symbol="x"),
                hovertemplate=text + "<extra></extra>",
            ), row=1, col=col)
    fig.update_yaxes(title=AXIS_TITLES["latency_s"], rangemode="tozero")
    fig.update_layout(title=_two_lines(f"Latency against depth and width on {device.label}",
                                       _workload_text(batch, input_tokens, output_tokens, dtype)))
    return _finish(fig, into)


def latency_at_equal_size(
    params: float,
    *,
    hardware: str = "a100-40gb",
    calibration: Any = None,
    tolerance: float = 0.05,
    depth: tuple[int, int] = (1, 64),
    batch: int = 1,
    input_tokens: int = 128,
    output_tokens: int = 256,
    dtype: str = "bf16",
    measurements: pd.DataFrame | None = None,
    measurement_tolerance: float | None = None,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Latency of shapes of (nearly) one size, from deep and narrow to shallow and wide.

    For each depth the width (multiple of 64) whose total parameter count is
    closest to ``params`` is taken, if within ``tolerance``.

    Parameters
    ----------
    params : float
        Target parameter count ``N``.
    tolerance : float
        Largest relative gap ``|N / params - 1|`` of a shape shown.
    depth : (int, int)
        Range of depths (blocks).
    measurements : DataFrame, optional
        Timings with ``n_layers``, ``d_model``, ``latency_s``; rows of this
        workload within ``measurement_tolerance`` (default ``tolerance``) of
        ``params`` are drawn, labelled with their shape.
    hardware, calibration, batch, input_tokens, output_tokens, dtype
        As in :func:`latency_vs_shape`.
    """
    device = get_hardware(hardware)
    grid = enumerate_shapes(params * (1 - tolerance), params * (1 + tolerance), n_layers_max=depth[1]).to_frame()
    grid = grid[grid["n_layers"] >= depth[0]]
    if grid.empty:
        raise MorphError(f"no shape of {depth[0]}-{depth[1]} layers has {si_format(params)} parameters within {tolerance:.0%}")
    grid["gap"] = (grid["N"] / params - 1).abs()
    shapes = grid.loc[grid.groupby("n_layers")["gap"].idxmin()].sort_values("n_layers")
    L, d = shapes["n_layers"].to_numpy(), shapes["d_model"].to_numpy()
    workload = dict(hardware=device, batch=batch, input_tokens=input_tokens, output_tokens=output_tokens, dtype=dtype)
    model = predict_latency(L, d, **workload, calibration=calibration)
    floor = roofline_latency(L, d, **workload)
    info = np.column_stack([d, shapes["N"].to_numpy(float), shapes["aspect_ratio"].to_numpy()])
    fig = _figure()
    fig.add_trace(go.Scatter(
        x=L, y=model.latency_s, mode="lines+markers", name=f"model ({resolve_calibration(calibration, device).name})",
        line=dict(color=COLORS[0], width=3), marker=dict(size=5), customdata=info,
        hovertemplate="%{x} x %{customdata[0]:.0f}: N = %{customdata[1]:.3s}, R = %{customdata[2]:.3g}<br>"
                      "%{y:.3g} s<extra>model</extra>",
    ))
    fig.add_trace(go.Scatter(
        x=L, y=floor, mode="lines", name="roofline floor", line=dict(color=COLORS[2], dash=ROOFLINE_DASH),
        customdata=info, hovertemplate="%{x} x %{customdata[0]:.0f}: %{y:.3g} s<extra>roofline</extra>",
    ))
    if measurements is not None and len(measurements):
        near = measurement_tolerance if measurement_tolerance is not None else tolerance
        keep = measurements[_workload_mask(measurements, device.name, batch, input_tokens, output_tokens, dtype)]
        N = parameter_count(keep["n_layers"].to_numpy(), keep["d_model"].to_numpy())
        rows = keep[np.abs(N / params - 1) <= near]
        trace = _measurement_trace(rows, "n_layers", f"measured ({measurements.attrs.get('source', 'timings')})", True)
        trace.update(mode="markers+text", textposition="top center")
        fig.add_trace(trace)
    fig.update_xaxes(title=AXIS_TITLES["n_layers"])
    fig.update_yaxes(title=AXIS_TITLES["latency_s"], rangemode="tozero")
    fig.update_layout(title=_two_lines(f"Shapes of {si_format(params)} parameters (within {tolerance:.0%}) on {device.label}",
                                       _workload_text(batch, input_tokens, output_tokens, dtype)))
    return _finish(fig, into)


def throughput_vs_batch(
    shapes: Sequence[tuple[int, int]],
    *,
    hardware: str = "a100-40gb",
    calibration: Any = None,
    batch_max: int = 256,
    input_tokens: int = 128,
    output_tokens: int = 256,
    dtype: str = "bf16",
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Throughput (left) and latency (right) against batch size for a few shapes.

    At batch 1 decode is host-bound and latency barely depends on width; as
    the batch grows, the device's arithmetic and the key/value cache take
    over, throughput saturates and the roofline (dotted) becomes the limit.

    Parameters
    ----------
    shapes : sequence of (n_layers, d_model)
    batch_max : int
        Largest batch (powers of two from 1). The key/value cache is assumed to fit in memory.
    """
    if not shapes:
        raise MorphError("give at least one shape (n_layers, d_model)")
    device = get_hardware(hardware)
    batch = 2 ** np.arange(0, int(math.log2(batch_max)) + 1)
    L = np.array([s[0] for s in shapes])[:, None]
    d = np.array([s[1] for s in shapes])[:, None]
    workload = dict(hardware=device, batch=batch[None, :], input_tokens=input_tokens,
                    output_tokens=output_tokens, dtype=dtype)
    model = predict_latency(L, d, **workload, calibration=calibration)
    floor = roofline_latency(L, d, **workload)
    fig = _figure(1, 2, horizontal_spacing=0.1, subplot_titles=("throughput", "latency of one call"))
    for i, (layers, width) in enumerate(shapes):
        name, color = f"{layers}x{width}", COLORS[i % len(COLORS)]
        for col, y, y_floor in ((1, model.tokens_per_s[i], batch * output_tokens / floor[i]),
                                (2, model.latency_s[i], floor[i])):
            fig.add_trace(go.Scatter(x=batch, y=y, mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=color),
                                     hovertemplate="batch %{x}: %{y:.4g}<extra>" + name + "</extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=batch, y=y_floor, mode="lines", name=f"{name} roofline", legendgroup=name,
                                     showlegend=False, line=dict(color=color, dash=ROOFLINE_DASH),
                                     hovertemplate="batch %{x}: %{y:.4g}<extra>" + name + " roofline</extra>"),
                          row=1, col=col)
    fig.update_xaxes(type="log", title=AXIS_TITLES["batch"])
    fig.update_yaxes(type="log", title=AXIS_TITLES["tokens_per_s"], row=1, col=1)
    fig.update_yaxes(type="log", title=AXIS_TITLES["latency_s"], row=1, col=2)
    fig.update_layout(title=_two_lines(f"Batch size on {device.label} (dotted: roofline floor)",
                                       f"{input_tokens} in + {output_tokens} out tokens, {dtype}"), legend_title="shape")
    return _finish(fig, into)


# -- fits ------------------------------------------------------------------------------------


def _highlight(frame: pd.DataFrame, highlight: ArrayLike | None) -> NDArray[np.bool_]:
    """Rows to label: given, else the paper's 1B runs, else the runs at the largest N."""
    if highlight is not None:
        mask = np.asarray(highlight, dtype=bool)
        if mask.shape != (len(frame),):
            raise MorphError(f"the highlight mask has {mask.size} entries for {len(frame)} runs")
        return mask
    if "size_label" in frame.columns and (frame["size_label"].astype(str) == "1B").any():
        return (frame["size_label"].astype(str) == "1B").to_numpy()
    N = frame["N"].to_numpy(float)
    return N == N.max()


def _label_positions(x: FloatArray, y: FloatArray) -> NDArray[np.object_]:
    """Text positions that keep neighbouring labels apart.

    Each point is compared with its nearest neighbour along ``x`` (pass
    ``log x`` for a logarithmic axis): the higher of the two is labelled
    above, the lower below, so the labels move apart.
    """
    n = x.size
    if n < 2:
        return np.full(n, "top right", dtype=object)
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    gap = np.diff(xs)
    before = np.concatenate([[np.inf], gap])
    after = np.concatenate([gap, [np.inf]])
    neighbour = np.where(before <= after, np.arange(n) - 1, np.arange(n) + 1)
    sorted_positions = np.where(ys >= ys[neighbour], "top right", "bottom right").astype(object)
    positions = np.empty(n, dtype=object)
    positions[order] = sorted_positions
    return positions


def _short_labels(frame: pd.DataFrame) -> NDArray[np.str_]:
    return frame["variant"].astype(str).to_numpy() if "variant" in frame.columns else _run_labels(frame)


def _add_fit_points(fig: go.Figure, result: FitResult, x: FloatArray, y: FloatArray, hover: str,
                    highlight: ArrayLike | None, row: int | None, col: int | None, showlegend: bool,
                    prefix: str = "", label_text: bool = True) -> None:
    frame, fitted = result.data, result.fit_mask
    labels = _run_labels(frame)
    with _quiet():
        custom = np.column_stack([frame["loss"].to_numpy(float), result.predictions, result.residuals])
    for mask, name, color, symbol in ((fitted, "fit points", FIT_COLOR, "circle"),
                                      (~fitted, "held-out points", HELDOUT_COLOR, "circle-open")):
        fig.add_trace(go.Scatter(
            x=x[mask], y=y[mask], mode="markers", name=f"{prefix}{name} ({int(mask.sum())})",
            legendgroup=f"{prefix}{name}", showlegend=showlegend,
            marker=dict(color=color, size=8, symbol=symbol, line=dict(width=1.5, color=color)),
            text=labels[mask], customdata=custom[mask], hovertemplate=hover,
        ), row=row, col=col)
    marked = _highlight(frame, highlight)
    fig.add_trace(go.Scatter(
        x=x[marked], y=y[marked], mode="markers+text" if label_text else "markers", name=f"{prefix}labelled",
        legendgroup=f"{prefix}labelled", showlegend=False,
        text=_short_labels(frame)[marked], textposition=_label_positions(np.log(x[marked]) if np.all(x[marked] > 0) else x[marked], y[marked]),
        textfont=dict(color=LABEL_COLOR, size=11),
        marker=dict(color=LABEL_COLOR, size=14, symbol="circle-open", line=dict(width=2)),
        customdata=custom[marked], hovertemplate=hover.replace("%{text}", "%{text} (labelled)"),
    ), row=row, col=col)
    if not label_text:
        # Points of nearly equal loss crowd the diagonal: stack their names above it, with arrows.
        order = np.argsort(x[marked], kind="stable")
        names, xs, ys = _short_labels(frame)[marked][order], x[marked][order], y[marked][order]
        ref = {} if row is None else {"row": row, "col": col}
        for i, (name, xi, yi) in enumerate(zip(names, xs, ys)):
            fig.add_annotation(x=xi, y=yi, text=name, showarrow=True, arrowhead=0, arrowcolor=LABEL_COLOR,
                               ax=-40 - 10 * i, ay=-30 - 18 * i, font=dict(color=LABEL_COLOR, size=11), **ref)


_POINT_HOVER = ("%{text}<br>actual %{customdata[0]:.4f}, predicted %{customdata[1]:.4f}"
                "<br>residual %{customdata[2]:+.4f}<extra></extra>")


def _add_residuals(fig: go.Figure, result: FitResult, x: str, highlight: ArrayLike | None,
                   row: int | None = None, col: int | None = None, showlegend: bool = True, prefix: str = "") -> None:
    with _quiet():
        residuals = result.residuals
    _add_fit_points(fig, result, _x_values(result.data, x), residuals, _POINT_HOVER, highlight, row, col,
                    showlegend, prefix)
    where = {} if row is None else {"row": row, "col": col}
    fig.add_hline(y=0, line=dict(color="grey", width=1), **where)
    fig.update_xaxes(type=_log_axis(x), title=AXIS_TITLES.get(x, x), row=row, col=col)
    fig.update_yaxes(title=AXIS_TITLES["residual"], row=row, col=col)


def _fit_title(result: FitResult) -> str:
    split = result.metrics()
    held = split["heldout"]
    tail = f", held-out R^2 {held.r2:.4f} ({held.n} runs)" if held is not None and held.n > 1 else ""
    return _two_lines(f"{result.family} law ({result.variant}), {result.method} fit on {result.n_fit} of "
                      f"{len(result.data)} runs", f"R^2 {split['all'].r2:.4f} on all runs{tail}")


def residuals_figure(
    result: FitResult, *, x: str = "aspect_ratio", highlight: ArrayLike | None = None,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Residuals (actual minus predicted loss) of a fit against ``x``.

    Fit points are filled, held-out points open; the paper's 1B runs (or, in
    another table, the runs at the largest ``N``) are labelled.

    Parameters
    ----------
    result : FitResult
    x : {"aspect_ratio", "N", "D", "tokens_per_parameter", "loss"}
    highlight : boolean array, optional
        Runs to label instead of the default.
    """
    fig = _figure()
    with _quiet():
        _add_residuals(fig, result, x, highlight)
        fig.update_layout(title=_fit_title(result))
    return _finish(fig, into)


def _add_predicted_vs_actual(fig: go.Figure, result: FitResult, highlight: ArrayLike | None,
                             row: int | None = None, col: int | None = None, showlegend: bool = True) -> None:
    actual = result.data["loss"].to_numpy(float)
    with _quiet():
        predicted = result.predictions
    finite = predicted[np.isfinite(predicted)]
    low, high = float(min(actual.min(), finite.min(initial=np.inf))), float(max(actual.max(), finite.max(initial=-np.inf)))
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="predicted = actual",
                             line=dict(color="grey", dash="dash"), showlegend=showlegend, hoverinfo="skip"),
                  row=row, col=col)
    _add_fit_points(fig, result, actual, predicted, _POINT_HOVER, highlight, row, col, showlegend, label_text=False)
    fig.update_xaxes(title=AXIS_TITLES["loss"], row=row, col=col)
    fig.update_yaxes(title=AXIS_TITLES["predicted"], row=row, col=col)


def predicted_vs_actual(
    result: FitResult, *, highlight: ArrayLike | None = None, into: go.FigureWidget | None = None
) -> go.Figure:
    """Predicted against actual loss for every run of a fit, with the diagonal."""
    fig = _figure()
    with _quiet():
        _add_predicted_vs_actual(fig, result, highlight)
        fig.update_layout(title=_fit_title(result))
    return _finish(fig, into)


def fit_diagnostics(
    result: FitResult, *, x: str = "aspect_ratio", highlight: ArrayLike | None = None,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Residuals against ``x`` (left) and predicted against actual loss (right), in one figure."""
    fig = _figure(1, 2, horizontal_spacing=0.1, subplot_titles=(
        f"residuals vs {AXIS_TITLES.get(x, x).split(' =')[0]}", "predicted vs actual"))
    with _quiet():
        _add_residuals(fig, result, x, highlight, row=1, col=1)
        _add_predicted_vs_actual(fig, result, highlight, row=1, col=2, showlegend=False)
        fig.update_layout(title=_fit_title(result))
    return _finish(fig, into)


def compare_residuals(
    results: Mapping[str, FitResult], *, x: str = "aspect_ratio", highlight: ArrayLike | None = None,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Residuals of several fits against ``x``, one panel per fit on a shared vertical scale."""
    if not results:
        raise MorphError("give at least one fit to compare")
    fig = _figure(1, len(results), shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=list(results))
    with _quiet():
        for i, result in enumerate(results.values()):
            _add_residuals(fig, result, x, highlight, row=1, col=i + 1, showlegend=i == 0)
    fig.update_yaxes(title=None)
    fig.update_yaxes(title=AXIS_TITLES["residual"], row=1, col=1)
    fig.update_layout(title=f"Residuals against {AXIS_TITLES.get(x, x)}")
    return _finish(fig, into)


# -- selection -------------------------------------------------------------------------------


def selection_figure(selection: Selection, *, into: go.FigureWidget | None = None) -> go.Figure:
    """Every candidate's predicted latency and loss, the latency budget and the top ``k`` kept.

    Candidates over the budget are crosses; the (latency, loss) Pareto
    frontier is a line; the selected ones are labelled with their rank.
    """
    ev = selection.evaluation
    labels = ev.candidates.label.astype(str)
    within = ev.latency_s <= selection.latency_target
    info = np.column_stack([ev.candidates.n_layers, ev.candidates.d_model, ev.candidates.N.astype(float)])
    hover = "%{text}: %{customdata[0]:.0f} x %{customdata[1]:.0f}, N = %{customdata[2]:.3s}<br>" \
            "%{x:.3g} s, loss %{y:.4f}<extra></extra>"
    fig = _figure()
    for mask, name, symbol, color in ((within, "within budget", "circle", FIT_COLOR),
                                      (~within, "over budget", "x", "grey")):
        fig.add_trace(go.Scatter(x=ev.latency_s[mask], y=ev.loss[mask], mode="markers", name=name,
                                 marker=dict(symbol=symbol, color=color, size=9), text=labels[mask],
                                 customdata=info[mask], hovertemplate=hover))
    front = selection.frontier_index
    fig.add_trace(go.Scatter(x=ev.latency_s[front], y=ev.loss[front], mode="lines", name="Pareto frontier",
                             line=dict(color="grey", dash="dot"), hoverinfo="skip"))
    chosen = selection.selected_index
    ranks = np.char.add(np.char.add(np.arange(1, chosen.size + 1).astype(str), ". "), labels[chosen])
    fig.add_trace(go.Scatter(x=ev.latency_s[chosen], y=ev.loss[chosen], mode="markers+text", name="selected",
                             text=ranks, textposition=_label_positions(ev.latency_s[chosen], ev.loss[chosen]),
                             textfont=dict(color=LABEL_COLOR),
                             marker=dict(size=15, symbol="circle-open", color=LABEL_COLOR, line=dict(width=2)),
                             customdata=info[chosen], hovertemplate=hover))
    fig.add_vline(x=selection.latency_target, line=dict(color=LABEL_COLOR, dash="dash"),
                  annotation_text=f"budget {selection.latency_target:g} s", annotation_position="top")
    fig.update_xaxes(title=AXIS_TITLES["latency_s"])
    fig.update_yaxes(title=AXIS_TITLES["predicted"])
    settings = ev.settings
    fig.update_layout(title=f"{len(ev)} candidates on {settings.get('hardware')}: top {selection.top_k} "
                            f"by predicted loss within {selection.latency_target:g} s")
    return _finish(fig, into)
