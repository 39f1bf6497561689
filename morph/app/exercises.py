"""Exercises a student answers in the page: a number checked within a tolerance, or a choice.

Under Voila there are no code cells, so a lesson's tasks are widgets: the student
enters a number or picks an option and presses *Check*; the feedback says whether
the answer is right, and the reasoning appears only after an answer has been
given (predict, then reveal). Every text is escaped: a question shows what it
was given, never markup.

:class:`NumberQuestion` accepts an answer within ``tolerance`` (absolute, or
relative with ``relative=True``) and says the tolerance in its prompt;
:class:`ChoiceQuestion` accepts one option (a shape, a word) out of several.
:class:`RunPlanner` is an open task: pick which of the paper's runs to train under a
compute budget, fit the law to them and predict Morph-1B's loss, scored against the
released one (:func:`score_plan` does the work and is what the tests call).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Sequence

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..data import load_runs
from ..errors import MorphError
from ..fitting import FitResult, fit
from ..laws import free_parameters
from .ui import MessageBar, guarded

__all__ = ["NumberQuestion", "ChoiceQuestion", "RunPlanner", "PlanScore", "score_plan", "parse_number",
           "PLAN_BUDGET_FLOPS", "PLAN_TARGET"]

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


# -- an open task: which runs to train under a compute budget --------------------------------------

PLAN_BUDGET_FLOPS = 1.2e20
"""Training compute a plan may spend (FLOPs, the sum of 6 N D over its runs): what the paper's fit
set B cost (its 27 runs: 1.199e20), so a plan competes with the paper's own choice on equal terms."""

PLAN_TARGET = "1B_v8@20N"
"""The run a plan's law must predict: Morph-1B (12 x 3072, 1.67B parameters, 28,991,029,248 tokens)."""


def _flops_text(value: float) -> str:
    return f"{value:.3g}".replace("e+", "e") + " FLOPs"


@dataclass(frozen=True)
class PlanScore:
    """A plan's fit and how well it predicts the target run.

    Attributes
    ----------
    runs : list of str
        The runs trained (fitted on).
    flops, budget : float
        Their compute (sum of 6 N D) and the budget.
    prediction, actual : float
        The fitted law's loss for the target and the released one (nats/token).
    reference_error : float
        The paper's fit set B's relative error on the same target, for comparison.
    fit : FitResult
    """

    runs: list[str]
    flops: float
    budget: float
    prediction: float
    actual: float
    reference_error: float
    fit: FitResult

    @property
    def relative_error(self) -> float:
        """(prediction - actual) / actual."""
        return (self.prediction - self.actual) / self.actual

    def message(self) -> str:
        """What the plan achieved, in sentences (plain text)."""
        better = abs(self.relative_error) <= abs(self.reference_error)
        verdict = ("as close as or closer than" if better else "further off than")
        lines = [
            f"{len(self.runs)} runs, {_flops_text(self.flops)} of the {_flops_text(self.budget)} budget.",
            f"Your law predicts {self.prediction:.4f} for Morph-1B; the released loss is {self.actual:.4f}: "
            f"off by {100 * self.relative_error:+.2f}%, {verdict} the paper's fit set B "
            f"({100 * self.reference_error:+.2f}% with its own runs).",
        ]
        lines += [f"The fit warns: {warning}" for warning in self.fit.warnings]
        if self.fit.warnings and better:
            lines.append("Close, but by luck: the warnings say the data do not determine the law's parameters, so "
                         "the same fit can be far off at another size or budget. One prediction is a small test.")
        return "\n".join(lines)


def _run_flops(runs: pd.DataFrame) -> np.ndarray:
    return 6.0 * runs["N"].to_numpy(float) * runs["D"].to_numpy(float)


def score_plan(chosen: Sequence[str], *, budget: float = PLAN_BUDGET_FLOPS, runs: pd.DataFrame | None = None,
               law: str = "inference-efficient", variant: str = "tied", target: str = PLAN_TARGET) -> PlanScore:
    """Fit ``law`` to the ``chosen`` runs and score its prediction of ``target`` against the released loss.

    Raises
    ------
    MorphError
        With one sentence saying what to change: a run that does not exist or is one of the 1B
        test runs, fewer runs than the law has free parameters plus one, or a pick over the budget.
    """
    runs = load_runs() if runs is None else runs
    names = runs["run"].astype(str).to_numpy()
    chosen = list(dict.fromkeys(str(name) for name in chosen))
    unknown = [name for name in chosen if name not in set(names)]
    if unknown:
        raise MorphError(f"no run is called {', '.join(unknown)}; pick from the table's run column")
    if target not in set(names):
        raise MorphError(f"the table has no run {target!r} to predict")
    test = set(names[runs["size_label"].astype(str).to_numpy() == "1B"]) if "size_label" in runs.columns else {target}
    held = [name for name in chosen if name in test | {target}]
    if held:
        raise MorphError(f"{', '.join(held)} is a 1B run, what the law must predict; pick among the smaller runs")
    mask = np.isin(names, chosen)
    flops = float(_run_flops(runs)[mask].sum())
    if flops > budget:
        dearest = runs[mask].assign(C=_run_flops(runs)[mask]).sort_values("C").iloc[-1]
        raise MorphError(f"the {len(chosen)} runs chosen cost {_flops_text(flops)}, {flops / budget - 1:.0%} over the "
                         f"budget of {_flops_text(budget)}; drop a run (the dearest is {dearest['run']}, "
                         f"{_flops_text(float(dearest['C']))})")
    needed = len(free_parameters(law, variant)) + 1
    if len(chosen) < needed:
        raise MorphError(f"{len(chosen)} run{'s' if len(chosen) != 1 else ''} cannot pin down the "
                         f"{needed - 1} parameters of the {law} law ({variant}): pick at least {needed}")
    result = fit(runs, law, variant, fit_set=mask)
    row = runs[names == target].iloc[0]
    ratio = float(row["aspect_ratio"]) if "aspect_ratio" in runs.columns else None

    def predict(fitted: FitResult) -> float:
        return float(fitted.law.predict(float(row["N"]), float(row["D"]), ratio if fitted.law.needs_aspect_ratio else None))

    actual = float(row["loss"])
    reference = fit(runs, law, variant, fit_set="in_fit_B") if "in_fit_B" in runs.columns else result
    return PlanScore(chosen, flops, float(budget), predict(result), actual, (predict(reference) - actual) / actual, result)


class RunPlanner(widgets.VBox):
    """Pick runs to train under a compute budget, fit the law to them, and see how well it predicts Morph-1B.

    The runs are the paper's (below 1B), each with its shape, size, tokens per parameter and cost;
    the readout keeps the sum of 6 N D against the budget. *Fit and predict* calls
    :func:`score_plan`: a pick over the budget or too small for the law says so in one sentence.
    """

    def __init__(self, *, budget: float = PLAN_BUDGET_FLOPS, law: str = "inference-efficient",
                 variant: str = "tied") -> None:
        self.runs_table = load_runs()
        self.budget, self.law, self.variant = float(budget), law, variant
        small = self.runs_table[self.runs_table["size_label"].astype(str) != "1B"]
        small = small.assign(C=_run_flops(small)).sort_values(["C", "run"])
        options = [(f"{r.run}: {int(r.n_layers)}x{int(r.d_model)}, N = {int(r.N):,}, {r.budget_label}, "
                    f"{_flops_text(r.C)}", str(r.run)) for r in small.itertuples()]
        self.cost = dict(zip(small["run"].astype(str), small["C"]))
        self.prompt = widgets.HTML(
            f"<div class='morph-question'>You may spend {html.escape(_flops_text(self.budget))} of training "
            "compute. Which runs would you train to fit the law and predict Morph-1B's loss? Pick runs "
            "(Ctrl or Shift to pick several), then press <b>Fit and predict</b>.</div>")
        self.pick = widgets.SelectMultiple(options=options, value=(), rows=12,
                                           layout=widgets.Layout(width="100%", max_width="640px"))
        self.spent = widgets.HTML()
        self.button = widgets.Button(description="Fit and predict", button_style="primary",
                                     layout=widgets.Layout(width="140px"))
        self.messages = MessageBar()
        self.feedback = widgets.HTML()
        self.score: PlanScore | None = None
        self.submit = guarded(self.messages)(self._submit)
        self.button.on_click(lambda _button: self.submit())
        self.pick.observe(lambda _change: self._write_spent(), names="value")
        self._write_spent()
        super().__init__([self.prompt, self.pick, widgets.HBox([self.spent, self.button]), self.messages, self.feedback])
        self.add_class("morph-exercise")

    def _write_spent(self) -> None:
        spent = sum(self.cost[name] for name in self.pick.value)
        over = " <b style='color:#b42318'>over the budget</b>" if spent > self.budget else ""
        self.spent.value = (f"<div style='margin-right:12px'>{len(self.pick.value)} runs, "
                            f"{html.escape(_flops_text(spent))} of {html.escape(_flops_text(self.budget))} "
                            f"({spent / self.budget:.0%}){over}</div>")

    def _submit(self) -> PlanScore:
        self.feedback.value = ""
        self.score = score_plan(self.pick.value, budget=self.budget, runs=self.runs_table, law=self.law,
                                variant=self.variant)
        lines = "".join(f"<div>{html.escape(line)}</div>" for line in self.score.message().splitlines())
        self.feedback.value = f"<div class='morph-feedback'>{lines}</div>"
        return self.score
