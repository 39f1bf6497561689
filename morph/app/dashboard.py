"""The live dashboard: pick a model shape under a latency budget, in the browser.

A thin layer of widgets over :mod:`morph.frontier`: every number on screen
comes from :func:`~morph.frontier.evaluate_candidates`,
:func:`~morph.frontier.select` and the scaling laws; this module only decides
what to recompute when a control moves, and how to draw it.

Three pieces, composed here by :class:`Dashboard`:

- :class:`~morph.app.dashboard_controls.DashboardControls` (in
  :mod:`morph.app.dashboard_controls`): one widget per setting, read back through
  the same gate as a link's values, moved quietly when a change moves them;
- :class:`~morph.app.dashboard_compute.DashboardComputation` (in
  :mod:`morph.app.dashboard_compute`): settings to one consistent result, with its
  caches and the CSV exports' provenance, and no widget;
- :class:`~morph.app.dashboard_view.DashboardView` (in :mod:`morph.app.dashboard_view`):
  one plotly ``FigureWidget`` holding the frontier and the aspect-ratio views, the
  notes and the ranked table.

The settings are a :class:`~morph.app.settings.DashboardSettings` (in
:mod:`morph.app.settings`): every input as a plain, frozen dataclass, with a
query-string form so a view can be shared as a link; the
:class:`~morph.app.sharebar.ShareBar` (in :mod:`morph.app.sharebar`) keeps the
browser's address in step with the controls, copies the link and offers the CSV
downloads.

How it reads at every size lives next door: the page layout and the figure's
geometry in :mod:`morph.app.layout`, label placement in :mod:`morph.app.labels`,
numbers for people in :mod:`morph.app.readouts`, the guided tour in
:mod:`morph.app.tour`.

Under Voila the page's query string reaches the kernel as the
``QUERY_STRING`` environment variable; :meth:`Dashboard.from_query` reads it.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import ipywidgets as widgets

from .kernel import ReadyBuild, quick_plotly, ready_for_page

quick_plotly()  # before anything loads plotly's renderers: lean in a served kernel

from ..decision import BOOTSTRAP  # noqa: E402
from ..fitting import FitResult
from ..frontier import Evaluation, Selection
from . import dashboard_compute as compute
from .bundle import figure_widget_class
from .dashboard_compute import DashboardComputation, Result
from .dashboard_controls import DashboardControls
from .dashboard_parts import supported_precision, thin_points
from .dashboard_view import (  # noqa: F401 (the trace names are part of this module's API)
    ASPECT_SELECTED, CLOUD, FRONTIER, INFEASIBLE, LAW_CURVE, MAX_LABELS, OPTIMA, PUBLISHED, RUN_LINES, RUNS, SELECTED,
    DashboardView, trace,
)
from .layout import DASHBOARD_CSS, HOW_TO_READ, FigureGeometry, WidthProbe
from .settings import DashboardSettings, settings_from_query
from .sharebar import ShareBar
from .tour import tour_html
from .ui import MessageBar, guarded

FigureWidget = figure_widget_class()

__all__ = [
    "Dashboard", "supported_precision", "thin_points", "trace", "MAX_LABELS",
    "CLOUD", "FRONTIER", "SELECTED", "PUBLISHED", "INFEASIBLE", "OPTIMA", "LAW_CURVE", "ASPECT_SELECTED",
    "RUN_LINES", "RUNS",
]


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
    result : Result or None
        What the views show: settings, evaluation, selection, assessment, optima.
    fit_b : FitResult or None
        The fit-set-B law, once a setting asked for it.
    inputs : DashboardControls
        The controls with their observer (``controls`` is its dict of widgets).
    computation : DashboardComputation
        Settings to results, with the caches.
    view : DashboardView
        Draws a result into the figure, the notes and the table.
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
        self.messages = MessageBar()
        self.computation = DashboardComputation(self.bootstrap, on_fit=self._fitting)
        self.probe = WidthProbe()
        self.inputs = DashboardControls(settings)
        self.controls = self.inputs.widgets
        # One FigureWidget holds both views as subplots: each FigureWidget sends
        # its own ~5 MB of plotly.js to the page, and a second one made the cold
        # load 1.9 s slower here (medians 7.42 s against 5.50 s over 5 loads on
        # 2 cores; benchmarks/bench_dashboard.py --compare-layouts, README there).
        # A FigureWidget drops changes made before its view renders, so the
        # first result is computed before the figure and built into it.
        first, error = self.computation.try_compute(settings)
        self.view = DashboardView(FigureWidget, first, self.max_cloud_points)
        self.figure, self.table, self.price, self.notes_html = (
            self.view.figure, self.view.table, self.view.price, self.view.notes_html)
        self.share = ShareBar(query=settings.to_query(), sync_url=sync_url, tables=self.table_csv)
        if first is not None:
            self._commit(first, draw_figure=False)
        warnings = [*notes, *adjusted]
        if error:
            self.messages.show_many([error, *warnings], "error")
        elif warnings:
            self.messages.show_many(warnings, "warning")
        self.inputs.toggle(settings.mode)
        self.inputs.observe(guarded(self.messages)(self._apply_controls))
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
            browser's address is kept in step with the controls. Such a kernel
            builds the default dashboard before the request, and a page whose
            link sets nothing else gets that one, built already.
        **options
            Passed to :class:`Dashboard`.
        """
        if query is None:
            served = {"sync_url": True, **options}  # a Voila page: its address follows the controls
            ready = ready_for_page(lambda: cls(**served))
            if ready is not None:
                return cls._for_page(ready, served)
            query = os.environ.get("QUERY_STRING")
            options.setdefault("sync_url", query is not None)
        settings, notes = settings_from_query(query)
        return cls(settings, notes=notes, **options)

    @classmethod
    def _for_page(cls, ready: ReadyBuild["Dashboard"], options: dict[str, Any]) -> "Dashboard":
        # A kernel's default dashboard, built before its page arrived, serves a page whose link
        # sets nothing else (what a class opens): the page's kernel then has nothing to build.
        settings, notes = settings_from_query(ready.query)
        if settings == DashboardSettings() and not notes:
            return ready.built
        ready.discard()
        return cls(settings, notes=notes, **options)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- what the views show ---------------------------------------------------------------

    @property
    def result(self) -> Result | None:
        """The last result drawn (settings, evaluation, selection, assessment, optima), or None."""
        return self.view.drawn

    @property
    def evaluation(self) -> Evaluation | None:
        """The evaluation the views show (None before a first result)."""
        return None if self.result is None else self.result.evaluation

    @property
    def selection(self) -> Selection | None:
        """The selection the views show (None before a first result)."""
        return None if self.result is None else self.result.selection

    @property
    def fit_b(self) -> FitResult | None:
        """The fit-set-B law, once a setting asked for it."""
        return self.computation.fit_b

    @property
    def geometry(self) -> FigureGeometry:
        """The figure's current size and subplot placement (:func:`~morph.app.layout.figure_geometry`)."""
        return self.view.geometry

    # -- controls ----------------------------------------------------------------------------

    def _fitting(self, started: bool) -> None:
        if started:
            self.messages.show(
                f"Fitting the inference-efficient law on the paper's fit set B with {self.bootstrap} "
                "bootstrap refits for the loss band...",
                "info",
            )
        elif self.messages.level == "info":
            self.messages.clear()

    def _apply_controls(self, change: Any = None) -> None:
        if change is not None and change.get("owner") is self.controls["budget_metric"]:
            with self.inputs.quiet(["latency_budget_s"]):
                self.inputs.retarget_budget(change["new"], self.evaluation, self.selection)
        settings, note = supported_precision(self.inputs.read(self.settings))
        if note:
            # Move the control too, so the page shows the precision in use.
            with self.inputs.quiet(["dtype"]):
                self.controls["dtype"].value = settings.dtype
        self.settings = settings
        self.share.query = settings.to_query()
        self.inputs.toggle(settings.mode)
        self._commit(self.computation.compute(settings), draw_figure=True)
        if note:
            self.messages.show(note, "info")

    def set_controls(self, **changes: Any) -> None:
        """Move several controls at once, as a user would, then update once.

        E.g. ``set_controls(hardware="h100-sxm", latency_budget_s=1.0)``.
        Errors land in the message bar, exactly as from the page.
        """
        self.inputs.set(changes, self.settings, self.evaluation, self.selection)
        self.inputs.callback()

    def _on_width(self, change: Any) -> None:
        self.view.set_width(int(change["new"]))

    def _commit(self, result: Result, draw_figure: bool) -> None:
        self.view.draw(result, draw_figure)

    # -- exports ---------------------------------------------------------------------------

    def frontier_csv(self) -> str:
        """The current Pareto frontier (fastest first) as CSV text; empty before a first result.

        The table follows ``# key: value`` lines naming the settings that produced it
        (read them back with :func:`morph.data.split_provenance`).
        """
        return compute.frontier_csv(self.result)

    def selection_csv(self) -> str:
        """The current selection (best first) as CSV text, after its settings; empty before a first result."""
        return compute.selection_csv(self.result)

    def table_csv(self, name: str) -> str:
        """The CSV the share bar's download ``name`` offers (``"frontier"`` or ``"selection"``), written now.

        Both name the settings that produced them, the budget included.
        """
        return self.frontier_csv() if name == "frontier" else self.selection_csv()

    # -- layout ----------------------------------------------------------------------------

    def _layout(self) -> widgets.VBox:
        figure_box = widgets.Box([self.figure])
        figure_box.add_class("morph-figure-box")
        guide = widgets.HTML(HOW_TO_READ + tour_html(links=self.share.sync_url))
        main = widgets.VBox([guide, figure_box, self.notes_html, self.price, self.table, self.share])
        main.add_class("morph-main")
        columns = widgets.HBox([self.inputs.panel(), main])
        columns.add_class("morph-columns")
        # The page's layout follows the width of this box (a CSS container query,
        # morph.app.layout): the same in a Voila page and in a JupyterLab cell.
        body = widgets.Box([columns])
        body.add_class("morph-body")
        root = widgets.VBox([widgets.HTML(DASHBOARD_CSS), self.messages, body, self.probe])
        root.add_class("morph-dashboard")
        return root
