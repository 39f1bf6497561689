"""Exercises answered in the page: tolerance, feedback, reasoning only after an answer, escaped text."""

from __future__ import annotations

import pytest

from morph.app.exercises import ChoiceQuestion, NumberQuestion, parse_number


def test_numbers_are_read_as_people_write_them():
    assert parse_number("1.8") == 1.8 and parse_number(" 1.84x ") == 1.84 and parse_number("2,450") == 2450
    assert parse_number("61%") == pytest.approx(0.61) and parse_number("1e20") == 1e20
    assert parse_number("") is None and parse_number("fast") is None and parse_number("nan") is None


def test_a_number_is_right_within_its_stated_tolerance():
    # 3.61 / 1.96 = 1.8418...; 5% of it is 0.0921, so 1.75 (off by 0.092) passes and 1.74 does not.
    q = NumberQuestion("How much faster?", 3.61 / 1.96, 0.05, relative=True, unit="x", reasoning="Depth <b>sets</b> it.")
    assert "within 5%" in q.prompt.value
    assert q.check(1.75) and not q.check(1.74) and q.check(1.93) and not q.check(1.94)
    assert q.reveal.value == "" and not q.answered  # nothing revealed before an answer
    q.control.value = "abc"
    assert q.submit() is None and q.reveal.value == "" and "Enter a number" in q.feedback.value
    q.control.value = "1.5"
    assert q.submit() is False and "too low" in q.feedback.value and "1.84x" in q.feedback.value
    assert "Depth &lt;b&gt;sets&lt;/b&gt; it." in q.reveal.value and "<b>sets</b>" not in q.reveal.value
    q.control.value = "1.8x"
    assert q.submit() is True and "Right." in q.feedback.value
    absolute = NumberQuestion("Exponent?", 0.5, 0.02)
    assert "±0.02" in absolute.prompt.value and absolute.check(0.52) and not absolute.check(0.53)


def test_a_choice_is_checked_and_explained_after_the_answer():
    q = ChoiceQuestion("Which is faster? <script>", ["24x2048", "12x3072"], "12x3072", reasoning="Fewer layers.",
                       feedback={"24x2048": "It has twice the layers."})
    assert "&lt;script&gt;" in q.prompt.value and "<script>" not in q.prompt.value
    assert q.submit() is None and q.reveal.value == ""
    q.control.value = "24x2048"
    assert q.submit() is False and "twice the layers" in q.feedback.value and "Fewer layers." in q.reveal.value
    q.control.value = "12x3072"
    assert q.submit() is True
    with pytest.raises(ValueError):
        ChoiceQuestion("?", ["a", "b"], "c")
    with pytest.raises(ValueError):
        NumberQuestion("?", float("nan"), 0.1)
