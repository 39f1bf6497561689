"""Exercises a student answers in the page: a number checked within a tolerance, or a choice.

Under Voila there are no code cells, so a lesson's tasks are widgets: the student
enters a number or picks an option and presses *Check*; the feedback says whether
the answer is right, and the reasoning appears only after an answer has been
given (predict, then reveal). Every text is escaped: a question shows what it
was given, never markup.

:class:`NumberQuestion` accepts an answer within ``tolerance`` (absolute, or
relative with ``relative=True``) and says the tolerance in its prompt;
:class:`ChoiceQuestion` accepts one option (a shape, a word) out of several.
"""

from __future__ import annotations

import html
import math
from typing import Sequence

import ipywidgets as widgets

__all__ = ["NumberQuestion", "ChoiceQuestion", "parse_number"]

_RIGHT = "<div class='morph-feedback' style='color:#1a7f37'><b>Right.</b> {}</div>"
_WRONG = "<div class='morph-feedback' style='color:#b42318'><b>Not quite.</b> {}</div>"
_REVEAL = "<div class='morph-reveal' style='margin-top:4px'><b>Why:</b> {}</div>"


def parse_number(text: str) -> float | None:
    """``"1.8"``, ``"1.8x"``, ``"2,450"``, ``"1e20"`` or ``"61%"`` as a float (a percentage as a fraction); None if not a number."""
    cleaned = str(text).strip().replace(",", "").replace("_", "").rstrip("xX").strip()
    scale = 1.0
    if cleaned.endswith("%"):
        cleaned, scale = cleaned[:-1].strip(), 0.01
    try:
        value = float(cleaned) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class _Question(widgets.VBox):
    def __init__(self, prompt: str, reasoning: str, control: widgets.Widget, note: str = "") -> None:
        self.prompt = widgets.HTML(f"<div class='morph-question'>{html.escape(prompt)}"
                                   + (f" <i>{html.escape(note)}</i>" if note else "") + "</div>")
        self.control = control
        self.button = widgets.Button(description="Check", button_style="primary", layout=widgets.Layout(width="90px"))
        self.feedback = widgets.HTML()
        self.reveal = widgets.HTML()
        self.reasoning = reasoning
        self.answered = False
        self.button.on_click(lambda _button: self.submit())
        super().__init__([self.prompt, widgets.HBox([control, self.button]), self.feedback, self.reveal])
        self.add_class("morph-exercise")

    def _judge(self) -> tuple[bool | None, str]:  # pragma: no cover - each kind says how
        raise NotImplementedError

    def submit(self) -> bool | None:
        """Check the current answer: feedback, and the reasoning once an answer was given. None if there is none."""
        right, message = self._judge()
        if right is None:
            self.feedback.value = f"<div class='morph-feedback'>{html.escape(message)}</div>"
            return None
        self.answered = True
        self.feedback.value = (_RIGHT if right else _WRONG).format(html.escape(message))
        self.reveal.value = _REVEAL.format(html.escape(self.reasoning)) if self.reasoning else ""
        return right


class NumberQuestion(_Question):
    """A question answered with a number, right within ``tolerance`` of ``answer``.

    Parameters
    ----------
    prompt : str
        The question.
    answer : float
    tolerance : float
        Absolute, or a fraction of ``answer`` with ``relative=True``; the prompt states it.
    reasoning : str
        Shown after the first answer.
    unit : str
        Printed after numbers in the feedback (``"s"``, ``"x"``).
    digits : int
        Significant digits of the answer in the feedback.
    """

    def __init__(self, prompt: str, answer: float, tolerance: float, *, relative: bool = False, reasoning: str = "",
                 unit: str = "", digits: int = 3) -> None:
        if not (math.isfinite(answer) and tolerance >= 0):
            raise ValueError("a number question needs a finite answer and a tolerance >= 0")
        self.answer, self.tolerance, self.relative, self.unit, self.digits = float(answer), float(tolerance), relative, unit, digits
        within = f"within {tolerance:.0%}" if relative else f"within ±{tolerance:g}{unit and ' ' + unit}"
        super().__init__(prompt, reasoning, widgets.Text(placeholder="your answer", layout=widgets.Layout(width="160px")),
                         note=f"(accepted {within})")

    @property
    def allowed(self) -> float:
        """The largest accepted distance from the answer."""
        return self.tolerance * abs(self.answer) if self.relative else self.tolerance

    def check(self, value: float) -> bool:
        """Whether ``value`` is accepted."""
        return abs(float(value) - self.answer) <= self.allowed * (1 + 1e-12)

    def _judge(self) -> tuple[bool | None, str]:
        value = parse_number(self.control.value)
        if value is None:
            return None, "Enter a number (for example 1.8, 2e9 or 61%)."
        shown = f"{self.answer:.{self.digits}g}{self.unit}"
        if self.check(value):
            return True, f"The answer is {shown}."
        direction = "high" if value > self.answer else "low"
        return False, f"{value:.{self.digits}g}{self.unit} is too {direction}: the answer is {shown}."


class ChoiceQuestion(_Question):
    """A question answered by picking one of ``options``; ``answer`` is the right option."""

    def __init__(self, prompt: str, options: Sequence[str], answer: str, *, reasoning: str = "",
                 feedback: dict[str, str] | None = None) -> None:
        options = [str(o) for o in options]
        if answer not in options:
            raise ValueError(f"the answer {answer!r} is not one of the options")
        self.answer = answer
        self.option_feedback = dict(feedback or {})
        super().__init__(prompt, reasoning, widgets.RadioButtons(options=options, value=None,
                                                                 layout=widgets.Layout(width="auto")))

    def check(self, value: str) -> bool:
        """Whether ``value`` is the right option."""
        return value == self.answer

    def _judge(self) -> tuple[bool | None, str]:
        value = self.control.value
        if value is None:
            return None, "Pick one option first."
        extra = self.option_feedback.get(value, "")
        if self.check(value):
            return True, extra or f"It is {self.answer}."
        return False, (extra + " " if extra else "") + f"The answer is {self.answer}."
