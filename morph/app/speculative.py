"""Figures and an explorer for speculative decoding (notebooks; a thin layer over :mod:`morph.speculative`).

:func:`equal_size_deep_draft` finds the deep, narrow counterpart of a draft,
:func:`speedup_figure` draws speed-up against lookahead for drafts,
:func:`step_time_figure` shows where one verification step's time goes, and
:class:`SpeculativeExplorer` puts sliders for the target shape, the draft's
depth and width, the acceptance rate and the lookahead on top of them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from .. import hardware_presets
from ..errors import MorphError
from ..shapes import DEFAULT_HEAD_DIM, parameter_count
from ..latency import Workload
from ..speculative import DEFAULT_MAX_LOOKAHEAD, expected_tokens, speculative_timing, target_pass_s
from .bundle import figure_widget_class
from .plotting import finish

__all__ = ["DraftPoint", "equal_size_deep_draft", "draft_curves", "speedup_figure", "step_time_figure",
           "SpeculativeExplorer"]

_WIDE = {"description_width": "initial"}
_LAYOUT = widgets.Layout(width="420px")


def equal_size_deep_draft(n_layers: int, d_model: int, width_factor: int = 2, max_layers: int = 1024) -> tuple[int, int]:
    """The deep, narrow shape with about as many parameters as ``n_layers x d_model``.

    Width divided by ``width_factor`` (rounded to a multiple of 64, at least
    64), depth chosen so the total parameter count is as close as possible.

    Returns
    -------
    (n_layers, d_model) : tuple of int
    """
    if width_factor < 1:
        raise MorphError(f"the width factor must be at least 1, got {width_factor}")
    width = max(DEFAULT_HEAD_DIM, int(round(d_model / width_factor / DEFAULT_HEAD_DIM)) * DEFAULT_HEAD_DIM)
    depths = np.arange(1, max_layers + 1)
    gap = np.abs(parameter_count(depths, width) - int(parameter_count(n_layers, d_model)))
    return int(depths[np.argmin(gap)]), width


@dataclass(frozen=True)
class DraftPoint:
    """One draft's speed-up curve over lookaheads ``0 .. len(speedup) - 1``.

    Attributes
    ----------
    label : str
        ``"4x2048"``.
    parameters : int
        Total parameters.
    draft_step_s : float
        One decode step (seconds).
    speedup : ndarray
        Speed-up over the target alone per lookahead.
    """

    label: str
    parameters: int
    draft_step_s: float
    speedup: np.ndarray


def draft_curves(target: str, drafts: Sequence[tuple[int, int]], acceptance: float,
                 max_lookahead: int = DEFAULT_MAX_LOOKAHEAD, **workload: Any) -> list[DraftPoint]:
    """Speed-up against lookahead for each draft ``(n_layers, d_model)``.

    ``workload`` is ``workload=`` a :class:`~morph.latency.Workload` and any
    override, as in :func:`morph.speculative.speculative_timing`.
    """
    layers = np.array([d[0] for d in drafts])
    widths = np.array([d[1] for d in drafts])
    timing = speculative_timing(target, layers, widths, acceptance, np.arange(max_lookahead + 1)[:, None], **workload)
    return [
        DraftPoint(f"{L}x{d}", int(parameter_count(L, d)), float(timing.draft_step_s[0, i]), timing.speedup[:, i])
        for i, (L, d) in enumerate(drafts)
    ]


def speedup_figure(curves: Sequence[DraftPoint], lookahead: int | None = None, title: str = "",
                   into: go.FigureWidget | None = None) -> go.Figure:
    """Speed-up over the target alone against lookahead ``k``, one line per draft; 1 marks no gain."""
    figure = go.Figure()
    traces = []
    for curve in curves:
        k = np.arange(curve.speedup.size)
        best = int(np.argmax(curve.speedup))
        traces.append(go.Scatter(
            x=k, y=curve.speedup, mode="lines+markers",
            name=f"{curve.label} ({curve.parameters / 1e6:.0f}M, {1e3 * curve.draft_step_s:.2f} ms/step): "
                 f"best {curve.speedup[best]:.2f}x at k = {best}",
            hovertemplate="k = %{x}<br>speed-up %{y:.3f}x<extra></extra>",
        ))
    figure.add_traces(traces)
    # Lines across the plot in paper coordinates.
    lines = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=1.0, y1=1.0,
                  line=dict(dash="dot", color="grey"))]
    if lookahead is not None:
        lines.append(dict(type="line", xref="x", x0=lookahead, x1=lookahead, yref="paper", y0=0, y1=1,
                          line=dict(dash="dash", color="grey")))
    figure.layout.shapes = lines
    figure.update_layout(title=title or "Speed-up over the target alone", xaxis_title="lookahead k (drafted tokens)",
                         yaxis_title="speed-up (x)", legend=dict(orientation="h", y=-0.25), height=430,
                         margin=dict(l=60, r=20, t=50, b=40))
    return finish(figure, into)


def step_time_figure(target: str, drafts: Sequence[tuple[int, int]], acceptance: float, lookahead: int,
                     into: go.FigureWidget | None = None, **workload: Any) -> go.Figure:
    """Where one verification step's time goes: ``k`` draft steps and the target's pass, per draft.

    A last bar shows what the target alone needs for the same expected
    number of tokens; a step bar shorter than it is a speed-up.
    """
    layers = np.array([d[0] for d in drafts])
    widths = np.array([d[1] for d in drafts])
    timing = speculative_timing(target, layers, widths, acceptance, lookahead, **workload)
    labels = [f"{L}x{d}" for L, d in drafts]
    tokens = float(expected_tokens(acceptance, lookahead))
    names = labels + ["target alone"]
    drafting = 1e3 * np.append(lookahead * timing.draft_step_s, 0.0)
    verifying = 1e3 * np.append(timing.verify_s, tokens * timing.target_step_s)
    figure = go.Figure()
    figure.add_traces([
        go.Bar(y=names, x=drafting, orientation="h", name=f"{lookahead} draft decode steps",
               hovertemplate="%{x:.2f} ms<extra></extra>"),
        go.Bar(y=names, x=verifying, orientation="h", name=f"target pass over {lookahead + 1} tokens "
                                                              f"(target alone: {tokens:.2f} steps)",
               hovertemplate="%{x:.2f} ms<extra></extra>"),
    ])
    figure.update_layout(barmode="stack", title=f"One step yields {tokens:.2f} tokens on average: where its time goes",
                         xaxis_title="milliseconds", height=300, legend=dict(orientation="h", y=-0.35),
                         margin=dict(l=110, r=20, t=50, b=40))
    return finish(figure, into)


class SpeculativeExplorer(widgets.VBox):
    """Sliders for a target, a draft, the acceptance rate and the lookahead, with the speed-up they give.

    Next to the chosen draft the figures draw its deep, narrow counterpart of
    equal size (half the width, as many parameters: :func:`equal_size_deep_draft`)
    at the same acceptance rate.

    Parameters
    ----------
    hardware : str
        Preset at first.
    target : (int, int)
        Target ``(n_layers, d_model)`` at first.
    draft : (int, int)
        Draft ``(n_layers, d_model)`` at first.
    acceptance : float
        Acceptance rate at first.
    lookahead : int
        Lookahead at first.
    """

    def __init__(self, hardware: str = "a100-40gb", *, target: tuple[int, int] = (32, 4096),
                 draft: tuple[int, int] = (4, 2048), acceptance: float = 0.75, lookahead: int = 4) -> None:
        presets = hardware_presets()
        if hardware not in presets:
            raise MorphError(f"unknown hardware {hardware!r}; choose one of {', '.join(presets)}")
        gpus = [(hw.label, name) for name, hw in presets.items() if hw.bf16_tflops]
        sliders = dict(style=_WIDE, layout=_LAYOUT, continuous_update=False)
        self.hardware = widgets.Dropdown(options=gpus, value=hardware, description="hardware", style=_WIDE,
                                         layout=_LAYOUT)
        self.target_layers = widgets.IntSlider(value=target[0], min=4, max=96, description="target n_layers", **sliders)
        self.target_width = widgets.IntSlider(value=target[1], min=1024, max=12288, step=256,
                                              description="target d_model", **sliders)
        self.draft_layers = widgets.IntSlider(value=draft[0], min=1, max=48, description="draft n_layers", **sliders)
        self.draft_width = widgets.IntSlider(value=draft[1], min=128, max=8192, step=64, description="draft d_model",
                                             **sliders)
        self.acceptance = widgets.FloatSlider(value=acceptance, min=0.0, max=1.0, step=0.01,
                                              description="acceptance rate a", **sliders)
        self.lookahead = widgets.IntSlider(value=lookahead, min=0, max=DEFAULT_MAX_LOOKAHEAD,
                                           description="lookahead k", **sliders)
        self.readout = widgets.HTML()
        self.message = widgets.HTML()
        # A page draws a figure widget from the state it was built with and applies later edits only to
        # views already shown: build each widget from its first figure, then redraw it in place.
        self.speedup: go.FigureWidget | None = None
        self.step_time: go.FigureWidget | None = None
        self.refresh()
        if self.speedup is None:  # the first settings drew nothing (a message says why): empty figures
            FigureWidget = figure_widget_class()
            self.speedup, self.step_time = FigureWidget(), FigureWidget()
        for control in (self.hardware, self.target_layers, self.target_width, self.draft_layers, self.draft_width,
                        self.acceptance, self.lookahead):
            control.observe(lambda _change: self.refresh(), names="value")
        super().__init__(children=[
            widgets.HBox([widgets.VBox([self.hardware, self.target_layers, self.target_width, self.acceptance]),
                          widgets.VBox([self.draft_layers, self.draft_width, self.lookahead])]),
            self.readout, self.message, self.speedup, self.step_time,
        ])

    @property
    def target(self) -> str:
        """The target shape, ``"32x4096"``."""
        return f"{self.target_layers.value}x{self.target_width.value}"

    @property
    def drafts(self) -> list[tuple[int, int]]:
        """The chosen draft and its deep, narrow counterpart of equal size."""
        chosen = (self.draft_layers.value, self.draft_width.value)
        return [chosen, equal_size_deep_draft(*chosen)]

    def refresh(self) -> None:
        """Redraw from the controls; bad combinations show a message instead of a traceback."""
        try:
            self._draw()
            self.message.value = ""
        except MorphError as exc:
            self.message.value = f"<div class='morph-error'>{html.escape(str(exc))}</div>"

    def _draw(self) -> None:
        workload = dict(workload=Workload(hardware=self.hardware.value))
        a, k = float(self.acceptance.value), int(self.lookahead.value)
        curves = draft_curves(self.target, self.drafts, a, **workload)
        speed = speedup_figure(curves, lookahead=k, into=self.speedup,
                               title=f"Target {self.target} at acceptance {a:.2f}: speed-up against lookahead")
        steps = step_time_figure(self.target, self.drafts, a, k, into=self.step_time, **workload)
        if self.speedup is None:
            FigureWidget = figure_widget_class()
            self.speedup, self.step_time = FigureWidget(speed), FigureWidget(steps)
        target_ms = 1e3 * float(target_pass_s(self.target, 1, **workload))
        rows = "".join(
            f"<li><b>{html.escape(c.label)}</b> ({c.parameters / 1e6:.0f}M parameters, "
            f"{1e3 * c.draft_step_s:.2f} ms per draft step): <b>{c.speedup[k]:.2f}x</b> at k = {k}, "
            f"best {c.speedup.max():.2f}x at k = {int(np.argmax(c.speedup))}</li>"
            for c in curves
        )
        self.readout.value = (
            f"Target {html.escape(self.target)}: {target_ms:.2f} ms per token alone. At a = {a:.2f} and k = {k} "
            f"a step yields {float(expected_tokens(a, k)):.2f} tokens on average.<ul>{rows}</ul>"
        )
