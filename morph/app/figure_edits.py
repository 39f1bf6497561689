"""Edits to a live figure, sent as one ``Plotly.update`` without plotly's per-property validation.

plotly's figure model validates every property it is given: on a dashboard
slider move, about half of the kernel's time went to looking up validators and
copying arrays for some sixty properties whose values Morph computed itself
(``python benchmarks/bench_move.py --profile``). :class:`FigureEdits` collects
the same edits as property paths (``"error_x.array"``, ``"annotations.3.x"``),
writes the ones that change into the figure's data and layout as plotly does
when the page reports an edit (``plotly_update``), and sends them in one
message: the page receives what plotly's own ``batch_update`` would have sent
(``tests/test_figure_edits.py`` checks both against each other on real moves).

It relies on plotly's figure internals (``_data``, ``_layout``, ``_set_in``,
``_send_update_msg``), as plotly's own widget code does; the tests compare it with
plotly's public, validated path on every run, so a plotly release that changes them
fails there first. Only values Morph computes go through here; anything a user typed
is validated before it reaches a figure. ``FigureEdits(figure, validate=True)`` applies the
same edits through plotly's validated setters, the reference the tests compare
against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plotly.basedatatypes import BaseFigure, Undefined  # Undefined: a trace this property leaves alone

__all__ = ["FigureEdits", "flatten"]


def flatten(props: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"error_x": {"array": a}}`` as ``{"error_x.array": a}``: the leaf paths plotly sends.

    A dict value is a nested object, merged property by property as plotly's
    ``update`` does; any other value (a list, an array, a string) is one leaf.
    """
    paths: dict[str, Any] = {}
    for key, value in props.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            paths.update(flatten(value, path + "."))
        else:
            paths[path] = value
    return paths


class FigureEdits:
    """Trace and layout edits to one figure, sent together by :meth:`send`.

    Parameters
    ----------
    figure : plotly.graph_objects.Figure or FigureWidget
        The figure to edit. Its traces are addressed by name.
    validate : bool, default False
        Apply the edits through plotly's validated property setters instead
        (slower; the same message and the same figure). Edits sent inside the
        figure's ``batch_update`` always are: they join the batch's message.
    """

    def __init__(self, figure: Any, validate: bool = False) -> None:
        self.figure = figure
        self.validate = validate
        self.traces: dict[int, dict[str, Any]] = {}
        self.layout: dict[str, Any] = {}

    def trace(self, name: str, **props: Any) -> None:
        """Set properties of the trace called ``name``; nested dicts are merged, as ``update`` does."""
        index = next((k for k, data in enumerate(self.figure._data) if data.get("name") == name), None)
        if index is None:
            raise KeyError(name)
        self.traces.setdefault(index, {}).update(flatten(props))

    def relayout(self, path: str, value: Any) -> None:
        """Set the layout property at ``path``; a dict value is merged.

        An item of a list is written as plotly writes it: ``"shapes.0.x0"``.
        """
        self.layout.update(flatten({path: value}) if isinstance(value, Mapping) else {path: value})

    def send(self) -> None:
        """Write the edits into the figure and send the ones that change it, in one update."""
        fig = self.figure
        # Inside a batch (an evaluation's change, a few per session) the edits join plotly's own, validated.
        if self.validate or fig._in_batch_mode:
            with fig.batch_update():
                for index, props in self.traces.items():
                    for path, value in props.items():
                        fig.data[index][path] = value
                for path, value in self.layout.items():
                    fig.layout[path] = value
        else:
            self._send_unvalidated()
        self.traces, self.layout = {}, {}

    def _send_unvalidated(self) -> None:
        fig = self.figure
        # As plotly's plotly_update: write each value, keep those that changed, send only them.
        changed = {index: {path: value for path, value in props.items()
                           if BaseFigure._set_in(fig._data[index], path, value)}
                   for index, props in sorted(self.traces.items())}
        indexes = [index for index, props in changed.items() if props]
        restyle: dict[str, list[Any]] = {}
        for position, index in enumerate(indexes):
            for path, value in changed[index].items():
                restyle.setdefault(path, [Undefined] * len(indexes))[position] = value
        restyle = dict(sorted(restyle.items()))  # in plotly's order: by path
        relayout = {path: value for path, value in self.layout.items() if BaseFigure._set_in(fig._layout, path, value)}
        if restyle or relayout:
            fig._send_update_msg(restyle_data=restyle, relayout_data=relayout, trace_indexes=indexes)
