"""The dashboard's controls: one widget per setting, read back through the same gate as a link, moved quietly.

:class:`DashboardControls` builds the controls from a
:class:`~morph.app.settings.DashboardSettings`, reads them back as settings
(clamped as a link's values are, :func:`~morph.app.settings.clamp_fields`),
moves them as part of a change without calling the dashboard back
(:func:`~morph.app.ui.quiet`), greys out what the mode makes irrelevant, and
lays them out (essentials first, the rest folded away).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import ipywidgets as widgets

from ..errors import MorphError
from ..frontier import Evaluation, Selection
from ..latency.serving import SERVING_METRICS
from .readouts import readout_box, round_outward, round_significant
from .settings import MODES, NUMBER_SETTINGS, DashboardSettings, clamp_fields, setting_choices
from .ui import quiet

__all__ = ["BUDGET_LABELS", "DashboardControls", "budget_slider", "build_controls"]

BUDGET_LABELS = {
    "latency_s": "Latency budget (s)",
    "ttft_s": "Time to first token, at most (s)",
    "ms_per_token": "Time per output token, at most (ms)",
    "tokens_per_s": "Throughput, at least (tokens/s)",
    "cost_per_million_tokens": "Cost per 1M generated tokens, at most",
}
LOG_SLIDERS = ("params_min", "params_max", "tokens", "flops", "latency_budget_s", "price_per_gpu_hour")
"""The settings on a log-scale slider (a moved one is rounded to three significant digits)."""


def budget_slider(slider: widgets.FloatLogSlider, metric: str) -> widgets.FloatLogSlider:
    """Give the budget slider the metric's range and name (call with the slider unobserved)."""
    low, high = SERVING_METRICS[metric].budget_range
    slider.min, slider.max = math.log10(low), math.log10(high)
    slider.description = BUDGET_LABELS[metric]
    return slider


def build_controls(s: DashboardSettings) -> dict[str, widgets.Widget]:
    """One control per setting, by field name, set to ``s``."""
    # Labels above their control (CSS in morph.app.layout): nothing is cut off in a narrow column.
    style = {"description_width": "initial"}
    layout = widgets.Layout(width="auto")
    choices = setting_choices()

    def log_slider(field: str, description: str) -> widgets.FloatLogSlider:
        spec = NUMBER_SETTINGS[field]
        return widgets.FloatLogSlider(
            value=getattr(s, field), base=10, min=math.log10(spec.low), max=math.log10(spec.high), step=0.01,
            description=description, readout_format=".3g", continuous_update=False,
            style=style, layout=layout,
        )

    def ladder(field: str, description: str) -> widgets.SelectionSlider:
        spec = NUMBER_SETTINGS[field]
        return widgets.SelectionSlider(
            options=list(spec.ladder), value=getattr(s, field), description=description,
            continuous_update=True, style=style, layout=layout,
        )

    def dropdown(field: str, description: str) -> widgets.Dropdown:
        return widgets.Dropdown(
            options=[(label, value) for value, label in choices[field].items()], value=getattr(s, field),
            description=description, style=style, layout=layout,
        )

    # continuous_update follows the cost of what a move recomputes, within
    # one constraint of ipywidgets 8.1:
    # - the ladders (batch, lengths) and top k re-evaluate or only re-rank
    #   cached shapes (a few ms for 10^5 shapes, benchmarks/bench_frontier.py),
    #   so they follow the drag;
    # - the parameter range re-enumerates the shapes (up to ~10^5) and
    #   redraws every view: on release;
    # - tokens, FLOPs and the latency budget are cheap, yet their log-scale
    #   sliders apply on release too: with continuous_update a FloatLogSlider
    #   view sends its step-snapped position back as the value when it
    #   renders and after every change from Python, which turned the paper's
    #   28,991,029,248 tokens into 2.884e10 on page load here. Each arrow-key
    #   press still applies at once.
    return {
        "mode": widgets.ToggleButtons(
            options=[(label, value) for value, label in MODES.items()], value=s.mode,
            description="Budget given as", style={"description_width": "initial", "button_width": "auto"},
        ),
        "shapes": dropdown("shapes", "Candidate shapes"),
        "params_min": log_slider("params_min", "Smallest model (parameters)"),
        "params_max": log_slider("params_max", "Largest model (parameters)"),
        "tokens": log_slider("tokens", "Training tokens"),
        "flops": log_slider("flops", "Compute budget (FLOPs)"),
        "law": dropdown("law", "Loss law"),
        "hardware": dropdown("hardware", "Hardware"),
        "calibration": dropdown("calibration", "Latency calibration"),
        "stack": dropdown("stack", "Serving stack"),
        "dtype": dropdown("dtype", "Precision"),
        "batch": ladder("batch", "Batch size (sequences)"),
        "input_tokens": ladder("input_tokens", "Prompt length (tokens)"),
        "output_tokens": ladder("output_tokens", "Output length (tokens)"),
        "latency_budget_s": budget_slider(log_slider("latency_budget_s", ""), s.budget_metric),
        "budget_metric": dropdown("budget_metric", "Budget on"),
        "price_per_gpu_hour": log_slider("price_per_gpu_hour", "Price per GPU-hour (1: cost in GPU-hours)"),
        "top_k": widgets.IntSlider(
            value=s.top_k, min=1, max=int(NUMBER_SETTINGS["top_k"].high), description="Shapes to keep (top k)",
            continuous_update=True, style=style, layout=layout,
        ),
    }


class DashboardControls:
    """The controls and the one callback that observes them all.

    Parameters
    ----------
    settings : DashboardSettings
        Their first values.

    Attributes
    ----------
    widgets : dict of str to Widget
        One control per setting, by field name.
    callback : callable or None
        What a control's change calls (:meth:`observe`); left out while controls move quietly.
    """

    def __init__(self, settings: DashboardSettings) -> None:
        self.widgets = build_controls(settings)
        self.callback: Callable[..., Any] | None = None

    def __getitem__(self, name: str) -> widgets.Widget:
        return self.widgets[name]

    def observe(self, callback: Callable[..., Any]) -> None:
        """Call ``callback`` on every change of a control's value."""
        self.callback = callback
        for control in self.widgets.values():
            control.observe(callback, names="value")

    def quiet(self, names: Sequence[str] | None = None) -> Any:
        """A block in which the named controls (default: all) move without calling back."""
        chosen = self.widgets.values() if names is None else [self.widgets[n] for n in names]
        return quiet(chosen if self.callback is not None else [], self.callback or (lambda change: None))

    def read(self, current: DashboardSettings) -> DashboardSettings:
        """The controls' values, clamped exactly as a link's values are (:func:`~morph.app.settings.clamp_fields`).

        The page is a client like any other: it may send a value outside a
        slider's range (after widening the range itself) or a choice no
        dropdown offers. Such a value is clamped, and the control is put back
        to its bounds and the clamped value. ``current`` is what the controls
        showed before this change.
        """
        values = {name: control.value for name, control in self.widgets.items()}
        for name in LOG_SLIDERS:
            # A moved log slider sits on 10**(k/100), e.g. 2.5118864315095797 s: keep the
            # three digits a person reads (the link then says latency=2.51). Values not
            # moved keep every digit (the paper's 28,991,029,248 tokens stay exact).
            value = values[name]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value != getattr(current, name):
                values[name] = round_significant(float(value))
        values, notes = clamp_fields(DashboardSettings(**values))
        if notes:
            self.restore(values)
        return DashboardSettings(**values)

    def restore(self, values: dict[str, Any]) -> None:
        """Put the controls back to their own bounds and to ``values``, without a redraw each."""
        with self.quiet():
            for name, control in self.widgets.items():
                spec = NUMBER_SETTINGS.get(name)
                if name == "latency_budget_s":
                    budget_slider(control, values["budget_metric"])
                elif spec is not None and not spec.ladder:
                    low, high = (spec.low, spec.high) if spec.integer else (math.log10(spec.low), math.log10(spec.high))
                    control.min, control.max = type(control.min)(low), type(control.max)(high)
                if control.value != values[name]:
                    control.value = values[name]

    def toggle(self, mode: str) -> None:
        """Grey out what ``mode`` and the budget metric make irrelevant."""
        c = self.widgets
        # Range mode fixes the tokens; compute mode derives them from the FLOPs.
        c["tokens"].disabled = mode != "range"
        c["flops"].disabled = mode != "compute"
        # Compute mode centres every-shape candidates on the law's compute-optimal size.
        centred = mode == "compute" and c["shapes"].value == "grid"
        c["params_min"].disabled = c["params_max"].disabled = centred
        c["price_per_gpu_hour"].disabled = c["budget_metric"].value != "cost_per_million_tokens"

    def retarget_budget(self, metric: str, evaluation: Evaluation | None, selection: Selection | None) -> None:
        """A new budget metric: its range, and a budget the current top pick just meets (it stays first).

        Call with the slider quiet: moving it is part of this change, not one of its own.
        """
        slider = self.widgets["latency_budget_s"]
        value = slider.value
        if selection is not None and evaluation is not None:
            top = int(selection.selected_index[0])
            price = float(self.widgets["price_per_gpu_hour"].value)
            value = round_outward(float(evaluation.metric(metric, price)[top]),
                                  up=not SERVING_METRICS[metric].higher_is_better)
        low, high = SERVING_METRICS[metric].budget_range
        budget_slider(slider, metric)
        slider.value = min(max(value, low), high)

    def set(self, changes: dict[str, Any], current: DashboardSettings, evaluation: Evaluation | None,
            selection: Selection | None) -> None:
        """Move several controls quietly, as a user would (a budget given wins over a new metric's)."""
        unknown = set(changes) - set(self.widgets)
        if unknown:
            raise MorphError(f"unknown setting(s) {', '.join(sorted(unknown))}; choose from {', '.join(self.widgets)}")
        with self.quiet():
            for name, value in changes.items():
                if name != "latency_budget_s":
                    self.widgets[name].value = value
            if changes.get("budget_metric", current.budget_metric) != current.budget_metric:
                self.retarget_budget(changes["budget_metric"], evaluation, selection)
            if "latency_budget_s" in changes:
                self.widgets["latency_budget_s"].value = changes["latency_budget_s"]

    def panel(self) -> widgets.VBox:
        """The controls laid out: essentials first (on a phone they come before the plot), the rest folded away."""
        c = self.widgets

        def group(names: Sequence[str]) -> widgets.VBox:
            readouts = {"params_min": "parameters", "params_max": "parameters", "tokens": "tokens", "flops": "FLOPs"}
            return widgets.VBox([readout_box(c[n], readouts[n]) if n in readouts else c[n] for n in names])

        essentials = group(["latency_budget_s", "top_k", "hardware", "law", "shapes"])
        essentials.add_class("morph-essentials")  # kept in view when narrow (morph.app.layout.STICKY_CSS)
        advanced = widgets.Accordion(
            children=[
                group(["mode", "params_min", "params_max", "tokens", "flops"]),
                group(["budget_metric", "price_per_gpu_hour", "stack", "calibration", "dtype", "batch", "input_tokens",
                       "output_tokens"]),
            ],
            titles=("Advanced: candidates and training", "Advanced: serving"),
            selected_index=None,
        )
        panel = widgets.VBox([widgets.HTML("<b>Choose</b>"), essentials, advanced])
        panel.add_class("morph-controls")
        return panel
