"""The headline numbers the lessons, the tour and the README quote, each with what it compares.

One place for every number a page states as a claim, so that no two pages tell
it differently. Each is either the paper's own (with its source) or computed
here from the shipped data with the same code the dashboard runs: the paper's
2 s selection (:func:`paper_selection`) ranks the authors' 15 candidate shapes
with the ``bian2025`` law and assesses the ranking with the decision layer's
joint draws (:func:`morph.decision.assess`), so a loss band or a probability
of being best is the dashboard's, never a second estimate.

:func:`headlines` gathers them as a dict of name to :class:`Headline`: the
value, the text pages print, and what the number compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["Headline", "PAPER_SAME_SIZE_SPEEDUP", "MORPH_1B_TOKENS", "headlines", "paper_selection",
           "published_speedup", "candidate_span"]

PAPER_SAME_SIZE_SPEEDUP = 3.5
"""The paper's "up to 3.5x": the largest latency ratio it measured between models with the same
parameter count and different shapes (Bian et al. 2025, section 1; no raw timings were published)."""

MORPH_1B_TOKENS = 28_991_029_248
"""Training tokens of the paper's 1B models (``morph_runs.csv``): the token budget of the 2 s selection."""

PAPER_LATENCY_BUDGET_S = 2.0
"""The paper's latency budget for the 1B selection (A100 40GB, batch 1, 128 in, 256 out)."""


@dataclass(frozen=True)
class Headline:
    """One claim: its value, the words pages print, and what it compares."""

    value: Any
    text: str
    compares: str


def published_speedup() -> dict[str, float]:
    """Morph-1B against Open-LM-1B from the published timings (``models_1b_eval.csv``).

    Returns ``{"open_s", "morph_s", "speedup", "open_N", "morph_N"}``: the two models are
    not of equal size (24x2048 has 1.44B parameters, 12x3072 1.67B).
    """
    from .data import load_models_1b
    from .shapes import parameter_count

    models = load_models_1b().set_index("model")
    open_lm, morph = models.loc["Open-LM-1B"], models.loc["Morph-1B"]
    return {
        "open_s": float(open_lm["latency_s"]), "morph_s": float(morph["latency_s"]),
        "speedup": float(open_lm["latency_s"]) / float(morph["latency_s"]),
        "open_N": float(parameter_count(int(open_lm["n_layers"]), int(open_lm["d_model"]))),
        "morph_N": float(parameter_count(int(morph["n_layers"]), int(morph["d_model"]))),
    }


@lru_cache(maxsize=1)
def paper_selection() -> tuple[Any, Any]:
    """The paper's 2 s selection and its assessment: what the dashboard shows with its default settings.

    The 15 candidate shapes at the 1B models' token count, the ``bian2025`` law, the A100 40GB
    under eager Hugging Face generate (batch 1, 128 in, 256 out), a 2 s budget, the top 3; loss
    bands and probabilities from the decision layer's joint draws with the law's re-derived fit.
    """
    from .data import load_candidates
    from .decision import assess, fit_range, preset_fit
    from .frontier import candidates_from_table, evaluate_candidates, select

    candidates = candidates_from_table(load_candidates(), tokens=MORPH_1B_TOKENS)
    evaluation = evaluate_candidates(candidates, "bian2025")
    selection = select(evaluation, PAPER_LATENCY_BUDGET_S, 3)
    assessment = assess(selection, fit_range("bian2025"), fit_result=preset_fit("bian2025"))
    return selection, assessment


def candidate_span() -> dict[str, float]:
    """The 15 candidates' parameter range and predicted latency range (A100 40GB, eager, batch 1)."""
    selection, _ = paper_selection()
    c, latency = selection.evaluation.candidates, selection.evaluation.latency_s
    return {"N_min": float(c.N.min()), "N_max": float(c.N.max()),
            "latency_min_s": float(latency.min()), "latency_max_s": float(latency.max()),
            "latency_ratio": float(latency.max() / latency.min())}


def _row(selection: Any, assessment: Any, shape: tuple[int, int]) -> dict[str, float]:
    c = selection.evaluation.candidates
    match = np.flatnonzero((c.n_layers == shape[0]) & (c.d_model == shape[1]))[0]
    columns = assessment.columns
    return {"loss": float(selection.evaluation.loss[match]), "loss_low": float(columns["loss_low"][match]),
            "loss_high": float(columns["loss_high"][match]), "p_best": float(columns["probability_best"][match]),
            "p_within": float(columns["probability_within_budget"][match])}


def _shared(selection: Any, assessment: Any, shapes: list[tuple[int, int]]) -> dict[str, float]:
    """How two shapes' losses move together over the decision layer's draws (the law's error is shared)."""
    from .decision import loss_draws, preset_fit

    c = selection.evaluation.candidates
    index = [int(np.flatnonzero((c.n_layers == L) & (c.d_model == d))[0]) for L, d in shapes]
    drawn = loss_draws(preset_fit("bian2025"), c.N[index].astype(np.float64), c.D[index], c.aspect_ratio[index],
                       n=assessment.n_draws)
    gap = drawn[:, 1] - drawn[:, 0]
    low, high = np.quantile(gap, [0.025, 0.975])
    return {"beats": float(np.mean(gap > 0)), "gap_low": float(low), "gap_high": float(high)}


def _billions(n: float) -> str:
    return f"{n / 1e9:.2f}B"


@lru_cache(maxsize=1)
def headlines() -> dict[str, Headline]:
    """Every headline number, by name (see the module's docstring)."""
    published = published_speedup()
    span = candidate_span()
    selection, assessment = paper_selection()
    first, second = selection.selected.iloc[0], selection.selected.iloc[1]
    best = _row(selection, assessment, (int(first["n_layers"]), int(first["d_model"])))
    runner_up = _row(selection, assessment, (int(second["n_layers"]), int(second["d_model"])))
    runner_label = f"{int(second['n_layers'])}x{int(second['d_model'])}"
    shared = _shared(selection, assessment, [(int(r["n_layers"]), int(r["d_model"])) for r in (first, second)])
    return {
        "paper_same_size": Headline(
            PAPER_SAME_SIZE_SPEEDUP, "up to 3.5x",
            "the largest latency ratio the paper measured between two models with the same parameter count"),
        "morph_1b_speedup": Headline(
            published["speedup"], f"{published['speedup']:.2f}x",
            f"Morph-1B (12x3072, {_billions(published['morph_N'])}) against Open-LM-1B (24x2048, "
            f"{_billions(published['open_N'])}): {published['morph_s']:.2f} s against {published['open_s']:.2f} s, "
            "published, A100 40GB, batch 1"),
        "candidates_N": Headline(
            (span["N_min"], span["N_max"]), f"{_billions(span['N_min'])}-{_billions(span['N_max'])}",
            "the parameter counts of the paper's 15 candidate shapes"),
        "candidates_latency_ratio": Headline(
            span["latency_ratio"], f"{span['latency_ratio']:.1f}x",
            f"the slowest against the fastest of the 15 candidates as predicted ({span['latency_min_s']:.2f} s to "
            f"{span['latency_max_s']:.2f} s); they differ in size too"),
        "morph_1b_loss_band": Headline(
            (best["loss_low"], best["loss_high"]), f"[{best['loss_low']:.4f}, {best['loss_high']:.4f}]",
            "the central 95% of Morph-1B's predicted loss over the decision layer's joint draws"),
        "morph_1b_p_best": Headline(
            best["p_best"], f"{best['p_best']:.3g}",
            "the share of joint draws in which Morph-1B has the lowest loss among the shapes within 2 s"),
        "morph_1b_p_within": Headline(
            best["p_within"], f"{best['p_within']:.3g}",
            "the share of joint draws in which Morph-1B answers within 2 s (the latency's spread is shared too)"),
        "runner_up_p_best": Headline(
            runner_up["p_best"], f"{runner_up['p_best']:.3g}",
            f"the same share for the runner-up under 2 s, {runner_label}"),
        "runner_up_shape": Headline(runner_label, runner_label, "the second shape of the 2 s selection"),
        "morph_1b_beats_runner_up": Headline(
            shared["beats"], f"{shared['beats']:.0%}",
            f"the share of the law's joint draws in which Morph-1B's predicted loss is below {runner_label}'s"),
        "top_two_gap_band": Headline(
            (shared["gap_low"], shared["gap_high"]), f"[{shared['gap_low']:.4f}, {shared['gap_high']:.4f}]",
            f"the central 95% of {runner_label}'s loss minus Morph-1B's over the same draws"),
        "top_two_gap": Headline(
            runner_up["loss"] - best["loss"], f"{runner_up['loss'] - best['loss']:.4f}",
            f"{runner_label}'s predicted loss minus Morph-1B's (nats/token)"),
    }
