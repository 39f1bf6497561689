"""The live dashboard: pick a model shape under a latency budget, in the browser.

A thin layer of widgets over :mod:`morph.frontier`: every number on screen
comes from :func:`~morph.frontier.evaluate_candidates`,
:func:`~morph.frontier.select` and the scaling laws; this module only decides
what to recompute when a control moves, and how to draw it.

Three pieces:

- :class:`~morph.app.settings.DashboardSettings` (in :mod:`morph.app.settings`):
  every input as a plain, frozen dataclass, with a query-string form so a view
  can be shared as a link;
- :class:`Dashboard` (here): the controls, one plotly ``FigureWidget`` holding the
  frontier and the aspect-ratio views, the ranked table and a share bar;
- :class:`~morph.app.sharebar.ShareBar` (in :mod:`morph.app.sharebar`): a small
  anywidget that keeps the browser's address in step with the controls, copies
  the link and offers the CSV downloads.

How it reads at every size lives next door: the page layout and the figure's
geometry in :mod:`morph.app.layout`, label placement in :mod:`morph.app.labels`,
numbers for people in :mod:`morph.app.readouts`, the guided tour in
:mod:`morph.app.tour`.

Under Voila the page's query string reaches the kernel as the
``QUERY_STRING`` environment variable; :meth:`Dashboard.from_query` reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .kernel import left_out, page_query


# plotly's FigureWidget imports nbformat, hence jsonschema, whose optional IRI
# format checker (rfc3987_syntax) compiles 38 grammars on import: 1.6 s of a
# cold dashboard start on a 2-core machine, for a check no dashboard makes.
# Leave it out while plotly loads (jsonschema treats it as not installed).
with left_out("rfc3987_syntax"):
    from .bundle import figure_widget_class

    FigureWidget = figure_widget_class()

from ..data import load_candidates
from ..errors import MorphError, SelectionError
from ..fitcache import cached_fit
from ..fitting import FitResult
from ..decision import BOOTSTRAP, Assessment, compute_optima
from ..latency.serving import SERVING_METRICS
from ..frontier import (
    Candidates,
    Evaluation,
    Selection,
    candidates_from_flops,
    candidates_from_range,
    candidates_from_table,
    evaluate_candidates,
    resolve_law,
    select,
)
from .dashboard_parts import run_traces, supported_precision, thin_points
from .dashboard_text import price_of_speed_html, reading_notes_html, selection_table_html, validity_notes_html
from .decision_view import (
    ACCENT,
    budget_line,
    budget_rule,
    candidates_trace,
    frontier_trace,
    selected_trace,
    decision_assessment,
    fit_range_shading,
    infeasible_points,
    infeasible_trace,
    optima_points,
    optima_trace,
    published_points,
    published_trace,
    selected_bars,
)
from .figures import si_format
from .labels import label_size, place_caption, place_labels
from .layout import DASHBOARD_CSS, HOW_TO_READ, FigureGeometry, WidthProbe, figure_geometry, linear_range, log_range
from .readouts import readout_box, round_outward, round_significant
from .settings import (
    FIT_B,
    MODES,
    NUMBER_SETTINGS,
    DashboardSettings,
    clamp_fields,
    setting_choices,
    settings_from_query,
)
from .sharebar import ShareBar
from .tour import tour_html
from .ui import MessageBar, guarded, quiet

__all__ = ["Dashboard", "supported_precision", "thin_points"]


# --- the dashboard ---------------------------------------------------------------------------

# The figure's traces, addressed by name (:func:`trace`), never by position. Left plot:
# CLOUD, FRONTIER, SELECTED, INFEASIBLE, OPTIMA and PUBLISHED (the published models sit on a
# strip of their own, axis y3, apart from the loss dots they would hide); right plot:
# LAW_CURVE, ASPECT_SELECTED and the runs, RUN_LINES and RUNS (which never change).
CLOUD, FRONTIER, SELECTED = candidates_trace().name, frontier_trace().name, selected_trace().name
PUBLISHED, INFEASIBLE, OPTIMA = published_trace().name, infeasible_trace().name, optima_trace().name
LAW_CURVE, ASPECT_SELECTED = "law at the top pick's N and D", "selected (on the law)"
RUN_LINES, RUNS = (t.name for t in run_traces())


def trace(fig: Any, name: str) -> Any:
    """The figure's trace called ``name`` (one of the names above)."""
    for candidate in fig.data:
        if candidate.name == name:
            return candidate
    raise KeyError(name)
_TITLES = ("Loss against latency", "Loss against aspect ratio R")
MAX_LABELS = 8
"""At most this many selected shapes are named on the plot (all of them are in the table)."""


_BUDGET_LABELS = {
    "latency_s": "Latency budget (s)",
    "ttft_s": "Time to first token, at most (s)",
    "ms_per_token": "Time per output token, at most (ms)",
    "tokens_per_s": "Throughput, at least (tokens/s)",
    "cost_per_million_tokens": "Cost per 1M generated tokens, at most",
}


@dataclass(frozen=True)
class _Result:
    """One consistent set of computed views: what a redraw needs."""

    settings: DashboardSettings
    evaluation: Evaluation
    selection: Selection
    evaluation_key: tuple
    law: Any
    assessment: Assessment
    optima: dict[str, Any] | None = None


class Dashboard:
    """Choose a model shape under a latency budget: controls, live views and a shareable state.

    Parameters
    ----------
    settings : DashboardSettings, optional
        Initial settings (defaults: the paper's choice of Morph-1B). Values
        out of range are clamped and reported in the message bar.
    bootstrap : int
        Bootstrap refits for the fit-set-B law (its loss band).
    max_cloud_points : int
        At most about this many candidates are drawn as the faint cloud
        (the frontier and the selection always use every candidate).
    sync_url : bool
        Keep the browser's address in step with the controls (Voila pages).
    notes : sequence of str
        Warnings to show at start (e.g. what a link's query string could not set).

    Attributes
    ----------
    settings : DashboardSettings
        The controls' current values.
    evaluation, selection : Evaluation, Selection or None
        The last successful computation (what the views show).
    controls : dict of str to Widget
        One control per setting, by field name.
    figure : plotly.graph_objects.FigureWidget
        Frontier (left) and loss against aspect ratio (right).
    table, price, notes_html : ipywidgets.HTML
        Ranked selection, the price-of-speed sentence, figure notes.
    messages : MessageBar
    share : ShareBar
    probe : WidthProbe
        Reports the figure box's width from the page; the figure follows it.
    geometry : FigureGeometry
        The figure's current size and subplot placement (:func:`~morph.app.layout.figure_geometry`).
    widget : ipywidgets.VBox
        The whole dashboard, to display.
    """

    def __init__(
        self,
        settings: DashboardSettings | None = None,
        *,
        bootstrap: int = BOOTSTRAP,
        max_cloud_points: int = 2000,
        sync_url: bool = False,
        notes: Sequence[str] = (),
    ) -> None:
        self.bootstrap = int(bootstrap)
        self.max_cloud_points = int(max_cloud_points)
        settings, adjusted = (settings or DashboardSettings()).normalized()
        settings, note = supported_precision(settings)
        adjusted = adjusted + ([note] if note else [])
        self.settings = settings
        self.evaluation: Evaluation | None = None
        self.selection: Selection | None = None
        self._fit_b: FitResult | None = None
        self._pools: dict[tuple, Candidates] = {}
        self._result: _Result | None = None
        self._curve_key: tuple | None = None
        self.messages = MessageBar()
        self.geometry: FigureGeometry = figure_geometry(None)
        self.probe = WidthProbe()
        self.controls = self._build_controls(settings)
        # One FigureWidget holds both views as subplots: each FigureWidget sends
        # its own ~5 MB of plotly.js to the page, and a second one made the cold
        # load 1.9 s slower here (medians 7.42 s against 5.50 s over 5 loads on
        # 2 cores; benchmarks/bench_dashboard.py --compare-layouts, README there).
        # A FigureWidget drops changes made before its view renders, so the
        # first result is computed before the figure and built into it.
        first, error = self._try_compute(settings)
        self.figure = FigureWidget(self._initial_figure(first))
        self.table = widgets.HTML()
        self.price = widgets.HTML()
        self.notes_html = widgets.HTML()
        self._reading_notes = ""  # the notes that follow only the evaluation (set in _commit)
        self.share = ShareBar(query=settings.to_query(), sync_url=sync_url)
        self.table.add_class("morph-table")
        self.price.add_class("morph-price")
        if first is not None:
            self._commit(first, draw_figure=False)
        warnings = [*notes, *adjusted]
        if error:
            self.messages.show_many([error, *warnings], "error")
        elif warnings:
            self.messages.show_many(warnings, "warning")
        self._toggle_budget_controls(settings.mode)
        self._on_control = guarded(self.messages)(self._apply_controls)
        for control in self.controls.values():
            control.observe(self._on_control, names="value")
        self.probe.observe(guarded(self.messages)(self._on_width), names="width")
        self.widget = self._layout()

    @classmethod
    def from_query(cls, query: str | None = None, **options: Any) -> "Dashboard":
        """A dashboard set from a URL query string (under Voila: the page's own).

        Parameters
        ----------
        query : str, optional
            Defaults to the page's query string under Voila: the
            ``QUERY_STRING`` environment variable of the page's kernel, or, in
            a kernel Voila started ahead of the request (``--preheat_kernel``),
            the request's query string once it arrives. When there is one the
            browser's address is kept in step with the controls.
        **options
            Passed to :class:`Dashboard`.
        """
        if query is None:
            query = page_query(cls)
            options.setdefault("sync_url", query is not None)
        settings, notes = settings_from_query(query)
        return cls(settings, notes=notes, **options)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- controls -------------------------------------------------------------------------

    def _build_controls(self, s: DashboardSettings) -> dict[str, widgets.Widget]:
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
            "latency_budget_s": _budget_slider(log_slider("latency_budget_s", ""), s.budget_metric),
            "budget_metric": dropdown("budget_metric", "Budget on"),
            "price_per_gpu_hour": log_slider("price_per_gpu_hour", "Price per GPU-hour (1: cost in GPU-hours)"),
            "top_k": widgets.IntSlider(
                value=s.top_k, min=1, max=int(NUMBER_SETTINGS["top_k"].high), description="Shapes to keep (top k)",
                continuous_update=True, style=style, layout=layout,
            ),
        }

    def _read_controls(self) -> DashboardSettings:
        """The controls' values, clamped exactly as a link's values are (:func:`~morph.app.settings.clamp_fields`).

        The page is a client like any other: it may send a value outside a
        slider's range (after widening the range itself) or a choice no
        dropdown offers. Such a value is clamped, and the control is put back
        to its bounds and the clamped value.
        """
        values = {name: control.value for name, control in self.controls.items()}
        for name in ("params_min", "params_max", "tokens", "flops", "latency_budget_s", "price_per_gpu_hour"):
            # A moved log slider sits on 10**(k/100), e.g. 2.5118864315095797 s: keep the
            # three digits a person reads (the link then says latency=2.51). Values not
            # moved keep every digit (the paper's 28,991,029,248 tokens stay exact).
            value = values[name]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value != getattr(self.settings, name):
                values[name] = round_significant(float(value))
        values, notes = clamp_fields(DashboardSettings(**values))
        if notes:
            self._restore_controls(values)
        return DashboardSettings(**values)

    def _restore_controls(self, values: dict[str, Any]) -> None:
        """Put the controls back to their own bounds and to ``values``, without a redraw each."""
        with quiet(self.controls.values(), self._on_control):
            for name, control in self.controls.items():
                spec = NUMBER_SETTINGS.get(name)
                if name == "latency_budget_s":
                    _budget_slider(control, values["budget_metric"])
                elif spec is not None and not spec.ladder:
                    low, high = (spec.low, spec.high) if spec.integer else (math.log10(spec.low), math.log10(spec.high))
                    control.min, control.max = type(control.min)(low), type(control.max)(high)
                if control.value != values[name]:
                    control.value = values[name]

    def _toggle_budget_controls(self, mode: str) -> None:
        # Range mode fixes the tokens; compute mode derives them from the FLOPs.
        self.controls["tokens"].disabled = mode != "range"
        self.controls["flops"].disabled = mode != "compute"
        # Compute mode centres every-shape candidates on the law's compute-optimal size.
        centred = mode == "compute" and self.controls["shapes"].value == "grid"
        self.controls["params_min"].disabled = self.controls["params_max"].disabled = centred
        self.controls["price_per_gpu_hour"].disabled = self.controls["budget_metric"].value != "cost_per_million_tokens"

    def _retarget_budget(self, metric: str) -> None:
        """A new budget metric: its range, and a budget the current top pick just meets (it stays first).

        Call with the slider unobserved: moving it is part of this change, not one of its own.
        """
        slider = self.controls["latency_budget_s"]
        value = slider.value
        if self.selection is not None:
            top = int(self.selection.selected_index[0])
            price = float(self.controls["price_per_gpu_hour"].value)
            value = round_outward(float(self.evaluation.metric(metric, price)[top]),
                                  up=not SERVING_METRICS[metric].higher_is_better)
        low, high = SERVING_METRICS[metric].budget_range
        _budget_slider(slider, metric)
        slider.value = min(max(value, low), high)

    def _apply_controls(self, change: Any = None) -> None:
        if change is not None and change.get("owner") is self.controls["budget_metric"]:
            with quiet([self.controls["latency_budget_s"]], self._on_control):
                self._retarget_budget(change["new"])
        settings, note = supported_precision(self._read_controls())
        if note:
            # Move the control too, so the page shows the precision in use.
            with quiet([self.controls["dtype"]], self._on_control):
                self.controls["dtype"].value = settings.dtype
        self.settings = settings
        self.share.query = settings.to_query()
        self._toggle_budget_controls(settings.mode)
        result = self._compute(settings)
        self._commit(result, draw_figure=True)
        if note:
            self.messages.show(note, "info")

    def set_controls(self, **changes: Any) -> None:
        """Move several controls at once, as a user would, then update once.

        E.g. ``set_controls(hardware="h100-sxm", latency_budget_s=1.0)``.
        Errors land in the message bar, exactly as from the page.
        """
        unknown = set(changes) - set(self.controls)
        if unknown:
            raise MorphError(f"unknown setting(s) {', '.join(sorted(unknown))}; choose from {', '.join(self.controls)}")
        with quiet(self.controls.values(), self._on_control):
            for name, value in changes.items():
                if name != "latency_budget_s":
                    self.controls[name].value = value
            if changes.get("budget_metric", self.settings.budget_metric) != self.settings.budget_metric:
                self._retarget_budget(changes["budget_metric"])  # as from the page; a budget given wins
            if "latency_budget_s" in changes:
                self.controls["latency_budget_s"].value = changes["latency_budget_s"]
        self._on_control()

    # -- computation (pure package calls) -------------------------------------------------

    def _law(self, settings: DashboardSettings) -> Any:
        if settings.law != FIT_B:
            return settings.law
        if self._fit_b is None:
            self.messages.show(
                f"Fitting the inference-efficient law on the paper's 27 runs (fit set B) with {self.bootstrap} "
                "bootstrap refits for the loss band...",
                "info",
            )
            # Stored after the first kernel fits it (morph serve fits it before the first page).
            self._fit_b = cached_fit(fit_set="in_fit_B", bootstrap=self.bootstrap)
            if self.messages.level == "info":
                self.messages.clear()
        return self._fit_b

    def _pool(self, settings: DashboardSettings) -> Candidates:
        """Candidate shapes in the parameter range (tokens set later); cached per range."""
        if settings.mode == "compute" and settings.shapes == "grid":
            return Candidates.from_arrays(np.array([1]), np.array([64]), 1.0)  # unused: centred on the optimum
        if settings.params_min > settings.params_max:
            raise SelectionError(
                f"the smallest model ({settings.params_min:.3g} parameters) is larger than the largest "
                f"({settings.params_max:.3g}); the parameter range must run from small to large"
            )
        key = (settings.shapes, settings.params_min, settings.params_max)
        if key not in self._pools:
            if settings.shapes == "paper":
                table = candidates_from_table(load_candidates(), tokens=1.0)
                inside = (table.N >= settings.params_min) & (table.N <= settings.params_max)
                if not inside.any():
                    raise SelectionError(
                        f"none of the paper's 15 candidates has between {settings.params_min:.3g} and "
                        f"{settings.params_max:.3g} parameters (they span {table.N.min():.3g}-{table.N.max():.3g}); "
                        "widen the range or choose every shape"
                    )
                pool = table.take(np.flatnonzero(inside))
            else:
                pool = candidates_from_range(settings.params_min, settings.params_max, 1.0)
            self._pools = {key: pool}  # one range at a time: the last one is what a slider returns to
        return self._pools[key]

    def _compute(self, settings: DashboardSettings) -> _Result:
        law = self._law(settings)
        pool = self._pool(settings)
        centred = settings.mode == "compute" and settings.shapes == "grid"
        key = (
            settings.mode, settings.shapes, settings.params_min, settings.params_max,
            settings.tokens if settings.mode == "range" else settings.flops, settings.law, settings.hardware,
            settings.calibration, settings.stack, settings.batch, settings.input_tokens, settings.output_tokens,
            settings.dtype,
        )
        if self._result is not None and self._result.evaluation_key == key:
            evaluation = self._result.evaluation  # only the target or top k moved: re-rank, nothing else
        else:
            if centred:  # a factor of 8 either side of the law's compute-optimal N
                candidates = candidates_from_flops(settings.flops, law=law)
            elif settings.mode == "range":
                candidates = pool.with_tokens(settings.tokens)
            else:
                candidates = pool.with_training_flops(settings.flops)
            evaluation = evaluate_candidates(candidates, law, workload=settings.workload)
        selection = select(evaluation, settings.latency_budget_s, settings.top_k, budget_metric=settings.budget_metric,
                           price_per_gpu_hour=settings.price_per_gpu_hour)
        assessment = decision_assessment(selection, law, settings.law, self.bootstrap)
        optima = compute_optima(selection, settings.flops, resolve_law(law)[0]) if settings.mode == "compute" else None
        return _Result(settings, evaluation, selection, key, law, assessment, optima)

    def _try_compute(self, settings: DashboardSettings) -> tuple[_Result | None, str | None]:
        try:
            return self._compute(settings), None
        except MorphError as exc:
            return None, str(exc)

    # -- drawing ---------------------------------------------------------------------------

    def _commit(self, result: _Result, draw_figure: bool) -> None:
        previous = self._result
        self._result, self.evaluation, self.selection = result, result.evaluation, result.selection
        evaluation_changed = previous is None or previous.evaluation is not result.evaluation
        if draw_figure:
            with self.figure.batch_update():
                if evaluation_changed:
                    self._draw_evaluation(result)
                self._draw_selection(result)
        self.table.value = selection_table_html(result)
        if evaluation_changed:
            self.price.value = price_of_speed_html(result)
            self._reading_notes = reading_notes_html(result, self.max_cloud_points)
        # The assessment's sentences follow the budget too (the best shape, whether it hangs on a prior);
        # the reading notes follow only the evaluation and are kept from its last change.
        self.notes_html.value = validity_notes_html(result) + self._reading_notes
        # Both downloads name the settings that produced them, the budget included.
        self.share.frontier_csv = self.frontier_csv()
        self.share.selection_csv = self.selection_csv()

    def _initial_figure(self, result: _Result | None) -> go.Figure:
        fig = make_subplots(rows=1, cols=2)
        fig.add_trace(candidates_trace(), row=1, col=1)
        fig.add_trace(frontier_trace(), row=1, col=1)
        # Named by annotations placed without overlaps (_label_annotations), not by trace text.
        fig.add_trace(selected_trace(), row=1, col=1)
        published = published_trace()  # on its own axis y3: measured numbers, not on the loss axis
        published.mode = "markers"  # its names are placed with the other labels
        fig.add_trace(published)
        fig.add_trace(go.Scatter(name=LAW_CURVE, mode="lines", line=dict(color="black", width=2),
                                 hovertemplate="R %{x:.0f}<br>predicted loss %{y:.4f} nats/token<extra></extra>"),
                      row=1, col=2)
        fig.add_trace(go.Scatter(name=ASPECT_SELECTED, mode="markers", showlegend=False,
                                 marker=dict(size=11, color=ACCENT, symbol="circle-open", line=dict(width=2)),
                                 hovertemplate="%{text}<br>R %{x:.0f}<br>predicted loss %{y:.4f} nats/token"
                                               "<extra></extra>"),
                      row=1, col=2)
        for trace in run_traces():
            fig.add_trace(trace, row=1, col=2)
        fig.add_trace(infeasible_trace(), row=1, col=1)
        fig.add_trace(optima_trace(), row=1, col=1)
        fig.update_xaxes(type="log", title_text="predicted latency of one call (s)", row=1, col=1)
        fig.update_yaxes(title_text="predicted loss (nats/token)", row=1, col=1)
        fig.update_xaxes(type="log", title_text="aspect ratio R = d_model / n_layers", row=1, col=2)
        fig.update_yaxes(title_text="training loss (nats/token)", row=1, col=2)
        # The symbols are explained in the "how to read this" text beside the plot: a plotly
        # legend wraps unpredictably on a narrow screen and then covers the axis titles.
        fig.update_layout(
            yaxis3=dict(overlaying="y", anchor="x", range=[0, 1], visible=False, fixedrange=True),
            template="plotly_white", showlegend=False, font=dict(size=12),
            shapes=[budget_line()],
            uirevision="keep",  # keep the user's zoom across updates
        )
        self._apply_geometry(fig)
        if result is not None:
            self._draw_evaluation(result, fig)
            self._draw_selection(result, fig)
        return fig

    def _apply_geometry(self, fig: Any) -> None:
        """Size, subplot domains, titles and colour bar for the current :attr:`geometry`."""
        g = self.geometry
        fig.update_layout(g.layout())
        trace(fig, RUNS).marker.colorbar.update(g.colorbar())
        fig.layout.annotations = g.titles(*_TITLES)  # the labels follow in _draw_selection

    def _on_width(self, change: Any) -> None:
        """The figure's box changed width: lay the plots out again and re-place the labels."""
        geometry = figure_geometry(int(change["new"]))
        if geometry == self.geometry:
            return
        self.geometry = geometry
        with self.figure.batch_update():
            self._apply_geometry(self.figure)
            if self._result is not None:
                self._draw_selection(self._result)

    def _draw_evaluation(self, result: _Result, fig: Any = None) -> None:
        """Views that change with the evaluation: cloud, frontier, published models."""
        fig = self.figure if fig is None else fig
        ev, sel = result.evaluation, result.selection
        shown = thin_points(ev.latency_s, ev.loss, self.max_cloud_points)
        cloud, frontier, published = trace(fig, CLOUD), trace(fig, FRONTIER), trace(fig, PUBLISHED)
        cloud.update(x=ev.latency_s[shown], y=ev.loss[shown], text=ev.candidates.labels(shown).tolist())
        f = sel.frontier_index
        frontier.update(x=ev.latency_s[f], y=ev.loss[f], text=ev.candidates.labels(f).tolist())
        published.update(**published_points(result.settings.workload, result.settings.mode))
        trace(fig, INFEASIBLE).update(**infeasible_points(sel, result.assessment))
        budget_line = fig.layout.shapes[0]
        fig.layout.shapes = [budget_line, *fit_range_shading(result.assessment.runs)]

    def _draw_selection(self, result: _Result, fig: Any = None) -> None:
        """Views that change with the latency budget and top k (and the labels, which depend on both)."""
        fig = self.figure if fig is None else fig
        ev, sel = result.evaluation, result.selection
        i = sel.selected_index
        labels = [f"{r}: {L}x{d}" for r, L, d in zip(sel.selected["rank"], sel.selected["n_layers"], sel.selected["d_model"])]
        trace(fig, SELECTED).update(x=ev.latency_s[i], y=ev.loss[i], text=labels, **selected_bars(sel, result.assessment))
        trace(fig, OPTIMA).update(**optima_points(sel, result.optima))
        rule = budget_rule(sel)
        if rule is not None:
            fig.layout.shapes[0].update(x0=rule[0], x1=rule[0])
        fig.layout.shapes[0].visible = rule is not None
        # Explicit ranges: the labels are placed in pixels, which needs the axes' extent.
        published = trace(fig, PUBLISHED)
        xs = [float(ev.latency_s.min()), float(ev.latency_s.max()), *(rule[:1] if rule else ()), *(published.x or ())]
        low, high = linear_range([float(ev.loss.min()), float(ev.loss.max())], pad=0.12)
        # The published models' strip takes the top tenth of the plot: keep the loss dots below it.
        y_range = (low, high + 0.15 * (high - low)) if published.visible else (low, high)
        x_range = log_range(xs)
        fig.layout.xaxis.range, fig.layout.yaxis.range = x_range, y_range
        # Beyond a few, labels crowd the plot: the best MAX_LABELS are named, the table lists the rest.
        points = [(float(ev.latency_s[j]), float(ev.loss[j]), text, "y") for j, text in zip(i[:MAX_LABELS], labels)]
        if published.visible:
            points += [(x, y, text, "y3") for x, y, text in zip(published.x, published.y, published.text)]
        # Built whole from the geometry: inside a batch_update the figure still reads its old annotations.
        fig.layout.annotations = [
            *self.geometry.titles(*_TITLES),
            *self._label_annotations(points, min(len(labels), MAX_LABELS), rule, x_range, y_range),
        ]
        # The law's curve over R at the top pick's N and D: the shape factor in isolation.
        top = int(i[0])
        N, D = float(ev.candidates.N[top]), float(ev.candidates.D[top])
        if self._curve_key != (N, D, result.evaluation_key):  # sent (and redrawn) only when it moves
            self._curve_key = (N, D, result.evaluation_key)
            R = np.geomspace(8.0, 4096.0, 160)
            law = resolve_law(result.law)[0]
            # The name stays (it is how the trace is found); the hover says at which N and D.
            trace(fig, LAW_CURVE).update(
                x=R, y=law.predict(np.full_like(R, N), np.full_like(R, D), R),
                hovertemplate=f"law at N = {si_format(N)}, D = {si_format(D)} (the top pick's)<br>"
                              "R %{x:.0f}<br>predicted loss %{y:.4f} nats/token<extra></extra>")
        trace(fig, ASPECT_SELECTED).update(x=ev.candidates.aspect_ratio[i], y=ev.loss[i], text=labels)

    def _label_annotations(
        self, points: list[tuple[float, float, str, str]], n_selected: int, rule: tuple[float, str] | None,
        x_range: tuple, y_range: tuple,
    ) -> list[dict[str, Any]]:
        """The budget's caption, then a label per point (selected shapes by rank, then published models).

        ``rule`` is the budget line's latency and caption (:func:`_budget_rule`), if it has one.

        Each point is ``(latency, y, text, axis)``: ``axis`` ``"y"`` (loss) or ``"y3"`` (the
        published models' strip, 0 at the bottom of the plot and 1 at its top).

        Placed in pixels of the left plot (:func:`~morph.app.labels.place_labels`), best rank
        first; a label with no free spot is left out (the table and the hover still name it).
        """
        width, height = self.geometry.plot_area()
        def to_px(x: float, y: float, axis: str = "y") -> tuple[float, float]:
            fraction = (y - y_range[0]) / (y_range[1] - y_range[0]) if axis == "y" else y
            return (math.log10(x) - x_range[0]) / (x_range[1] - x_range[0]) * width, (1.0 - fraction) * height

        annotations: list[dict[str, Any]] = []
        obstacles = []
        px = np.array([to_px(x, y, axis) for x, y, _, axis in points]).reshape(-1, 2)
        if rule is not None:
            # Beside the line, clear of every marker (the published models' diamonds sit at the top).
            marker = 9.0
            markers = [(x - marker, y - marker, x + marker, y + marker) for x, y in px]
            (budget, caption) = rule
            box, right_side = place_caption(to_px(budget, y_range[1])[0], label_size(caption), (width, height), markers)
            obstacles.append(box)
            annotations.append(dict(
                xref="x", yref="y domain", x=math.log10(budget), y=1, text=caption, showarrow=False,
                xanchor="left" if right_side else "right", yanchor="top", xshift=3 if right_side else -3,
                yshift=-float(box[1]), font=dict(color=ACCENT, size=11), name="budget"))
        if not points:
            return annotations
        texts = [t for _, _, t, _ in points]
        placement = place_labels(px[:, 0], px[:, 1], [label_size(t) for t in texts], (width, height),
                                 obstacles=obstacles)
        for k in np.flatnonzero(placement.placed):
            x, y, text, axis = points[k]
            annotations.append(dict(
                xref="x", yref=axis, x=math.log10(x), y=y, text=text, showarrow=True, arrowhead=0, arrowwidth=1,
                arrowcolor="#888", axref="pixel", ayref="pixel",
                ax=float(placement.x[k] - px[k, 0]), ay=float(placement.y[k] - px[k, 1]),
                font=dict(size=11, color=ACCENT if k < n_selected else "#2ca02c"),
                bgcolor="rgba(255,255,255,0.85)", borderpad=1, name="label",
            ))
        return annotations

    # -- exports ---------------------------------------------------------------------------

    def frontier_csv(self) -> str:
        """The current Pareto frontier (fastest first) as CSV text; empty before a first result.

        The table follows ``# key: value`` lines naming the settings that produced it
        (read them back with :func:`morph.data.split_provenance`).
        """
        return "" if self.selection is None else self._provenance() + self.selection.frontier.to_csv(index=False)

    def selection_csv(self) -> str:
        """The current selection (best first) as CSV text, after its settings; empty before a first result."""
        return "" if self.selection is None else self._provenance() + self.selection.selected.to_csv(index=False)

    def _provenance(self) -> str:
        s = self._result.settings if self._result is not None else self.settings
        w = s.workload
        lines = {
            "source": "Morph dashboard",
            "settings": s.to_query() or "the defaults (the paper's choice of Morph-1B)",
            "law": s.law_label,
            "latency_budget_s": f"{s.latency_budget_s:g}",
            "budget_metric": s.budget_metric,
            "workload": f"{setting_choices()['hardware'][s.hardware]}, {w.dtype}, batch {w.batch}, {w.input_tokens} prompt tokens, "
                        f"{w.output_tokens} output tokens",
        }
        # One line each; a newline in a value would end the header early.
        return "".join(f"# {key}: {' '.join(str(value).split())}\n" for key, value in lines.items())

    # -- layout ----------------------------------------------------------------------------

    def _layout(self) -> widgets.VBox:
        c = self.controls

        def group(names: Sequence[str]) -> widgets.VBox:
            readouts = {"params_min": "parameters", "params_max": "parameters", "tokens": "tokens", "flops": "FLOPs"}
            return widgets.VBox([readout_box(c[n], readouts[n]) if n in readouts else c[n] for n in names])

        # Essentials first (on a phone they come before the plot); the rest folded away.
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
        controls = widgets.VBox([widgets.HTML("<b>Choose</b>"), essentials, advanced])
        controls.add_class("morph-controls")
        figure_box = widgets.Box([self.figure])
        figure_box.add_class("morph-figure-box")
        guide = widgets.HTML(HOW_TO_READ + tour_html(links=self.share.sync_url))
        main = widgets.VBox([guide, figure_box, self.notes_html, self.price, self.table, self.share])
        main.add_class("morph-main")
        columns = widgets.HBox([controls, main])
        columns.add_class("morph-columns")
        # The page's layout follows the width of this box (a CSS container query,
        # morph.app.layout): the same in a Voila page and in a JupyterLab cell.
        body = widgets.Box([columns])
        body.add_class("morph-body")
        root = widgets.VBox([widgets.HTML(DASHBOARD_CSS), self.messages, body, self.probe])
        root.add_class("morph-dashboard")
        return root


def _budget_slider(slider: widgets.FloatLogSlider, metric: str) -> widgets.FloatLogSlider:
    """Give the budget slider the metric's range and name (call with the slider unobserved)."""
    low, high = SERVING_METRICS[metric].budget_range
    slider.min, slider.max = math.log10(low), math.log10(high)
    slider.description = _BUDGET_LABELS[metric]
    return slider
