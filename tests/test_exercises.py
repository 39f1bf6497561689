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


# -- the open task: runs chosen under a compute budget, a law fitted, Morph-1B predicted -----------

import csv  # noqa: E402
from pathlib import Path  # noqa: E402

from morph import MorphError, preset  # noqa: E402
from morph.app.exercises import PLAN_BUDGET_FLOPS, RunPlanner, score_plan  # noqa: E402

RUNS_CSV = Path(__file__).resolve().parents[1] / "data" / "morph_runs.csv"


@pytest.fixture(scope="module")
def table() -> list[dict]:
    with RUNS_CSV.open(encoding="utf-8") as f:  # read here, not through morph.load_runs
        return [row for row in csv.DictReader(line for line in f if not line.startswith("#"))]


def _flops(rows) -> float:
    return sum(6.0 * float(r["N"]) * float(r["D"]) for r in rows)


def test_the_papers_fit_set_b_fits_the_budget_and_reproduces_the_published_prediction(table):
    fit_b = [r for r in table if r["in_fit_B"] == "1"]
    assert len(fit_b) == 27 and _flops(fit_b) <= PLAN_BUDGET_FLOPS < 1.01 * _flops(fit_b)  # the budget is fit B's
    score = score_plan([r["run"] for r in fit_b])
    morph_1b = next(r for r in table if r["run"] == "1B_v8@20N")
    assert (morph_1b["n_layers"], morph_1b["d_model"]) == ("12", "3072") and score.actual == float(morph_1b["loss"])
    assert score.flops == pytest.approx(_flops(fit_b), rel=1e-12)
    # The paper's published fit-B parameters predict the same loss (to its 5 significant digits of A, B, alpha).
    N, D, R = float(morph_1b["N"]), float(morph_1b["D"]), 3072 / 12
    assert score.prediction == pytest.approx(float(preset("bian2025").predict(N, D, R)), abs=2e-4)
    assert score.relative_error == pytest.approx(score.reference_error, abs=1e-12)


def test_a_plans_prediction_is_its_own_fitted_law_written_out(table):
    chosen = [r for r in table if r["size_label"] in ("80M", "116M") and r["budget_label"] in ("20N", "160N")]
    assert _flops(chosen) < PLAN_BUDGET_FLOPS
    score = score_plan([r["run"] for r in chosen])
    p = score.fit.params
    N, D, R = 1_668_885_504, 28_991_029_248, 256.0  # Morph-1B as the table gives it
    law = (p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]) * (1 + p["eps"] * R ** p["gamma"])
    assert score.prediction == pytest.approx(law, rel=1e-12)
    assert score.fit.n_fit == len(chosen)
    assert "Your law predicts" in score.message() and f"{len(chosen)} runs" in score.message()


def test_a_pick_over_the_budget_or_too_small_says_what_to_change(table):
    twenty = [r["run"] for r in table if r["budget_label"] == "20N" and r["size_label"] != "1B"]
    with pytest.raises(MorphError, match=r"over the budget of 1\.2e20 FLOPs; drop a run \(the dearest is 339M_v1@20N"):
        score_plan(twenty)
    with pytest.raises(MorphError, match="cannot pin down the 5 parameters .* pick at least 6"):
        score_plan(twenty[:5])
    with pytest.raises(MorphError, match="1B run, what the law must predict"):
        score_plan(twenty[:6] + ["1B_v1@20N"])
    with pytest.raises(MorphError, match="no run is called nope"):
        score_plan(["nope"])


def test_a_fit_with_warnings_is_called_lucky_when_it_comes_close(table):
    fit_a = [r["run"] for r in table if r["in_fit_A"] == "1"]
    score = score_plan(fit_a)
    assert score.fit.warnings and abs(score.relative_error) <= abs(score.reference_error)
    assert "by luck" in score.message()


def test_the_planner_keeps_the_sum_and_shows_errors_in_one_sentence():
    planner = RunPlanner()
    assert len(planner.pick.options) == 72  # every run below 1B
    first = [value for _label, value in planner.pick.options[:3]]
    planner.pick.value = tuple(first)
    assert "3 runs" in planner.spent.value and "over the budget" not in planner.spent.value
    assert planner.submit() is None and "pick at least 6" in planner.messages.value and planner.feedback.value == ""
    planner.pick.value = tuple(value for _label, value in planner.pick.options[:20])
    score = planner.submit()
    assert score is not None and planner.messages.level is None and "Your law predicts" in planner.feedback.value


def test_a_reveal_keeps_its_content_closed_and_escaped():
    import pandas as pd

    from morph.app.teaching import reveal

    closed = reveal("Answer <now>", ["A < 0 is not physical"], note="x & y")
    page = closed._repr_html_()
    assert page.startswith('<details class="morph-answer"><summary><b>Answer &lt;now&gt;</b></summary>')
    assert "<details open" not in page and "A &lt; 0 is not physical" in page and "<p>x &amp; y</p>" in page
    table = reveal("Table", pd.DataFrame({"<b>k</b>": [1]}))._repr_html_()
    assert "&lt;b&gt;k&lt;/b&gt;" in table and "<b>k</b>" not in table
