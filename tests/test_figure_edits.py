"""Edits sent without plotly's validation reach the page exactly as plotly's validated setters send them.

The reference is plotly's own path (``FigureEdits(validate=True)``: property
setters inside ``batch_update``), never Morph's output: the same edits through
both must produce the same ``Plotly.update`` messages and the same figure.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.basedatatypes import Undefined

import morph.app.dashboard_view as dashboard_view
from morph.app.dashboard import Dashboard
from morph.app.figure_edits import FigureEdits, flatten


def _plain(value: Any) -> Any:
    """A message or figure as the page reads it: arrays as lists, plotly's 'leave alone' marker named."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "uid"}  # uid: random per trace
    if value is Undefined:
        return "<undefined>"
    if isinstance(value, np.generic):
        return value.item()
    return value


def _recorded(figure: Any) -> list[dict[str, Any]]:
    """Every update message ``figure`` sends from now on, as the page reads it."""
    messages: list[dict[str, Any]] = []
    send = figure._send_update_msg

    def recording(restyle_data: dict, relayout_data: dict, trace_indexes: Any = None, **kwargs: Any) -> None:
        messages.append(_plain(dict(restyle=restyle_data, relayout=relayout_data, traces=trace_indexes)))
        send(restyle_data, relayout_data, trace_indexes, **kwargs)

    figure._send_update_msg = recording
    return messages


def _session(monkeypatch: pytest.MonkeyPatch, validate: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    with monkeypatch.context() as patch:
        patch.setattr(dashboard_view, "FigureEdits", partial(FigureEdits, validate=validate))
        board = Dashboard()
        messages = _recorded(board.view.figure)
        budget = board.controls["latency_budget_s"]
        # Budget moves (Morph-1B leaves and rejoins the selection), another top k, a narrower page
        # (the labels placed again inside a batch), another metric (no budget line), then back.
        for value in (1.95, 2.0, 1.0, 3.0):
            budget.value = value
        board.controls["top_k"].value = 5
        board.view.set_width(700)
        budget.value = 1.5
        board.set_controls(budget_metric="ttft_s")
        board.set_controls(budget_metric="latency_s")
        budget.value = 1.95
        return messages, _plain(board.view.figure.to_plotly_json())


def test_a_session_sends_what_plotlys_validated_setters_send(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, fast_figure = _session(monkeypatch, validate=False)
    checked, checked_figure = _session(monkeypatch, validate=True)
    assert len(fast) == len(checked) >= 9
    for k, (sent, reference) in enumerate(zip(fast, checked)):
        assert sent == reference, f"message {k} differs"
    assert fast_figure == checked_figure
    # The moves did edit the labels and the budget line in place (not the whole annotations array).
    assert any(any(path.startswith("annotations.") for path in m["relayout"]) for m in fast)
    assert any("shapes.0.x0" in m["relayout"] for m in fast)


def _figure() -> go.FigureWidget:
    return go.FigureWidget(go.Figure(
        [go.Scatter(name="a", x=[1.0, 2.0], y=[3.0, 4.0]), go.Scatter(name="b", x=[5.0], y=[6.0])],
        layout=dict(annotations=[dict(text="first", x=1, y=3, font=dict(size=11, color="red"))])))


def test_only_what_changes_is_sent_and_other_traces_are_left_alone() -> None:
    figure = _figure()
    messages = _recorded(figure)
    edits = FigureEdits(figure)
    edits.trace("b", x=np.array([7.0]), y=[6.0], marker=dict(symbol=["star"]))  # y unchanged
    edits.relayout("annotations.0", dict(text="first", font=dict(size=11, color="blue")))  # only the colour moves
    edits.send()
    assert messages == [dict(restyle={"marker.symbol": [["star"]], "x": [[7.0]]},
                             relayout={"annotations.0.font.color": "blue"}, traces=[1])]
    assert list(figure.data[1].x) == [7.0] and list(figure.data[1].marker.symbol) == ["star"]
    assert figure.layout.annotations[0].font.color == "blue"
    edits.trace("a", x=[1.0, 2.0])  # as it is: nothing to send
    edits.send()
    assert len(messages) == 1
    # Two traces, one path: plotly's marker leaves the trace that does not set it as it is.
    edits.trace("a", mode="markers")
    edits.trace("b", mode="lines", y=[9.0])
    edits.send()
    assert messages[-1] == dict(restyle={"mode": ["markers", "lines"], "y": ["<undefined>", [9.0]]},
                                relayout={}, traces=[0, 1])


def test_inside_a_batch_the_edits_join_it() -> None:
    figure = _figure()
    messages = _recorded(figure)
    with figure.batch_update():
        figure.layout.title = "t"
        edits = FigureEdits(figure)
        edits.trace("a", y=[5.0, 6.0])
        edits.send()
        assert messages == []
    assert len(messages) == 1 and messages[0]["restyle"] == {"y": [[5.0, 6.0]]}
    assert messages[0]["relayout"] == {"title.text": "t"} or messages[0]["relayout"] == {"title": {"text": "t"}}


def test_a_trace_is_found_by_name() -> None:
    with pytest.raises(KeyError, match="missing"):
        FigureEdits(_figure()).trace("missing", x=[1])


def test_nested_properties_become_the_leaf_paths_plotly_sends() -> None:
    assert flatten({"error_x": {"array": [1], "visible": True}, "x": [2], "font": {"color": "red"}}, "p.") == {
        "p.error_x.array": [1], "p.error_x.visible": True, "p.x": [2], "p.font.color": "red"}
