"""The classic compute figures: isoFLOP curves from the shipped runs and L(N, D) contours with the frontier.

Hoffmann et al.'s two views of a scaling law, for the first lesson: at a fixed
training compute ``6 N D`` the loss has a valley in ``N`` (the isoFLOP curves,
here from the paper's runs grouped by nearly equal compute), and across all
``N`` and ``D`` the compute-optimal allocation traces a line through the loss
contours (the law's closed form). :mod:`morph.app.figures` re-exports them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from numpy.typing import NDArray

from ..data import load_runs
from ..laws import REFERENCE_ASPECT_RATIO, ScalingLaw, preset
from .decision_view import ACCENT
from .plotting import AXIS_TITLES, COLORS, finish, new_figure, quiet, run_labels, si_format, two_lines

__all__ = ["ISOFLOP_GAP", "isoflop_groups", "isoflop_curves", "loss_contours"]


ISOFLOP_GAP = 1.3
"""Factor between consecutive training computes ``6 N D`` (sorted) that starts a new isoFLOP group. The
paper's runs come in near-doublings of compute (each size and budget a factor of 1.6-3.3 from the next),
with at most 1.25x between the cheapest and the dearest run of one group."""


def _flops(value: float) -> str:
    """``1.6e18``, never ``1.6e+18``: compute as a lesson writes it."""
    return f"{value:.2g}".replace("e+", "e")


def isoflop_groups(runs: pd.DataFrame | None = None, *, gap: float = ISOFLOP_GAP) -> NDArray[np.int64]:
    """The isoFLOP group of each run: runs of (nearly) the same training compute ``C = 6 N D``.

    Sorted by ``C``, a run starts a new group when its compute exceeds the previous run's by more than
    ``gap``; groups are numbered 0, 1, ... from the cheapest. Returned in the order of ``runs``.
    """
    runs = load_runs() if runs is None else runs
    flops = 6.0 * runs["N"].to_numpy(float) * runs["D"].to_numpy(float)
    order = np.argsort(flops, kind="stable")
    starts = np.concatenate([[0], (flops[order][1:] / flops[order][:-1] > gap).astype(np.int64)])
    groups = np.empty(len(flops), dtype=np.int64)
    groups[order] = np.cumsum(starts)
    return groups


def isoflop_curves(
    runs: pd.DataFrame | None = None,
    law: ScalingLaw | None = None,
    *,
    gap: float = ISOFLOP_GAP,
    min_runs: int = 3,
    n_points: int = 80,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Loss against ``N`` at fixed training compute: Hoffmann et al.'s isoFLOP valleys, from the runs.

    Each group of :func:`isoflop_groups` with at least ``min_runs`` runs gets one colour: its runs as
    markers, and the law's curve ``L(N, C / (6 N))`` at the group's compute ``C`` (the geometric mean
    of its runs', within ``gap``) and median aspect ratio, with the law's compute-optimal ``N`` at
    that ``C`` marked (an open diamond).

    Parameters
    ----------
    runs : DataFrame, optional
        Validated runs; the paper's 76 by default.
    law : ScalingLaw, optional
        The law whose curves to draw; the paper's fit B (``bian2025``) by default.
    """
    runs = load_runs() if runs is None else runs
    law = preset("bian2025") if law is None else law
    groups = isoflop_groups(runs, gap=gap)
    N, D, loss = (runs[c].to_numpy(float) for c in ("N", "D", "loss"))
    flops = 6.0 * N * D
    ratios = runs["aspect_ratio"].to_numpy(float) if "aspect_ratio" in runs.columns else np.full(len(runs), np.nan)
    labels = run_labels(runs)
    fig = new_figure()
    shown = [g for g in np.unique(groups) if (groups == g).sum() >= min_runs]
    for i, g in enumerate(shown):
        mask = groups == g
        C = float(np.exp(np.log(flops[mask]).mean()))
        ratio = float(np.nanmedian(ratios[mask])) if law.needs_aspect_ratio else None
        if law.needs_aspect_ratio and not np.isfinite(ratio):
            ratio = REFERENCE_ASPECT_RATIO
        color = COLORS[i % len(COLORS)]
        name = f"C ≈ {_flops(C)} FLOPs"
        fig.add_trace(go.Scatter(
            x=N[mask], y=loss[mask], mode="markers", name=name, legendgroup=name,
            marker=dict(color=color, size=8), text=labels[mask],
            customdata=flops[mask],
            hovertemplate="%{text}<br>N = %{x:.3s}<br>6ND = %{customdata:.3g} FLOPs<br>loss = %{y:.4f}<extra></extra>",
        ))
        grid = np.geomspace(N[mask].min() / 3, N[mask].max() * 3, n_points)
        with quiet():
            curve = law.predict(grid, C / (6.0 * grid), ratio)
            best = law.compute_optimal(C, ratio)
        fig.add_trace(go.Scatter(
            x=grid, y=curve, mode="lines", name=f"{name}: law", legendgroup=name, showlegend=False,
            line=dict(color=color, dash="dash"),
            hovertemplate="law at C = " + _flops(C) + "<br>N = %{x:.3s}<br>loss = %{y:.4f}<extra></extra>",
        ))
        fig.add_trace(go.Scatter(
            x=[float(best.N)], y=[float(best.loss)], mode="markers", name=f"{name}: law's optimum",
            legendgroup=name, showlegend=False,
            marker=dict(color=color, size=11, symbol="diamond-open", line=dict(width=2)),
            hovertemplate="the law's compute-optimal N = %{x:.3s}<br>loss = %{y:.4f}<extra></extra>",
        ))
    fig.update_xaxes(type="log", title=AXIS_TITLES["N"])
    fig.update_yaxes(title=AXIS_TITLES["loss"])
    fig.update_layout(title=two_lines("IsoFLOP curves: the runs of each training compute 6 N D, and the law (dashed)",
                                      "open diamond: the law's compute-optimal N at that compute"),
                      legend_title="training compute")
    return finish(fig, into)


def loss_contours(
    law: ScalingLaw | None = None,
    *,
    flops: float = 1e20,
    runs: pd.DataFrame | None = None,
    params: tuple[float, float] = (3e7, 3e10),
    tokens: tuple[float, float] = (3e8, 3e12),
    aspect_ratio: float = REFERENCE_ASPECT_RATIO,
    fit_range: tuple[float, float] | None = None,
    n_points: int = 60,
    into: go.FigureWidget | None = None,
) -> go.Figure:
    """Contours of the law's ``L(N, D)`` with its compute-optimal frontier and one compute budget.

    The frontier is the law's closed-form :meth:`~morph.laws.ScalingLaw.compute_optimal` over every
    compute; the dashed line is ``6 N D = flops``, whose least loss is the marked point on the
    frontier. The runs are grey markers; ``fit_range`` (``N`` from, to: fit set B's 80M-313M by
    default, from the runs) is shaded, so how far the law is extrapolated stays in view.
    """
    law = preset("bian2025") if law is None else law
    runs = load_runs() if runs is None else runs
    ratio = aspect_ratio if law.needs_aspect_ratio else None
    n_grid, d_grid = np.geomspace(*params, n_points), np.geomspace(*tokens, n_points)
    with quiet():
        z = law.predict(n_grid[None, :], d_grid[:, None], ratio)
        C = np.geomspace(6 * params[0] * tokens[0], 6 * params[1] * tokens[1], 200)
        frontier = law.compute_optimal(C, ratio)
        at = law.compute_optimal(flops, ratio)
    inside = (frontier.N >= params[0]) & (frontier.N <= params[1]) & (frontier.D >= tokens[0]) & (frontier.D <= tokens[1])
    fig = new_figure()
    finite = z[np.isfinite(z)]
    top = float(np.quantile(finite, 0.9)) if finite.size else 1.0
    fig.add_trace(go.Contour(
        x=n_grid, y=d_grid, z=np.minimum(z, top), name="L(N, D)", colorscale="Viridis", reversescale=True,
        contours=dict(showlabels=True, labelfont=dict(size=10, color="white")), ncontours=18, line=dict(width=0.5),
        colorbar=dict(title="loss", len=0.8), hovertemplate="N = %{x:.3s}<br>D = %{y:.3s}<br>loss = %{z:.3f}<extra></extra>",
    ))
    if fit_range is None and "in_fit_B" in runs.columns:
        fitted = runs["in_fit_B"].to_numpy(bool)
        fit_range = (float(runs["N"][fitted].min()), float(runs["N"][fitted].max())) if fitted.any() else None
    if fit_range is not None:
        lo, hi = fit_range
        fig.add_trace(go.Scatter(
            x=[lo, hi, hi, lo, lo], y=[tokens[0], tokens[0], tokens[1], tokens[1], tokens[0]], mode="lines",
            fill="toself", fillcolor="rgba(255,255,255,0.25)", line=dict(color="white", width=1, dash="dot"),
            name=f"fit range: N {si_format(lo)}-{si_format(hi)}", hoverinfo="skip",
        ))
    fig.add_trace(go.Scatter(
        x=runs["N"].to_numpy(float), y=runs["D"].to_numpy(float), mode="markers", name=f"the {len(runs)} runs",
        marker=dict(color="#dddddd", size=6, line=dict(color="#333333", width=1)), text=run_labels(runs),
        hovertemplate="%{text}<br>N = %{x:.3s}<br>D = %{y:.3s}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=frontier.N[inside], y=frontier.D[inside], mode="lines", name="compute-optimal frontier",
        line=dict(color="black", width=3), customdata=frontier.flops[inside],
        hovertemplate="C = %{customdata:.3g} FLOPs<br>N = %{x:.3s}<br>D = %{y:.3s}<extra>frontier</extra>",
    ))
    budget_n = n_grid[(flops / (6 * n_grid) >= tokens[0]) & (flops / (6 * n_grid) <= tokens[1])]
    fig.add_trace(go.Scatter(
        x=budget_n, y=flops / (6 * budget_n), mode="lines", name=f"6 N D = {_flops(flops)} FLOPs",
        line=dict(color=ACCENT, width=2, dash="dash"), hoverinfo="skip",
    ))
    fig.add_trace(go.Scatter(
        x=[float(at.N)], y=[float(at.D)], mode="markers", name="the least loss at that compute",
        marker=dict(color=ACCENT, size=13, symbol="star", line=dict(color="black", width=1)),
        hovertemplate=f"N = %{{x:.3s}}<br>D = %{{y:.3s}}<br>loss = {float(at.loss):.4f}<extra>optimum</extra>",
    ))
    fig.update_xaxes(type="log", title=AXIS_TITLES["N"], range=[math.log10(params[0]), math.log10(params[1])])
    fig.update_yaxes(type="log", title=AXIS_TITLES["D"], range=[math.log10(tokens[0]), math.log10(tokens[1])])
    shape = f" at R = {aspect_ratio:g}" if ratio is not None else ""
    fig.update_layout(
        title=two_lines(f"Predicted loss L(N, D){shape} and the compute-optimal frontier",
                        f"at C = {_flops(flops)} FLOPs: N = {si_format(float(at.N))}, D = {si_format(float(at.D))}, "
                        f"D / N = {float(at.tokens_per_parameter):.0f}, loss {float(at.loss):.3f}"),
        legend=dict(orientation="h", y=-0.18))
    return finish(fig, into)


# -- fits ------------------------------------------------------------------------------------
