"""The dashboard's view: one figure with the frontier and the aspect-ratio plot, the notes and the ranked table.

:class:`DashboardView` draws a :class:`~morph.app.dashboard_compute.Result`:
what follows the evaluation (cloud, frontier, published models, greyed shapes,
fit-range shading) only when the evaluation changed, and what follows the
budget and top k (the selected shapes, the budget line, the labels, the law's
curve) on every change. The figure's traces are found by name
(:func:`trace`), never by position.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..frontier import resolve_law
from .dashboard_compute import Result
from .dashboard_parts import run_traces, thin_points
from .dashboard_text import price_of_speed_html, reading_notes_html, selection_table_html, validity_notes_html
from .decision_view import (
    ACCENT,
    budget_line,
    budget_rule,
    candidates_trace,
    fit_range_shading,
    frontier_trace,
    infeasible_points,
    infeasible_trace,
    optima_points,
    optima_trace,
    published_points,
    published_trace,
    selected_bars,
    selected_trace,
)
from .figure_edits import FigureEdits
from .figures import si_format
from .labels import label_size, place_caption, place_labels
from .layout import FigureGeometry, figure_geometry, linear_range, log_range

__all__ = [
    "CLOUD", "FRONTIER", "SELECTED", "PUBLISHED", "INFEASIBLE", "OPTIMA", "LAW_CURVE", "ASPECT_SELECTED",
    "RUN_LINES", "RUNS", "MAX_LABELS", "TITLES", "DashboardView", "trace", "initial_figure",
]

# The figure's traces, addressed by name (:func:`trace`), never by position. Left plot:
# CLOUD, FRONTIER, SELECTED, INFEASIBLE, OPTIMA and PUBLISHED (the published models sit on a
# strip of their own, axis y3, apart from the loss dots they would hide); right plot:
# LAW_CURVE, ASPECT_SELECTED and the runs, RUN_LINES and RUNS (which never change).
CLOUD, FRONTIER, SELECTED = candidates_trace().name, frontier_trace().name, selected_trace().name
PUBLISHED, INFEASIBLE, OPTIMA = published_trace().name, infeasible_trace().name, optima_trace().name
LAW_CURVE, ASPECT_SELECTED = "law at the top pick's N and D", "selected (on the law)"
RUN_LINES, RUNS = (t.name for t in run_traces())
TITLES = ("Loss against latency", "Loss against aspect ratio R")
MAX_LABELS = 8
"""At most this many selected shapes are named on the plot (all of them are in the table)."""

# Unused annotation slots, with the keys of a caption and of a label, so that showing one later
# edits it in place (see DashboardView.edit_annotations).
HIDDEN_CAPTION: dict[str, Any] = dict(
    xref="x", yref="y domain", x=0.0, y=1, text="", showarrow=False, xanchor="left", yanchor="top", xshift=3,
    yshift=0.0, font=dict(color=ACCENT, size=11), name="unused", visible=False)
HIDDEN_LABEL: dict[str, Any] = dict(
    xref="x", yref="y", x=0.0, y=0.0, text="", showarrow=True, arrowhead=0, arrowwidth=1, arrowcolor="#888",
    axref="pixel", ayref="pixel", ax=0.0, ay=0.0, font=dict(size=11, color=ACCENT),
    bgcolor="rgba(255,255,255,0.85)", borderpad=1, name="unused", visible=False)


def trace(fig: Any, name: str) -> Any:
    """The figure's trace called ``name`` (one of the names above)."""
    for candidate in fig.data:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def initial_figure() -> go.Figure:
    """The empty figure: every trace (named), both plots' axes, the budget line."""
    fig = make_subplots(rows=1, cols=2)
    fig.add_trace(candidates_trace(), row=1, col=1)
    fig.add_trace(frontier_trace(), row=1, col=1)
    # Named by annotations placed without overlaps (DashboardView.label_annotations), not by trace text.
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
    for run_trace in run_traces():
        fig.add_trace(run_trace, row=1, col=2)
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
    return fig


def prepare() -> None:
    """Fill this process's caches that every dashboard reads: the empty figure, the default result's fits and data.

    Widget-free: a process that forks kernels (:mod:`morph.app.kernel_fork`) calls
    it once, and each kernel's first dashboard then starts from them.
    """
    from .dashboard_compute import DashboardComputation
    from .settings import DashboardSettings

    _initial_figure_once()
    DashboardComputation().try_compute(DashboardSettings())


@functools.lru_cache(maxsize=1)
def _initial_figure_once() -> go.Figure:
    # Built once per process and copied: subplots and the template cost 45 ms a dashboard, a third of a page's
    # kernel time; a copy costs 14 ms.
    return initial_figure()


class DashboardView:
    """The figure, the notes and the table, drawn from one :class:`~morph.app.dashboard_compute.Result` at a time.

    Parameters
    ----------
    figure_class : type
        The FigureWidget class to draw in.
    first : Result or None
        Built into the figure: a FigureWidget drops changes made before its view renders.
    max_cloud_points : int
        At most about this many candidates are drawn as the faint cloud.

    Attributes
    ----------
    figure : FigureWidget
    table, price, notes_html : ipywidgets.HTML
        Ranked selection, the price-of-speed sentence, figure notes.
    geometry : FigureGeometry
        The figure's current size and subplot placement.
    """

    def __init__(self, figure_class: type, first: Result | None, max_cloud_points: int = 2000) -> None:
        self.max_cloud_points = int(max_cloud_points)
        self.geometry: FigureGeometry = figure_geometry(None)
        self.drawn: Result | None = None
        self.curve_key: tuple | None = None
        self.label_slots = 0  # label annotations the figure holds, shown or hidden (it only grows)
        self.sent: dict[str, Any] = {}  # what the figure was last sent, by part: unchanged parts are not sent again
        self.reading_notes = ""  # the notes that follow only the evaluation
        self.published: dict[str, Any] = dict(x=[], y=[], text=[], visible=False)  # the published models' trace
        fig = go.Figure(_initial_figure_once())  # a copy
        self.apply_geometry(fig)
        if first is not None:
            self.draw_evaluation(first, fig)
            self.draw_selection(first, fig)
        self.figure = figure_class(fig)
        if self.figure.has_trait("_morph_hold"):
            # Built for an assumed width: the page holds the first draw until set_width lays it out.
            self.figure._morph_hold = True
        if "annotations" in self.sent:  # the widget was built from that figure: it holds those annotations
            self.sent["annotations"] = (id(self.figure), self.sent["annotations"][1])
        self.table = widgets.HTML()
        self.price = widgets.HTML()
        self.notes_html = widgets.HTML()
        self.table.add_class("morph-table")
        self.price.add_class("morph-price")

    def draw(self, result: Result, draw_figure: bool = True) -> None:
        """Show ``result``: the figure (unless it was built with it), the notes and the table."""
        previous, self.drawn = self.drawn, result
        evaluation_changed = previous is None or previous.evaluation is not result.evaluation
        if draw_figure and evaluation_changed:
            with self.figure.batch_update():
                self.draw_evaluation(result)
                self.draw_selection(result)
        elif draw_figure:  # a budget or top-k move: one update, of what changed
            self.draw_selection(result)
        self.table.value = selection_table_html(result)
        if evaluation_changed:
            self.price.value = price_of_speed_html(result)
            self.reading_notes = reading_notes_html(result, self.max_cloud_points)
        # The assessment's sentences follow the budget too (the best shape, whether it hangs on a prior);
        # the reading notes follow only the evaluation and are kept from its last change.
        self.notes_html.value = validity_notes_html(result) + self.reading_notes

    def set_width(self, width: int) -> None:
        """The figure's box is ``width`` pixels wide: lay the plots out again and re-place the labels.

        Then the page may draw the figure (a view waiting for its first draw was held
        for this layout; the edits above reach it first).
        """
        try:
            geometry = figure_geometry(int(width))
            if geometry == self.geometry:
                return
            self.geometry = geometry
            with self.figure.batch_update():
                self.apply_geometry(self.figure)
                if self.drawn is not None:
                    self.draw_selection(self.drawn)
        finally:
            if self.figure.has_trait("_morph_hold"):
                self.figure._morph_hold = False

    def apply_geometry(self, fig: Any) -> None:
        """Size, subplot domains, titles and colour bar for the current :attr:`geometry`."""
        g = self.geometry
        fig.update_layout(g.layout())
        trace(fig, RUNS).marker.colorbar.update(g.colorbar())
        fig.layout.annotations = g.titles(*TITLES)  # the labels follow in draw_selection
        self.sent.pop("annotations", None)

    def draw_evaluation(self, result: Result, fig: Any = None) -> None:
        """Views that change with the evaluation: cloud, frontier, published models."""
        fig = self.figure if fig is None else fig
        ev, sel = result.evaluation, result.selection
        shown = thin_points(ev.latency_s, ev.loss, self.max_cloud_points)
        cloud, frontier, published = trace(fig, CLOUD), trace(fig, FRONTIER), trace(fig, PUBLISHED)
        cloud.update(x=ev.latency_s[shown], y=ev.loss[shown], text=ev.candidates.labels(shown).tolist())
        f = sel.frontier_index
        frontier.update(x=ev.latency_s[f], y=ev.loss[f], text=ev.candidates.labels(f).tolist())
        self.published = published_points(result.settings.workload, result.settings.mode)
        published.update(**self.published)
        trace(fig, INFEASIBLE).update(**infeasible_points(sel, result.assessment))
        line = fig.layout.shapes[0]
        fig.layout.shapes = [line, *fit_range_shading(result.assessment.runs)]

    def draw_selection(self, result: Result, fig: Any = None) -> None:
        """Views that change with the latency budget and top k (and the labels, which depend on both).

        Sent as one update of only the properties that change (:class:`~morph.app.figure_edits.FigureEdits`):
        a budget move is the dashboard's most frequent edit.
        """
        fig = self.figure if fig is None else fig
        edits = FigureEdits(fig)
        ev, sel = result.evaluation, result.selection
        i = sel.selected_index
        labels = [f"{r}: {L}x{d}" for r, L, d in zip(sel.selected["rank"], sel.selected["n_layers"], sel.selected["d_model"])]
        edits.trace(SELECTED, x=ev.latency_s[i], y=ev.loss[i], text=labels, **selected_bars(sel, result.assessment))
        if result.optima is not None or self.sent.get(OPTIMA, "unsent") is not None:  # hidden stays hidden, unsent
            edits.trace(OPTIMA, **optima_points(sel, result.optima))
        self.sent[OPTIMA] = result.optima
        rule = budget_rule(sel)
        if rule is not None:
            edits.relayout("shapes.0", dict(x0=rule[0], x1=rule[0]))
        edits.relayout("shapes.0.visible", rule is not None)
        # Explicit ranges: the labels are placed in pixels, which needs the axes' extent.
        published = self.published
        xs = [float(ev.latency_s.min()), float(ev.latency_s.max()), *(rule[:1] if rule else ()), *published["x"]]
        low, high = linear_range([float(ev.loss.min()), float(ev.loss.max())], pad=0.12)
        # The published models' strip takes the top tenth of the plot: keep the loss dots below it.
        y_range = (low, high + 0.15 * (high - low)) if published["visible"] else (low, high)
        x_range = log_range(xs)
        # Set only when they move: an axis range sent again makes the page lay the axes out again.
        if self.sent.get("ranges") != (x_range, y_range):
            edits.relayout("xaxis.range", x_range)
            edits.relayout("yaxis.range", y_range)
            self.sent["ranges"] = (x_range, y_range)
        # Beyond a few, labels crowd the plot: the best MAX_LABELS are named, the table lists the rest.
        points = [(float(ev.latency_s[j]), float(ev.loss[j]), text, "y") for j, text in zip(i[:MAX_LABELS], labels)]
        if published["visible"]:
            points += [(x, y, text, "y3") for x, y, text in zip(published["x"], published["y"], published["text"])]
        placed = self.label_annotations(points, min(len(labels), MAX_LABELS), rule, x_range, y_range)
        # A fixed number of label slots, the unused ones hidden: a move then edits annotations in place.
        self.label_slots = max(self.label_slots, len(placed) - 1)
        annotations = [*self.geometry.titles(*TITLES), *placed,
                       *[HIDDEN_LABEL] * (self.label_slots - (len(placed) - 1))]
        # The law's curve over R at the top pick's N and D: the shape factor in isolation.
        top = int(i[0])
        N, D = float(ev.candidates.N[top]), float(ev.candidates.D[top])
        if self.curve_key != (N, D, result.evaluation_key):  # sent (and redrawn) only when it moves
            self.curve_key = (N, D, result.evaluation_key)
            R = np.geomspace(8.0, 4096.0, 160)
            law = resolve_law(result.law)[0]
            # The name stays (it is how the trace is found); the hover says at which N and D.
            edits.trace(
                LAW_CURVE, x=R, y=law.predict(np.full_like(R, N), np.full_like(R, D), R),
                hovertemplate=f"law at N = {si_format(N)}, D = {si_format(D)} (the top pick's)<br>"
                              "R %{x:.0f}<br>predicted loss %{y:.4f} nats/token<extra></extra>")
        aspect_key = (tuple(i.tolist()), tuple(labels), result.evaluation_key)
        if self.sent.get(ASPECT_SELECTED) != aspect_key:  # the same shapes on the law: nothing to send
            edits.trace(ASPECT_SELECTED, x=ev.candidates.aspect_ratio[i], y=ev.loss[i], text=labels)
            self.sent[ASPECT_SELECTED] = aspect_key
        if self.edit_annotations(edits, annotations):
            edits.send()
        else:  # a new number of annotations: the array is replaced, in the same update as the rest
            with fig.batch_update():
                fig.layout.annotations = annotations
                edits.send()
        self.sent["annotations"] = (id(fig), annotations)

    def edit_annotations(self, edits: FigureEdits, annotations: list[dict[str, Any]]) -> bool:
        """Add the annotations that changed since the last time to ``edits``, each edit as small as it can be.

        plotly.js redraws the whole figure whenever the annotations array is replaced, while an
        edit of one item's properties is redrawn as that property's edit type asks (a label's
        position, text or visibility still asks for a full redraw; its font colour does not). So when the
        figure holds the same number of annotations with the same properties, only the changed
        properties of the changed items are sent: smaller messages, and no redraw caused by the
        replacement itself (see benchmarks/README.md, "Where a slider move goes in the page").

        Returns
        -------
        bool
            False when the array must be replaced whole (the first time, or another number of items).
        """
        last = self.sent.get("annotations")
        if last is None or last[0] != id(edits.figure) or len(last[1]) != len(annotations) or any(
                a.keys() != b.keys() for a, b in zip(last[1], annotations)):
            return False
        for k, (old, new) in enumerate(zip(last[1], annotations)):
            changed = {key: value for key, value in new.items() if old[key] != value}
            if changed:
                edits.relayout(f"annotations.{k}", changed)
        return True

    def label_annotations(
        self, points: list[tuple[float, float, str, str]], n_selected: int, rule: tuple[float, str] | None,
        x_range: tuple, y_range: tuple,
    ) -> list[dict[str, Any]]:
        """The budget's caption (hidden without a budget line), then a label per placed point.

        Points are the selected shapes by rank, then the published models.

        ``rule`` is the budget line's latency and caption (:func:`~morph.app.decision_view.budget_rule`),
        if it has one.

        Each point is ``(latency, y, text, axis)``: ``axis`` ``"y"`` (loss) or ``"y3"`` (the
        published models' strip, 0 at the bottom of the plot and 1 at its top).

        Placed in pixels of the left plot (:func:`~morph.app.labels.place_labels`), best rank
        first; a label with no free spot is left out (the table and the hover still name it).
        """
        width, height = self.geometry.plot_area()

        def to_px(x: float, y: float, axis: str = "y") -> tuple[float, float]:
            fraction = (y - y_range[0]) / (y_range[1] - y_range[0]) if axis == "y" else y
            return (math.log10(x) - x_range[0]) / (x_range[1] - x_range[0]) * width, (1.0 - fraction) * height

        annotations: list[dict[str, Any]] = [HIDDEN_CAPTION]
        obstacles = []
        px = np.array([to_px(x, y, axis) for x, y, _, axis in points]).reshape(-1, 2)
        if rule is not None:
            # Beside the line, clear of every marker (the published models' diamonds sit at the top).
            marker = 9.0
            markers = [(x - marker, y - marker, x + marker, y + marker) for x, y in px]
            (budget, caption) = rule
            box, right_side = place_caption(to_px(budget, y_range[1])[0], label_size(caption), (width, height), markers)
            obstacles.append(box)
            annotations[0] = dict(
                xref="x", yref="y domain", x=math.log10(budget), y=1, text=caption, showarrow=False,
                xanchor="left" if right_side else "right", yanchor="top", xshift=3 if right_side else -3,
                yshift=-float(box[1]), font=dict(color=ACCENT, size=11), name="budget", visible=True)
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
                bgcolor="rgba(255,255,255,0.85)", borderpad=1, name="label", visible=True,
            ))
        return annotations
