"""Plotly figures of the latency model: against depth and width, at equal size, against batch.

Each builder takes a :class:`~morph.latency.Workload` (or overrides of one
setting, as :func:`morph.latency.predict_latency` does) and returns a new
figure, or fills ``into=`` a FigureWidget in place.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..errors import MorphError
from ..latency import Workload, predict_latency, roofline_latency
from ..latency.calibration import timed_under
from ..latency.workload import as_workload
from ..shapes import enumerate_shapes, parameter_count
from .plotting import (
    AXIS_TITLES,
    COLORS,
    LABEL_COLOR,
    ROOFLINE_DASH,
    finish,
    new_figure,
    run_labels,
    si_format,
    two_lines,
)

__all__ = ["latency_at_equal_size", "latency_vs_shape", "throughput_vs_batch"]


def _measurement_trace(frame: pd.DataFrame, x: str, name: str, showlegend: bool) -> go.Scatter:
    labels = run_labels(frame[["n_layers", "d_model"]])
    return go.Scatter(
        x=frame[x], y=frame["latency_s"], mode="markers", name=name, legendgroup="measured", showlegend=showlegend,
        marker=dict(color=LABEL_COLOR, size=9, symbol="diamond"), text=labels,
        hovertemplate="%{text}: %{y:.3g} s measured<extra></extra>",
    )


def latency_vs_shape(
    *,
    workload: Workload | None = None,
    d_model: int = 2048,
    n_layers: int = 12,
    depth: tuple[int, int] = (1, 48),
    width: tuple[int, int] = (256, 8192),
    measurements: pd.DataFrame | None = None,
    mark_shape: bool = False,
    into: go.FigureWidget | None = None,
    **overrides: Any,
) -> go.Figure:
    """Latency against depth at fixed width (left) and against width at fixed depth (right).

    Each panel has the calibrated model (solid), the roofline floor (dotted:
    datasheet bandwidth and throughput, no host time) and, where given,
    measurements timed under the same workload with the panel's fixed
    dimension.

    Parameters
    ----------
    workload : Workload, optional
        Hardware, calibration, batch, tokens and dtype (default
        :class:`~morph.latency.Workload`).
    d_model : int
        Width of the depth panel (features).
    n_layers : int
        Depth of the width panel (blocks).
    depth, width : (int, int)
        Ranges of the two panels (widths on a grid of 64).
    measurements : DataFrame, optional
        Timings with ``n_layers``, ``d_model``, ``latency_s`` (as from
        :func:`morph.latency.calibration.load_measurements`); rows of another
        workload or hardware are left out. Given (even empty), the figure
        always has its measurement traces, so an explorer redraws in place.
    mark_shape : bool
        Mark the shape ``n_layers x d_model`` where the two panels meet.
    **overrides
        ``hardware``, ``calibration``, ``batch``, ``input_tokens``, ``output_tokens``
        or ``dtype``: change one setting of ``workload``.
    """
    workload = as_workload(workload, **overrides)
    device = workload.device
    name = workload.resolved_calibration().name
    layers = np.arange(max(1, depth[0]), depth[1] + 1)
    widths = np.arange(max(64, -(-width[0] // 64) * 64), width[1] + 1, 64)
    fig = new_figure(1, 2, horizontal_spacing=0.1, subplot_titles=(
        f"depth at d_model = {d_model}", f"width at n_layers = {n_layers}"))
    panels = ((1, "n_layers", layers, np.full_like(layers, d_model)), (2, "d_model", np.full_like(widths, n_layers), widths))
    for col, x, L, d in panels:
        xs = L if x == "n_layers" else d
        model = predict_latency(L, d, workload=workload, band=False)
        floor = roofline_latency(L, d, workload=workload)
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
        keep = timed_under(measurements, workload)
        source = str(measurements.attrs.get("source", "measured"))
        for col, x, fixed, value in ((1, "n_layers", "d_model", d_model), (2, "d_model", "n_layers", n_layers)):
            rows = keep[keep[fixed].to_numpy() == value]
            fig.add_trace(_measurement_trace(rows, x, f"measured ({source})", col == 1 and len(keep) > 0),
                          row=1, col=col)
    if mark_shape:
        at = predict_latency(n_layers, d_model, workload=workload, band=False)
        text = f"{n_layers}x{d_model}: {float(at.latency_s):.3g} s"
        for col, x in ((1, n_layers), (2, d_model)):
            fig.add_trace(go.Scatter(
                x=[x], y=[float(at.latency_s)], mode="markers", name=f"{n_layers}x{d_model}", legendgroup="shape",
                showlegend=col == 1, marker=dict(color="black", size=11, symbol="x"),
                hovertemplate=text + "<extra></extra>",
            ), row=1, col=col)
    fig.update_yaxes(title=AXIS_TITLES["latency_s"], rangemode="tozero")
    fig.update_layout(title=two_lines(f"Latency against depth and width on {device.label}", workload.describe()))
    return finish(fig, into)


def latency_at_equal_size(
    params: float,
    *,
    workload: Workload | None = None,
    tolerance: float = 0.05,
    depth: tuple[int, int] = (1, 64),
    measurements: pd.DataFrame | None = None,
    measurement_tolerance: float | None = None,
    into: go.FigureWidget | None = None,
    **overrides: Any,
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
    workload, **overrides
        As in :func:`latency_vs_shape`.
    """
    workload = as_workload(workload, **overrides)
    device = workload.device
    grid = enumerate_shapes(params * (1 - tolerance), params * (1 + tolerance), n_layers_max=depth[1]).to_frame()
    grid = grid[grid["n_layers"] >= depth[0]]
    if grid.empty:
        raise MorphError(f"no shape of {depth[0]}-{depth[1]} layers has {si_format(params)} parameters within {tolerance:.0%}")
    grid["gap"] = (grid["N"] / params - 1).abs()
    shapes = grid.loc[grid.groupby("n_layers")["gap"].idxmin()].sort_values("n_layers")
    L, d = shapes["n_layers"].to_numpy(), shapes["d_model"].to_numpy()
    model = predict_latency(L, d, workload=workload, band=False)
    floor = roofline_latency(L, d, workload=workload)
    info = np.column_stack([d, shapes["N"].to_numpy(float), shapes["aspect_ratio"].to_numpy()])
    fig = new_figure()
    fig.add_trace(go.Scatter(
        x=L, y=model.latency_s, mode="lines+markers", name=f"model ({workload.resolved_calibration().name})",
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
        keep = timed_under(measurements, workload)
        N = parameter_count(keep["n_layers"].to_numpy(), keep["d_model"].to_numpy())
        rows = keep[np.abs(N / params - 1) <= near]
        trace = _measurement_trace(rows, "n_layers", f"measured ({measurements.attrs.get('source', 'timings')})", True)
        trace.update(mode="markers+text", textposition="top center")
        fig.add_trace(trace)
    fig.update_xaxes(title=AXIS_TITLES["n_layers"])
    fig.update_yaxes(title=AXIS_TITLES["latency_s"], rangemode="tozero")
    fig.update_layout(title=two_lines(f"Shapes of {si_format(params)} parameters (within {tolerance:.0%}) on {device.label}",
                                      workload.describe()))
    return finish(fig, into)


def throughput_vs_batch(
    shapes: Sequence[tuple[int, int]],
    *,
    workload: Workload | None = None,
    batch_max: int = 256,
    into: go.FigureWidget | None = None,
    **overrides: Any,
) -> go.Figure:
    """Throughput (left) and latency (right) against batch size for a few shapes.

    At batch 1 decode is host-bound and latency barely depends on width; as
    the batch grows, the device's arithmetic and the key/value cache take
    over, throughput saturates and the roofline (dotted) becomes the limit.

    Parameters
    ----------
    shapes : sequence of (n_layers, d_model)
    workload, **overrides
        As in :func:`latency_vs_shape`; the batch runs over powers of two instead.
    batch_max : int
        Largest batch (powers of two from 1). The key/value cache is assumed to fit in memory.
    """
    if not shapes:
        raise MorphError("give at least one shape (n_layers, d_model)")
    workload = as_workload(workload, **overrides)
    device, output_tokens = workload.device, workload.output_tokens
    batch = 2 ** np.arange(0, int(math.log2(batch_max)) + 1)
    L = np.array([s[0] for s in shapes])[:, None]
    d = np.array([s[1] for s in shapes])[:, None]
    model = predict_latency(L, d, workload=workload, batch=batch[None, :], band=False)
    floor = roofline_latency(L, d, workload=workload, batch=batch[None, :])
    fig = new_figure(1, 2, horizontal_spacing=0.1, subplot_titles=("throughput", "latency of one call"))
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
    fig.update_layout(title=two_lines(f"Batch size on {device.label} (dotted: roofline floor)",
                                       f"{workload.input_tokens} in + {output_tokens} out tokens, {workload.dtype}"),
                      legend_title="shape")
    return finish(fig, into)
