"""Shared widget plumbing: messages are escaped, failures never escape a callback."""

from __future__ import annotations

import pytest

from morph.errors import DataError
from morph.app.ui import MessageBar, guarded


def test_messages_are_escaped_and_classed():
    bar = MessageBar()
    bar.show("<script>alert(1)</script> & more", "error")
    assert "<script>" not in bar.value and "&lt;script&gt;" in bar.value
    assert 'class="morph-error"' in bar.value and bar.level == "error"
    bar.show_many(["a < b", "c"], "warning")
    assert bar.value.count("<li>") == 2 and "a &lt; b" in bar.value
    bar.show_many([])
    assert bar.value == "" and bar.level is None
    with pytest.raises(ValueError):
        bar.show("x", "fatal")


def test_guarded_shows_user_errors_and_faults_and_clears_on_success():
    bar = MessageBar()
    calls = []

    @guarded(bar)
    def callback(value):
        calls.append(value)
        if value == "bad":
            raise DataError("column 'N', row 3 is empty")
        if value == "bug":
            raise ZeroDivisionError("division by zero")
        return value * 2

    assert callback("bad") is None and bar.text == "column 'N', row 3 is empty"
    assert callback("bug") is None and "ZeroDivisionError" in bar.text and "unchanged" in bar.text
    assert callback(2) == 4 and bar.value == ""
    assert calls == ["bad", "bug", 2]
