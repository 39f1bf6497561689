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

Builders (the latency ones live in :mod:`morph.app.latency_figures`, the shared
plumbing in :mod:`morph.app.plotting`; both are re-exported here)
--------
Laws and data: :func:`runs_scatter`, :func:`loss_terms`, :func:`loss_vs_params`,
:func:`law_overview`, :func:`compute_optimal_frontier`, :func:`loss_vs_aspect_ratio`,
:func:`isoflop_curves` (with :func:`isoflop_groups`), :func:`loss_contours`.
Latency: :func:`latency_vs_shape`, :func:`latency_at_equal_size`, :func:`throughput_vs_batch`.
Fits: :func:`residuals_figure`, :func:`predicted_vs_actual`, :func:`fit_diagnostics`,
:func:`compare_residuals`. Selection: :func:`selection_figure`.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import ArrayLike, NDArray

from ..data import load_runs
from ..errors import MorphError
from ..fitting import FitResult
from ..decision import BOOTSTRAP, Assessment
from ..frontier import Selection
from ..laws import ScalingLaw
from .dashboard_parts import thin_points
from .decision_view import (
    ACCENT,
    budget_line,
    budget_phrase,
    budget_rule,
    candidates_trace,
    decision_assessment,
    frontier_trace,
    infeasible_points,
    infeasible_trace,
    selected_bars,
    selected_trace,
)
from .compute_figures import ISOFLOP_GAP, isoflop_curves, isoflop_groups, loss_contours
from .latency_figures import latency_at_equal_size, latency_vs_shape, throughput_vs_batch
from .plotting import (
    AXIS_TITLES,
    COLORS,
    FIT_COLOR,
    HELDOUT_COLOR,
    LABEL_COLOR,
    fill,
    finish,
    new_figure,
    quiet,
    run_labels,
    si_format,
    two_lines,
)

FloatArray = NDArray[np.float64]

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
    "ISOFLOP_GAP",
    "isoflop_groups",
    "isoflop_curves",
    "loss_contours",
    "latency_vs_shape",
    "latency_at_equal_size",
    "throughput_vs_batch",
    "residuals_figure",
    "predicted_vs_actual",
    "fit_diagnostics",
    "compare_residuals",
    "selection_figure",
]

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
    fig = new_figure()
    xs, labels = _x_values(runs, x), run_labels(runs)
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
    return finish(fig, into)


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
    fig = new_figure()
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
    return finish(fig, into)


def _add_loss_vs_params(
    fig: go.Figure, law: ScalingLaw, tokens: Sequence[float], aspect_ratio: float | None,
    params: tuple[float, float], n_points: int, row: int | None = None, col: int | None = None,
    showlegend: bool = True,
) -> None:
    N = np.geomspace(*params, n_points)
    with quiet():
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
    fig = new_figure()
    _add_loss_vs_params(fig, law, tokens, aspect_ratio, params, n_points)
    shape = f" at R = {aspect_ratio:g}" if law.needs_aspect_ratio else ""
    fig.update_layout(title=f"{law.family} law: loss vs model size{shape}", legend_title="training tokens")
    return finish(fig, into)


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
    with quiet():
        loss = float(law.predict(N, D, aspect_ratio))
    fig = new_figure(1, 2, horizontal_spacing=0.1,
                  subplot_titles=("loss vs parameters N", f"loss vs aspect ratio at N = {si_format(N)}, D = {si_format(D)}"))
    _add_loss_vs_params(fig, law, (D / 10, D, 10 * D), aspect_ratio, params, n_points, row=1, col=1)
    R = np.geomspace(*ratios, n_points)
    with quiet():
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
    return finish(fig, into)


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
    fig = new_figure(1, 3, horizontal_spacing=0.08, subplot_titles=(
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
    return finish(fig, into)


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
    fig = new_figure(rows, cols, subplot_titles=list(groups), horizontal_spacing=0.06,
                  vertical_spacing=0.12 if rows > 1 else 0.0)
    R = np.geomspace(*ratios, n_points)
    labels = run_labels(runs)
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
        with quiet():
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
    return finish(fig, into)


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
    return frame["variant"].astype(str).to_numpy() if "variant" in frame.columns else run_labels(frame)


def _add_fit_points(fig: go.Figure, result: FitResult, x: FloatArray, y: FloatArray, hover: str,
                    highlight: ArrayLike | None, row: int | None, col: int | None, showlegend: bool,
                    prefix: str = "", label_text: bool = True) -> None:
    frame, fitted = result.data, result.fit_mask
    labels = run_labels(frame)
    with quiet():
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
    with quiet():
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
    return two_lines(f"{result.family} law ({result.variant}), {result.method} fit on {result.n_fit} of "
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
    fig = new_figure()
    with quiet():
        _add_residuals(fig, result, x, highlight)
        fig.update_layout(title=_fit_title(result))
    return finish(fig, into)


def _add_predicted_vs_actual(fig: go.Figure, result: FitResult, highlight: ArrayLike | None,
                             row: int | None = None, col: int | None = None, showlegend: bool = True) -> None:
    actual = result.data["loss"].to_numpy(float)
    with quiet():
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
    fig = new_figure()
    with quiet():
        _add_predicted_vs_actual(fig, result, highlight)
        fig.update_layout(title=_fit_title(result))
    return finish(fig, into)


def fit_diagnostics(
    result: FitResult, *, x: str = "aspect_ratio", highlight: ArrayLike | None = None,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Residuals against ``x`` (left) and predicted against actual loss (right), in one figure."""
    fig = new_figure(1, 2, horizontal_spacing=0.1, subplot_titles=(
        f"residuals vs {AXIS_TITLES.get(x, x).split(' =')[0]}", "predicted vs actual"))
    with quiet():
        _add_residuals(fig, result, x, highlight, row=1, col=1)
        _add_predicted_vs_actual(fig, result, highlight, row=1, col=2, showlegend=False)
        fig.update_layout(title=_fit_title(result))
    return finish(fig, into)


def compare_residuals(
    results: Mapping[str, FitResult], *, x: str = "aspect_ratio", highlight: ArrayLike | None = None,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Residuals of several fits against ``x``, one panel per fit on a shared vertical scale."""
    if not results:
        raise MorphError("give at least one fit to compare")
    fig = new_figure(1, len(results), shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=list(results))
    with quiet():
        for i, result in enumerate(results.values()):
            _add_residuals(fig, result, x, highlight, row=1, col=i + 1, showlegend=i == 0)
    fig.update_yaxes(title=None)
    fig.update_yaxes(title=AXIS_TITLES["residual"], row=1, col=1)
    fig.update_layout(title=f"Residuals against {AXIS_TITLES.get(x, x)}")
    return finish(fig, into)


# -- selection -------------------------------------------------------------------------------

MAX_CLOUD_POINTS = 2000
"""At most about this many candidates are drawn as the faint cloud (as in the dashboard)."""


def selection_figure(
    selection: Selection, *, assessment: Assessment | None = None, into: go.FigureWidget | None = None,
) -> go.Figure:
    """The dashboard's view of a selection: every candidate, the Pareto frontier, the budget, the top ``k``.

    Drawn with the dashboard's own traces (:mod:`morph.app.decision_view`): the
    candidates as a faint cloud, the (latency, loss) frontier as a line, the kept
    shapes in red with their rank, their latency band and, for a fitted law,
    their loss band (stars: plausibly best, a probability of being best of at
    least :data:`morph.decision.PLAUSIBLE`), the shapes that do not fit in
    memory as grey crosses, and the budget as a dashed rule where it is one on
    the latency axis (a throughput or cost budget at the latency it amounts to).

    Parameters
    ----------
    selection : Selection
    assessment : Assessment, optional
        Bands and probabilities (:func:`morph.decision.assess`); when not given, assessed
        as the dashboard does (a ``bian2025`` preset re-derived with a bootstrap,
        stored once per machine).
    into : FigureWidget, optional
        Filled in place instead of returning a new figure.
    """
    ev = selection.evaluation
    if assessment is None:  # as the dashboard assesses it: the law's own fit, or a bian2025 preset re-derived
        assessment = decision_assessment(selection, ev.fit if ev.fit is not None else ev.law, ev.law, BOOTSTRAP)
    fig = new_figure()
    shown = thin_points(ev.latency_s, ev.loss, MAX_CLOUD_POINTS)  # the frontier and selection use every candidate
    fig.add_trace(candidates_trace())
    fig.data[-1].update(x=ev.latency_s[shown], y=ev.loss[shown], text=ev.candidates.labels(shown).tolist())
    front = selection.frontier_index
    fig.add_trace(frontier_trace())
    fig.data[-1].update(x=ev.latency_s[front], y=ev.loss[front], text=ev.candidates.labels(front).tolist())
    chosen = selection.selected_index
    ranks = [f"{rank}. {label}" for rank, label in enumerate(ev.candidates.labels(chosen), start=1)]
    fig.add_trace(selected_trace())
    fig.data[-1].update(x=ev.latency_s[chosen], y=ev.loss[chosen], text=ranks, mode="markers+text",
                        textposition=_label_positions(np.log(ev.latency_s[chosen]), ev.loss[chosen]),
                        textfont=dict(color=ACCENT), **selected_bars(selection, assessment))
    fig.add_trace(infeasible_trace())
    fig.data[-1].update(**infeasible_points(selection, assessment))
    rule = budget_rule(selection)
    if rule is not None:
        fig.add_shape(budget_line(rule[0]))
        fig.add_annotation(x=math.log10(rule[0]), xref="x", y=1, yref="y domain", text=rule[1], showarrow=False,
                           xanchor="left", yanchor="top", xshift=3, font=dict(color=ACCENT, size=11))
    fig.update_xaxes(type="log", title=AXIS_TITLES["latency_s"])
    fig.update_yaxes(title=AXIS_TITLES["predicted"])
    fig.update_layout(title=f"{len(ev)} candidates on {ev.workload.hardware_name}: top {selection.top_k} "
                            f"by predicted loss {budget_phrase(selection)}")
    return finish(fig, into)
