"""Interactive explorers for the notebooks: a few controls over Morph's functions and figures.

Each explorer is an :class:`ipywidgets.VBox` (display it as the last
expression of a cell) holding its controls, one plotly ``FigureWidget``
redrawn in place with :func:`morph.app.plotting.fill`, and a
:class:`~morph.app.ui.MessageBar`. Every callback runs under
:func:`morph.app.ui.guarded`: a bad value shows one sentence in the bar, and the
controls and the last good figure stay as they were.

- :class:`LawExplorer`: a law's parameters and a point ``(N, D, R)``.
- :class:`ComputeExplorer`: compute-optimal allocation at a training budget.
- :class:`LatencyExplorer`: hardware, batch, tokens, depth and width.
- :class:`FittingApp`: upload a table of runs and fit a law to it.

The controls are public attributes, so the explorers can be driven from
Python exactly as a user drives them in a page (``explorer.N.value = 1e9``,
``app.fit_button.click()``); the tests do so.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .bundle import figure_widget_class
from . import figures
from ..data import fit_mask, load_runs
from ..errors import DataError, MorphError
from ..fitting import METHODS, FitResult, fit
from ..latency.hardware import DTYPES, get_hardware, hardware_presets
from ..laws import LAW_FAMILIES, PRESETS, ScalingLaw, free_parameters, law_class, tie_parameters
from ..latency import Workload, predict_latency
from ..shapes import parameter_count
from .teaching import monospace
from .ui import MessageBar, guarded

__all__ = [
    "UPLOAD_LIMIT_BYTES",
    "LawExplorer",
    "ComputeExplorer",
    "ContourExplorer",
    "LatencyExplorer",
    "FittingApp",
    "parameter_table",
]

UPLOAD_LIMIT_BYTES = 5 * 2**20
"""Largest file the fitting app accepts (bytes). A browser sends the whole file through the
kernel's websocket before Python sees it; tables of runs are kilobytes, and the command line
(``morph fit``) reads files up to :data:`morph.data.MAX_BYTES`."""

_WIDE = {"description_width": "initial"}
_LAYOUT = widgets.Layout(width="420px")


def _format(value: float) -> str:
    """A number for a readout: 4 significant digits, SI suffix for large counts."""
    return figures.si_format(value) if abs(value) >= 1e4 else f"{value:.4g}"


def _html_table(frame: pd.DataFrame) -> str:
    """A DataFrame as an escaped HTML table with right-aligned numbers."""
    return frame.to_html(index=False, escape=True, border=0, classes="morph-table", na_rep="")


# -- law explorer ----------------------------------------------------------------------------


def _parameter_slider(law: ScalingLaw, name: str, tied_with: Sequence[str]) -> widgets.Widget:
    """A slider over the range the law gives its parameter (:meth:`~morph.laws.ScalingLaw.slider`)."""
    value = law.params[name]
    spec = law.slider(name, value)
    label = name + "".join(f" = {other}" for other in tied_with)
    common = dict(description=label, style=_WIDE, layout=_LAYOUT, continuous_update=False,
                  tooltip=law.descriptions[name], value=value, min=spec.low, max=spec.high, step=spec.step)
    if spec.kind == "log":
        return widgets.FloatLogSlider(base=spec.base, readout_format=".4g" if spec.base == 10 else ".3g", **common)
    return widgets.FloatSlider(readout_format=".4g", **common)


class LawExplorer(widgets.VBox):
    """A scaling law's prediction around a point ``(N, D, R)``, with its parameters on sliders.

    Choose a published preset; its free parameters get sliders (tied ones
    follow their partner, as the preset was fitted). The figure is
    :func:`morph.app.figures.law_overview`; the readout splits the predicted
    loss into the Chinchilla part and the shape factor.

    Parameters
    ----------
    preset : str
        Name in :data:`morph.laws.PRESETS`.
    N : float
        Parameters of the point (default: Morph-1B, 1.67B).
    D : float
        Training tokens of the point (default: the 1B runs' 29B).
    aspect_ratio : float
        ``d_model / n_layers`` of the point (default: Morph-1B's 256).
    """

    def __init__(self, preset: str = "bian2025", *, N: float = 1_668_885_504, D: float = 28_991_029_248,
                 aspect_ratio: float = 256.0) -> None:
        if preset not in PRESETS:
            raise MorphError(f"unknown law preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.messages = MessageBar()
        self.preset = widgets.Dropdown(
            options=[(f"{name}: {p.law.family} ({p.variant})", name) for name, p in PRESETS.items()],
            value=preset, description="law preset", style=_WIDE, layout=_LAYOUT)
        self.N = widgets.FloatLogSlider(value=N, base=10, min=7, max=12, step=0.01, description="N (parameters)",
                                        readout_format=".3g", style=_WIDE, layout=_LAYOUT, continuous_update=False)
        self.D = widgets.FloatLogSlider(value=D, base=10, min=8, max=13, step=0.01, description="D (tokens)",
                                        readout_format=".3g", style=_WIDE, layout=_LAYOUT, continuous_update=False)
        self.aspect_ratio = widgets.FloatLogSlider(
            value=aspect_ratio, base=2, min=2, max=10, step=0.05, description="R = d_model / n_layers",
            readout_format=".3g", style=_WIDE, layout=_LAYOUT, continuous_update=False)
        self.sliders: dict[str, widgets.Widget] = {}
        self.parameter_box = widgets.VBox()
        self.readout = widgets.HTML()
        self._build_sliders()
        self.figure = figure_widget_class()(self._figure())
        self._write_readout()
        self.refresh = guarded(self.messages)(self._refresh)
        self.preset.observe(guarded(self.messages)(self._on_preset), names="value")
        for control in (self.N, self.D, self.aspect_ratio):
            control.observe(lambda _change: self.refresh(), names="value")
        super().__init__(children=[
            self.preset,
            widgets.HBox([widgets.VBox([widgets.HTML("<b>the point</b>"), self.N, self.D, self.aspect_ratio]),
                          widgets.VBox([widgets.HTML("<b>the law's free parameters</b>"), self.parameter_box])]),
            self.readout, self.messages, self.figure,
        ])

    @property
    def law(self) -> ScalingLaw:
        """The law the sliders describe (tied parameters follow their partners)."""
        chosen = PRESETS[self.preset.value]
        free = {name: float(slider.value) for name, slider in self.sliders.items()}
        return type(chosen.law).from_values(tie_parameters(chosen.law.family, chosen.variant, free))

    def _build_sliders(self) -> None:
        chosen = PRESETS[self.preset.value]
        ties = type(chosen.law).variants[chosen.variant]
        self.sliders = {
            name: _parameter_slider(chosen.law, name, [t for t, partner in ties.items() if partner == name])
            for name in free_parameters(chosen.law.family, chosen.variant)
        }
        for slider in self.sliders.values():
            slider.observe(lambda _change: self.refresh(), names="value")
        self.parameter_box.children = tuple(self.sliders.values())

    def _figure(self) -> go.Figure:
        return figures.law_overview(self.law, N=self.N.value, D=self.D.value, aspect_ratio=self.aspect_ratio.value)

    def _write_readout(self) -> None:
        law, N, D, R = self.law, self.N.value, self.D.value, self.aspect_ratio.value
        with np.errstate(all="ignore"):
            base = float(law.chinchilla_loss(N, D))
            factor = float(law.shape_factor(R))
        self.readout.value = (
            f"Predicted loss at N = {_format(N)} parameters, D = {_format(D)} tokens "
            f"({D / N:.3g} per parameter), R = {R:.3g}: <b>{base * factor:.4f}</b> nats/token "
            f"= Chinchilla part {base:.4f} &times; shape factor {factor:.4f}."
        )

    def _refresh(self) -> None:
        figures.law_overview(self.law, N=self.N.value, D=self.D.value, aspect_ratio=self.aspect_ratio.value,
                             into=self.figure)
        self._write_readout()

    def _on_preset(self, _change: Any) -> None:
        self._build_sliders()
        self._refresh()


# -- compute explorer ------------------------------------------------------------------------


class ComputeExplorer(widgets.VBox):
    """Compute-optimal ``N`` and ``D`` of one or more laws at a training budget ``C = 6 N D``.

    Parameters
    ----------
    laws : sequence of str
        Preset names selected at first (compare Hoffmann's published fit with
        Besiroglu's replication, for instance).
    flops : float
        Training budget (FLOPs) at first.
    aspect_ratio : float
        Shape at which shape-aware laws give their loss.
    """

    def __init__(self, laws: Sequence[str] = ("besiroglu2024", "hoffmann2022"), *, flops: float = 1e22,
                 aspect_ratio: float = 64.0) -> None:
        unknown = [name for name in laws if name not in PRESETS]
        if unknown:
            raise MorphError(f"unknown law preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
        self.messages = MessageBar()
        self.laws = widgets.SelectMultiple(options=list(PRESETS), value=tuple(laws), rows=len(PRESETS),
                                           description="laws", style=_WIDE)
        self.flops = widgets.FloatLogSlider(value=flops, base=10, min=18, max=26, step=0.1,
                                            description="compute C (FLOPs)", readout_format=".2g", style=_WIDE,
                                            layout=_LAYOUT, continuous_update=False)
        self.aspect_ratio = widgets.FloatLogSlider(
            value=aspect_ratio, base=2, min=2, max=10, step=0.05, description="R (shape-aware laws)",
            readout_format=".3g", style=_WIDE, layout=_LAYOUT, continuous_update=False)
        self.readout = widgets.HTML()
        self.figure = figure_widget_class()(self._figure())
        self._write_readout()
        self.refresh = guarded(self.messages)(self._refresh)
        for control in (self.laws, self.flops, self.aspect_ratio):
            control.observe(lambda _change: self.refresh(), names="value")
        super().__init__(children=[
            widgets.HBox([self.laws, widgets.VBox([self.flops, self.aspect_ratio])]),
            self.readout, self.messages, self.figure,
        ])

    def _chosen(self) -> dict[str, ScalingLaw]:
        if not self.laws.value:
            raise MorphError("choose at least one law")
        return {name: PRESETS[name].law for name in self.laws.value}

    def optimum_table(self) -> pd.DataFrame:
        """One row per chosen law: its compute-optimal ``N``, ``D``, ``D / N`` and loss at the budget."""
        rows = []
        for name, law in self._chosen().items():
            at = law.compute_optimal(self.flops.value, self.aspect_ratio.value if law.needs_aspect_ratio else None)
            rows.append({"law": name, "N": float(at.N), "D": float(at.D),
                         "D / N": float(at.tokens_per_parameter), "loss": float(at.loss)})
        return pd.DataFrame(rows)

    def _figure(self) -> go.Figure:
        return figures.compute_optimal_frontier(self._chosen(), aspect_ratio=self.aspect_ratio.value,
                                                budget=self.flops.value)

    def _write_readout(self) -> None:
        table = self.optimum_table()
        shown = table.assign(N=table["N"].map(_format), D=table["D"].map(_format),
                             **{"D / N": table["D / N"].map("{:.3g}".format), "loss": table["loss"].map("{:.4f}".format)})
        self.readout.value = f"At C = {self.flops.value:.3g} FLOPs:" + _html_table(shown)

    def _refresh(self) -> None:
        figures.compute_optimal_frontier(self._chosen(), aspect_ratio=self.aspect_ratio.value,
                                         budget=self.flops.value, into=self.figure)
        self._write_readout()


class ContourExplorer(widgets.VBox):
    """The law's ``L(N, D)`` contours with its compute-optimal frontier; a slider moves the budget ``C = 6 N D``.

    Parameters
    ----------
    law : str or ScalingLaw
        A preset name (fit B, ``bian2025``, by default) or a law.
    flops : float
        Training budget (FLOPs) at first.
    """

    def __init__(self, law: str | ScalingLaw = "bian2025", *, flops: float = 1e20) -> None:
        self.law = PRESETS[law].law if isinstance(law, str) and law in PRESETS else law
        if not isinstance(self.law, ScalingLaw):
            raise MorphError(f"unknown law preset {law!r}; choose from {', '.join(PRESETS)}")
        self.messages = MessageBar()
        self.flops = widgets.FloatLogSlider(value=flops, base=10, min=18, max=23, step=0.1,
                                            description="compute C (FLOPs)", readout_format=".2g", style=_WIDE,
                                            layout=_LAYOUT, continuous_update=False)
        self.figure = figure_widget_class()(figures.loss_contours(self.law, flops=self.flops.value))
        self.refresh = guarded(self.messages)(self._refresh)
        self.flops.observe(lambda _change: self.refresh(), names="value")
        super().__init__(children=[self.flops, self.messages, self.figure])

    def _refresh(self) -> None:
        figures.loss_contours(self.law, flops=self.flops.value, into=self.figure)


# -- latency explorer ------------------------------------------------------------------------

_POWERS_OF_TWO = [2**k for k in range(0, 12)]


class LatencyExplorer(widgets.VBox):
    """Predicted ``generate`` latency against depth and width, on any hardware preset.

    The shape ``n_layers x d_model`` set by the two sliders is where the
    depth panel (at that width) and the width panel (at that depth) meet;
    the readout gives its numbers.

    Parameters
    ----------
    hardware : str
        Preset name at first.
    n_layers, d_model : int
        The shape at first (default Open-LM-1B's 24 x 2048).
    measurements : mapping of hardware name to DataFrame, optional
        Timings to draw where their hardware and workload match the
        controls (for instance ``{"cpu": load_measurements(...)}``).
    """

    def __init__(self, hardware: str = "a100-40gb", *, n_layers: int = 24, d_model: int = 2048,
                 measurements: Mapping[str, pd.DataFrame] | None = None) -> None:
        presets = hardware_presets()
        if hardware not in presets:
            raise MorphError(f"unknown hardware {hardware!r}; choose one of {', '.join(presets)}")
        self.measurements = dict(measurements or {})
        self.messages = MessageBar()
        self.hardware = widgets.Dropdown(options=[(hw.label, name) for name, hw in presets.items()], value=hardware,
                                         description="hardware", style=_WIDE, layout=_LAYOUT)
        self.dtype = widgets.Dropdown(options=list(DTYPES), value="bf16" if presets[hardware].bf16_tflops else "fp32",
                                      description="dtype", style=_WIDE)
        sliders = dict(style=_WIDE, layout=_LAYOUT, continuous_update=False)
        self.batch = widgets.SelectionSlider(options=_POWERS_OF_TWO[:9], value=1, description="batch", **sliders)
        self.input_tokens = widgets.SelectionSlider(options=_POWERS_OF_TWO[4:], value=128, description="input tokens",
                                                    **sliders)
        self.output_tokens = widgets.SelectionSlider(options=_POWERS_OF_TWO[4:], value=256,
                                                     description="output tokens", **sliders)
        self.n_layers = widgets.IntSlider(value=n_layers, min=1, max=64, description="n_layers (width panel)",
                                          **sliders)
        self.d_model = widgets.IntSlider(value=d_model, min=256, max=8192, step=64, description="d_model (depth panel)",
                                         **sliders)
        self.readout = widgets.HTML()
        self.figure = figure_widget_class()(self._figure())
        self._write_readout()
        self.refresh = guarded(self.messages)(self._refresh)
        self.hardware.observe(guarded(self.messages)(self._on_hardware), names="value")
        for control in (self.dtype, self.batch, self.input_tokens, self.output_tokens, self.n_layers, self.d_model):
            control.observe(lambda _change: self.refresh(), names="value")
        super().__init__(children=[
            widgets.HBox([widgets.VBox([self.hardware, self.dtype, self.batch]),
                          widgets.VBox([self.input_tokens, self.output_tokens, self.n_layers, self.d_model])]),
            self.readout, self.messages, self.figure,
        ])

    @property
    def workload(self) -> Workload:
        """The controls' serving settings (the hardware's default calibration)."""
        return Workload(hardware=self.hardware.value, batch=self.batch.value, input_tokens=self.input_tokens.value,
                        output_tokens=self.output_tokens.value, dtype=self.dtype.value)

    def _figure(self, into: go.FigureWidget | None = None) -> go.Figure:
        return figures.latency_vs_shape(
            workload=self.workload, d_model=self.d_model.value, n_layers=self.n_layers.value,
            measurements=self.measurements.get(self.hardware.value), mark_shape=True, into=into)

    def _write_readout(self) -> None:
        L, d = self.n_layers.value, self.d_model.value
        p = predict_latency(L, d, workload=self.workload, band=False)
        floor = float(p.roofline_s)
        self.readout.value = (
            f"<b>{L} x {d}</b> ({_format(float(parameter_count(L, d)))} parameters, R = {d / L:.3g}): "
            f"<b>{float(p.latency_s):.3g} s</b> per call (first token after {1e3 * float(p.prefill_s):.4g} ms, then "
            f"{float(p.ms_per_token):.3g} ms/token, {float(p.tokens_per_s):.4g} tokens/s); the roofline floor is "
            f"{floor:.3g} s, so the prediction is {float(p.latency_s) / floor:.3g}x the floor."
        )

    def _refresh(self) -> None:
        self._figure(into=self.figure)
        self._write_readout()

    def _on_hardware(self, _change: Any) -> None:
        device = get_hardware(self.hardware.value)
        if device.bf16_tflops is None and self.dtype.value != "fp32":
            # Setting the dtype redraws once, with the new hardware.
            self.dtype.value = "fp32"
            self.messages.show(f"{device.label} has no bf16 or fp16 throughput figure: switched to fp32.", "info")
            return
        self._refresh()


# -- fitting app -----------------------------------------------------------------------------


def parameter_table(result: FitResult) -> pd.DataFrame:
    """A fit's parameters: value, standard error, interval and how each was determined.

    Returns
    -------
    DataFrame
        One row per parameter of the law: ``parameter``, ``value``,
        ``std_error`` and ``relative_error_pct`` (free parameters, when
        estimable), ``ci_low`` and ``ci_high`` (with a bootstrap), ``status``
        (``free`` or ``tied to alpha``) and ``meaning``.
    """
    ties = law_class(result.family).variants[result.variant]
    names = result.law.parameter_names()
    values = np.array([result.params[n] for n in names])
    stderr = np.array([(result.stderr or {}).get(n, np.nan) if n in result.free_parameters else np.nan for n in names])
    conf = result.conf_int or {}
    low = np.array([conf[n][0] if n in conf else np.nan for n in names])
    high = np.array([conf[n][1] if n in conf else np.nan for n in names])
    with np.errstate(all="ignore"):
        relative = np.abs(stderr / values) * 100
    return pd.DataFrame({
        "parameter": names,
        "value": values,
        "std_error": stderr,
        "relative_error_pct": relative,
        "ci_low": low,
        "ci_high": high,
        "status": [f"tied to {ties[n]}" if n in ties else "free" for n in names],
        "meaning": [result.law.descriptions.get(n, "") for n in names],
    })


def _parameter_html(result: FitResult) -> str:
    table = parameter_table(result)

    def number(template: str) -> Any:
        return lambda v: "" if np.isnan(v) else template.format(v)

    shown = pd.DataFrame({
        "parameter": table["parameter"],
        "value": table["value"].map("{:.8g}".format),
        "std. error": table["std_error"].map(number("{:.4g}")),
        "relative": table["relative_error_pct"].map(number("{:.2f}%")),
    })
    if result.conf_int:
        level = f"{result.confidence:.0%} CI"
        shown[f"{level} low"] = table["ci_low"].map(number("{:.6g}"))
        shown[f"{level} high"] = table["ci_high"].map(number("{:.6g}"))
    shown["status"], shown["meaning"] = table["status"], table["meaning"]
    note = "" if result.conf_int else "<p><i>Confidence intervals need bootstrap refits (set bootstrap refits above 0).</i></p>"
    return _html_table(shown) + note


def _flag_columns(table: pd.DataFrame) -> list[tuple[str, int]]:
    """Columns named ``in_fit...`` holding 0/1 flags that select at least one row, with their counts."""
    found = []
    for column in table.columns:
        if not str(column).lower().startswith("in_fit"):
            continue
        try:
            found.append((str(column), int(fit_mask(table, str(column)).sum())))
        except DataError:
            continue  # not a usable set of flags: not offered
    return found


# ipywidgets draws a FileUpload as "description (count)": "(0)" before and, since the
# app clears the value to accept the same file again, after every upload. The label
# is drawn by CSS instead (the button's own text, count included, is kept for screen readers).
_UPLOAD_CSS = """<style>
.morph-upload.widget-upload { font-size: 0 !important; }
.morph-upload.widget-upload i { font-size: var(--jp-widgets-font-size, 13px); margin-right: 4px; }
.morph-upload.widget-upload::after { content: "Upload runs (.csv)"; font-size: var(--jp-widgets-font-size, 13px); }
</style>"""


class FittingApp(widgets.VBox):
    """Fit a scaling law to the paper's runs or to an uploaded CSV table of runs.

    Upload one ``.csv`` (columns ``N`` or ``params``, ``D`` or ``tokens``,
    ``loss``, and ``aspect_ratio`` or ``n_layers`` and ``d_model`` for the
    shape-aware laws; optional 0/1 columns ``in_fit_*`` choose fit sets). A
    table is taken only when it loads and the chosen law fits it; otherwise
    the bar says why in one sentence, and the previous table, choices and
    results stay.

    Parameters
    ----------
    max_bytes : int
        Largest upload accepted (default :data:`UPLOAD_LIMIT_BYTES`).

    Attributes
    ----------
    result : FitResult
        The fit shown.
    table : DataFrame
        The runs of the chosen source.
    """

    PAPER = "paper"
    UPLOAD = "upload"

    def __init__(self, *, max_bytes: int = UPLOAD_LIMIT_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.messages = MessageBar()
        self.fit_warnings = MessageBar()
        paper = load_runs()
        self._tables: dict[str, tuple[str, pd.DataFrame]] = {self.PAPER: (f"the paper's {len(paper)} runs", paper)}
        self.failed_upload: str | None = None
        self._syncing = False

        self.upload = widgets.FileUpload(accept=".csv", multiple=False, description="Upload runs (.csv)",
                                         tooltip="Upload a CSV table of runs", layout=widgets.Layout(width="220px"))
        self.upload.add_class("morph-upload")
        self.source = widgets.RadioButtons(options=[(self._tables[self.PAPER][0], self.PAPER)], value=self.PAPER,
                                           description="runs", style=_WIDE)
        self.law = widgets.Dropdown(options=list(LAW_FAMILIES), value="inference-efficient", description="law",
                                    style=_WIDE)
        self.variant = widgets.Dropdown(options=list(law_class("inference-efficient").variants), value="tied",
                                        description="variant", style=_WIDE)
        self.method = widgets.Dropdown(options=list(METHODS), value="paper", description="method", style=_WIDE)
        self.fit_set = widgets.Dropdown(description="fit set", style=_WIDE, layout=widgets.Layout(width="300px"))
        self.bootstrap = widgets.BoundedIntText(value=0, min=0, max=2000, step=10, description="bootstrap refits",
                                                style=_WIDE, layout=widgets.Layout(width="200px"))
        self.fit_button = widgets.Button(description="Fit", button_style="primary")
        self.residual_axis = widgets.Dropdown(description="residuals against", style=_WIDE)
        self.report = widgets.HTML()
        self.parameters = widgets.HTML()

        self.fit_set.options = self._fit_set_options(self.table)
        self.fit_set.value = "in_fit_B"
        self.residual_axis.options = self._axis_options(self.table)
        self.residual_axis.value = "aspect_ratio"
        result = self._run_fit(self.table, self.choices())
        self.figure = figure_widget_class()(figures.fit_diagnostics(result, x=self.residual_axis.value))
        self._show(result, draw=False)

        self.upload.observe(guarded(self.messages)(self._on_upload), names="value")
        self.source.observe(guarded(self.messages)(self._on_source), names="value")
        self.law.observe(guarded(self.messages)(self._on_law), names="value")
        self.residual_axis.observe(guarded(self.messages)(self._on_axis), names="value")
        self.fit_button.on_click(guarded(self.messages)(self._on_fit))

        super().__init__(children=[
            widgets.HTML(_UPLOAD_CSS),
            widgets.HBox([self.upload, self.source]),
            widgets.HBox([self.law, self.variant, self.method]),
            widgets.HBox([self.fit_set, self.bootstrap, self.fit_button]),
            self.messages,
            self.report,
            self.parameters,
            self.fit_warnings,
            self.residual_axis,
            self.figure,
        ])

    # -- state ---------------------------------------------------------------------------

    @property
    def table(self) -> pd.DataFrame:
        """Runs of the chosen source."""
        return self._tables[self.source.value][1]

    def choices(self) -> dict[str, Any]:
        """The fit the controls ask for: ``law``, ``variant``, ``method``, ``fit_set`` (None: all rows), ``bootstrap``."""
        return {
            "law": self.law.value,
            "variant": self.variant.value,
            "method": self.method.value,
            "fit_set": self.fit_set.value or None,
            "bootstrap": int(self.bootstrap.value),
        }

    @staticmethod
    def _fit_set_options(table: pd.DataFrame) -> list[tuple[str, str]]:
        flags = [(f"{column} ({count} rows)", column) for column, count in _flag_columns(table)]
        return [(f"all rows ({len(table)})", "")] + flags

    @staticmethod
    def _law_options(table: pd.DataFrame) -> list[str]:
        return list(LAW_FAMILIES) if "aspect_ratio" in table.columns else ["chinchilla"]

    @staticmethod
    def _axis_options(table: pd.DataFrame) -> list[tuple[str, str]]:
        options = [("aspect ratio R", "aspect_ratio")] if "aspect_ratio" in table.columns else []
        return options + [("parameters N", "N"), ("tokens D", "D"), ("tokens per parameter", "tokens_per_parameter"),
                          ("actual loss", "loss")]

    def _adapted(self, table: pd.DataFrame) -> dict[str, Any]:
        """The current choices, changed only where ``table`` cannot honour them."""
        choices = self.choices()
        if choices["law"] not in self._law_options(table):
            choices["law"], choices["variant"] = "chinchilla", "tied"
        if choices["variant"] not in law_class(choices["law"]).variants:
            choices["variant"] = "tied"
        if choices["fit_set"] not in {value for _, value in self._fit_set_options(table) if value}:
            choices["fit_set"] = None
        return choices

    @staticmethod
    def _run_fit(table: pd.DataFrame, choices: Mapping[str, Any]) -> FitResult:
        # Overflow inside a degenerate fit is reported by the fit's own warnings;
        # numpy's are noise here.
        with np.errstate(all="ignore"):
            return fit(table, choices["law"], choices["variant"], method=choices["method"],
                       fit_set=choices["fit_set"], bootstrap=choices["bootstrap"], seed=0)

    def _commit(self, key: str, choices: Mapping[str, Any], result: FitResult) -> None:
        """Make ``key``'s table, ``choices`` and ``result`` the app's state, controls included."""
        table = self._tables[key][1]
        self._syncing = True
        try:
            self.source.options = [(label, k) for k, (label, _) in self._tables.items()]
            self.source.value = key
            self.law.options = self._law_options(table)
            self.law.value = choices["law"]
            self.variant.options = list(law_class(choices["law"]).variants)
            self.variant.value = choices["variant"]
            self.fit_set.options = self._fit_set_options(table)
            self.fit_set.value = choices["fit_set"] or ""
            axis = self.residual_axis.value
            self.residual_axis.options = self._axis_options(table)
            values = [value for _, value in self.residual_axis.options]
            self.residual_axis.value = axis if axis in values else values[0]
        finally:
            self._syncing = False
        self._show(result)

    def _show(self, result: FitResult, draw: bool = True) -> None:
        self.result = result
        with np.errstate(all="ignore"):
            # An HTML widget sets a line height of a control's height (28 px): the report's own style keeps it at
            # single spacing, in the fixed-width font the lessons use.
            self.report.value = monospace(result.report())._repr_html_()
            self.parameters.value = _parameter_html(result)
            if draw:
                figures.fit_diagnostics(result, x=self.residual_axis.value, into=self.figure)
        self.fit_warnings.show_many(list(result.warnings), "warning")

    # -- callbacks -----------------------------------------------------------------------

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        files = change["new"]
        if not files:
            return  # the value was cleared after an upload
        before = self.choices()
        try:
            name, content = self._checked_upload(files)
            table = load_runs(content, name=name)
            choices = self._adapted(table)
            result = self._run_fit(table, choices)
        except MorphError as exc:
            # Remembered, so that Fit pressed next does not pass off the previous table's fit as this file's.
            self.failed_upload = str(exc)
            raise
        finally:
            self.upload.value = ()  # the same file may be chosen again after it is fixed
        self.failed_upload = None
        self._tables[self.UPLOAD] = (f"{name} ({len(table)} runs)", table)
        self._commit(self.UPLOAD, choices, result)
        notes = []
        if choices["law"] != before["law"]:
            notes.append(f"It gives no aspect ratio (aspect_ratio, or n_layers and d_model), so the {choices['law']} "
                         "law was fitted.")
        if before["fit_set"] and choices["fit_set"] is None:
            notes.append(f"It has no {before['fit_set']} column, so every row was fitted.")
        self.messages.show(" ".join([f"Loaded {name}: {len(table)} runs, {result.n_fit} of them fitted.", *notes]),
                           "info")

    def _checked_upload(self, files: Sequence[Mapping[str, Any]]) -> tuple[str, bytes]:
        if len(files) != 1:
            raise DataError(f"{len(files)} files were chosen; upload one .csv table of runs at a time")
        entry = files[0]
        name = PurePath(str(entry.get("name", "the upload"))).name
        content = bytes(entry["content"])
        if not name.lower().endswith(".csv"):
            raise DataError(f"{name} is not a .csv file; upload a CSV table of runs")
        if len(content) > self.max_bytes:
            raise DataError(
                f"{name} is {len(content) / 2**20:.1f} MB, over the {self.max_bytes / 2**20:.3g} MB limit for "
                f"uploads; fit it on the command line with `morph fit {name}`"
            )
        return name, content

    def _on_source(self, change: Mapping[str, Any]) -> None:
        if self._syncing:
            return
        try:
            choices = self._adapted(self.table)
            result = self._run_fit(self.table, choices)
        except MorphError:
            self._syncing = True
            try:
                self.source.value = change["old"]
            finally:
                self._syncing = False
            raise
        self.failed_upload = None  # a table was chosen on purpose
        self._commit(change["new"], choices, result)

    def _on_law(self, change: Mapping[str, Any]) -> None:
        if self._syncing:
            return
        variants = list(law_class(change["new"]).variants)
        current = self.variant.value
        self.variant.options = variants
        self.variant.value = current if current in variants else "tied"

    def _on_axis(self, change: Mapping[str, Any]) -> None:
        if self._syncing or change["new"] is None:
            return
        with np.errstate(all="ignore"):
            figures.fit_diagnostics(self.result, x=change["new"], into=self.figure)

    def _on_fit(self, _button: widgets.Button) -> None:
        self.fit_button.disabled, self.fit_button.description = True, "Fitting..."
        try:
            result = self._run_fit(self.table, self.choices())
        finally:
            self.fit_button.disabled, self.fit_button.description = False, "Fit"
        self._show(result)
        if self.failed_upload is not None:
            label = self._tables[self.source.value][0]
            self.messages.show(f"Fitted {label}, not the last upload, which was not loaded: {self.failed_upload}",
                               "warning")
