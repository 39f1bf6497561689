"""Pieces of the dashboard that need no widget: thinning a point cloud, the runs' traces, names, precision.

Kept apart from :mod:`morph.app.dashboard` (the view) so that each stays short.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray

from ..data import load_runs
from ..frontier import Evaluation
from ..latency.hardware import get_hardware
from .settings import DashboardSettings

__all__ = ["run_traces", "shape_name", "supported_precision", "thin_points"]


def thin_points(x: NDArray, y: NDArray, max_points: int, log_x: bool = True) -> NDArray[np.int64]:
    """Indices of at most about ``max_points`` points that draw the same cloud as all of them.

    The plane is cut into a grid of about ``max_points`` cells (``x`` in log
    scale when ``log_x``) and the first point of each occupied cell is kept:
    the outline of the cloud and its isolated points survive, dense regions
    are thinned. Returns every index when there are few enough points.
    """
    n = x.size
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    side = max(1, int(math.sqrt(max_points)))
    u = np.log(x) if log_x else np.asarray(x, dtype=np.float64)

    def cell(v: NDArray) -> NDArray[np.int64]:
        span = float(v.max() - v.min()) or 1.0
        return np.minimum(((v - v.min()) / span * side).astype(np.int64), side - 1)

    _, first = np.unique(cell(u) * side + cell(np.asarray(y, dtype=np.float64)), return_index=True)
    return np.sort(first).astype(np.int64)


def supported_precision(settings: DashboardSettings) -> tuple[DashboardSettings, str | None]:
    """``settings`` with a precision its hardware has a throughput figure for, and a sentence if it changed.

    A CPU has no bf16 (or fp16) figure: choosing it switches the precision to fp32
    rather than answering with an error whose advice (edit the hardware table)
    cannot be followed in the page.
    """
    hardware = get_hardware(settings.hardware)
    if settings.dtype == "fp32" or hardware.bf16_tflops is not None:
        return settings, None
    note = (f"{hardware.label} has no {settings.dtype} throughput figure, so the precision is fp32 "
            "(latency is predicted at fp32 throughput).")
    return dataclasses.replace(settings, dtype="fp32"), note


def shape_name(evaluation: Evaluation, index: int) -> str:
    """A candidate named by its shape, ``12x3072`` (layers x width): what a reader can compare."""
    return f"{int(evaluation.candidates.n_layers[index])}x{int(evaluation.candidates.d_model[index])}"


def run_traces() -> list[go.Scatter]:
    """The paper's 76 runs: markers coloured by size, and thin lines joining each size's runs at one budget.

    Two traces rather than one per size: every trace adds a legend entry that
    plotly lays out again on each redraw, and redraws follow the slider.
    """
    runs = load_runs().sort_values(["N", "budget_label", "aspect_ratio"])
    xs: list[float | None] = []
    ys: list[float | None] = []
    for _, group in runs.groupby(["size_label", "budget_label"], sort=False):
        group = group.sort_values("aspect_ratio")
        xs += group["aspect_ratio"].tolist() + [None]
        ys += group["loss"].tolist() + [None]
    lines = go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(90,90,90,0.35)", width=1),
                       hoverinfo="skip", showlegend=False, name="runs of one size and budget")
    labels = runs["run"] + " (" + runs["size_label"] + ", " + runs["budget_label"] + ")"
    markers = go.Scatter(
        x=runs["aspect_ratio"].to_numpy(), y=runs["loss"].to_numpy(), text=labels.tolist(), mode="markers",
        name=f"the paper's {len(runs)} runs (colour: size)",
        marker=dict(size=7, color=np.log10(runs["N"].to_numpy()), colorscale="Viridis", cmin=7.8, cmax=9.3,
                    colorbar=dict(title=dict(text="N", side="right"), x=1.0, len=0.75, thickness=10,
                                  tickvals=[8, 8.5, 9], ticktext=["100M", "316M", "1B"])),
        hovertemplate="%{text}<br>R %{x:.0f}<br>loss %{y:.4f}<extra></extra>",
    )
    return [lines, markers]
