"""What a selection can honestly claim: bands and probabilities from one set of joint draws, feasibility, validity.

:func:`morph.frontier.select` ranks candidates by predicted loss under a
latency budget. This module says how sure that ranking is, from one set of
:data:`~morph.latency.uncertainty.DRAWS` seeded joint draws: draw ``d`` pairs
the law's ``d``-th parameter draw (bootstrap refits, else the fit's
covariance) with the latency calibration's ``d``-th coefficient draw
(:mod:`morph.latency.uncertainty`), and applies both to every shape, so the
uncertainty the shapes share stays shared:

- **bands**: each shown shape's loss and latency bands (central 95%);
- **probability within the budget**: the share of draws in which the shape
  meets the budget;
- **probability of being best**: the share of draws in which it has the
  lowest loss among the shapes that meet the budget *in that draw* (a draw in
  which none does has no best, so these sum to the probability that some
  shape meets the budget); shapes at or above :data:`PLAUSIBLE` are
  *plausibly best*;
- **what depends on a prior**: where a ranking or a budget verdict changes
  across a prior's range (the per-layer device cost of a graph-captured
  stack), one sentence says so;
- **feasibility**: weights plus key/value cache against device memory
  (:mod:`morph.latency.memory`);
- **validity**: warnings where candidates leave the range of the runs the
  law was fitted on (parameters, tokens per parameter, aspect ratio).

A published preset comes without its fit's uncertainty: its loss bands are
None and a warning says so, unless the caller passes the preset's re-derived
fit (:func:`preset_fit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .data import load_runs
from .draws import PLAUSIBLE, POOL_MAX, budget_draws, joint_columns, loss_draws
from .fitcache import cached_fit
from .fitting import FitResult
from .frontier import Selection
from .laws import PRESETS, REFERENCE_ASPECT_RATIO, ScalingLaw
from .latency.memory import serving_memory
from .latency.serving import metric_meets
from .latency.uncertainty import DRAWS, LEVEL, SEED, coefficient_draws, prior_ends, prior_phrase, uncertainty_of

__all__ = [
    "FitRange",
    "Assessment",
    "POOL_MAX",
    "fit_range",
    "preset_fit",
    "prepare_preset_fits",
    "BOOTSTRAP",
    "range_warnings",
    "loss_draws",
    "assess",
    "infeasible_reasons",
    "compute_optima",
    "PLAUSIBLE",
]

BOOTSTRAP = 200
"""Bootstrap refits behind a preset's loss band (the dashboard's default)."""

# Hoffmann et al. 2022, abstract: "over 400 language models ranging from 70 million to over 16 billion
# parameters on 5 to 500 billion tokens". Besiroglu et al. 2024 refit the same runs.
_CHINCHILLA_RUNS = {"N": (7e7, 1.6e10), "D": (5e9, 5e11)}


@dataclass(frozen=True)
class FitRange:
    """The range of the runs a law was fitted on; None where unknown.

    Attributes
    ----------
    N : (float, float)
        Parameters (smallest, largest).
    D : (float, float) or None
        Training tokens.
    tokens_per_parameter : (float, float) or None
        ``D / N``.
    aspect_ratio : (float, float) or None
        ``d_model / n_layers``.
    source : str
        Which runs.
    tested_N : float, optional
        Largest N the law's authors checked it on outside the fit set.
    """

    N: tuple[float, float]
    D: tuple[float, float] | None
    tokens_per_parameter: tuple[float, float] | None
    aspect_ratio: tuple[float, float] | None
    source: str
    tested_N: float | None = None


def _span(values: Any) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    return float(np.min(array)), float(np.max(array))


def _range_of(runs: pd.DataFrame, source: str, tested: pd.DataFrame | None = None) -> FitRange:
    ratio = runs["aspect_ratio"] if "aspect_ratio" in runs and runs["aspect_ratio"].notna().all() else None
    return FitRange(
        N=_span(runs["N"]), D=_span(runs["D"]), tokens_per_parameter=_span(runs["D"] / runs["N"]),
        aspect_ratio=None if ratio is None else _span(ratio), source=source,
        tested_N=None if tested is None else float(tested["N"].max()),
    )


def fit_range(law: str | FitResult | Any) -> FitRange | None:
    """The runs behind ``law``: a fit's own fit set, a preset's published runs; None when unknown."""
    if isinstance(law, FitResult):
        runs = law.data[np.asarray(law.fit_mask, dtype=bool)]
        return _range_of(runs, f"the {len(runs)} runs of the fit")
    if isinstance(law, str) and law.startswith("bian2025"):
        runs = load_runs()
        fit_b = runs[runs["in_fit_B"] == 1]
        return _range_of(fit_b, f"the paper's {len(fit_b)} runs of fit set B", tested=runs)
    if isinstance(law, str) and law in ("hoffmann2022", "besiroglu2024"):
        return FitRange(N=_CHINCHILLA_RUNS["N"], D=_CHINCHILLA_RUNS["D"], tokens_per_parameter=None,
                        aspect_ratio=None, source="Hoffmann et al.'s 400+ runs (70M-16B parameters, 5B-500B tokens)")
    return None


def preset_fit(name: str, bootstrap: int = BOOTSTRAP, seed: int = 0) -> FitResult | None:
    """The fit behind a Bian et al. preset, re-derived on fit set B (None for other presets).

    The re-derived parameters agree with the preset's (the tests check it),
    so the fit gives the preset's uncertainty: bootstrap refits when
    ``bootstrap > 0``, else the covariance of the paper's curve_fit. The
    fit is computed once per machine and then read from
    :mod:`morph.fitcache`.
    """
    if name not in PRESETS or not name.startswith("bian2025"):
        return None
    entry = PRESETS[name]
    return cached_fit(entry.law.family, entry.variant, method="paper", fit_set="in_fit_B",
                      bootstrap=bootstrap, seed=seed)


def prepare_preset_fits(bootstrap: int = BOOTSTRAP) -> list[str]:
    """Compute and store the fit behind every Bian et al. preset (what a dashboard page reads); their names."""
    names = [name for name in PRESETS if name.startswith("bian2025")]
    for name in names:
        preset_fit(name, bootstrap=bootstrap)
    return names


def range_warnings(N: NDArray, D: NDArray, ratio: NDArray, runs: FitRange | None) -> tuple[NDArray[np.bool_], list[str]]:
    """Which candidates lie inside the law's runs, and one sentence per quantity that leaves them."""
    inside = np.ones(np.shape(N), dtype=bool)
    if runs is None:
        return inside, ["The law's fit set is unknown, so no candidate can be checked against its range."]
    notes = []
    # Training tokens on their own only where tokens per parameter is unknown: D = N x (D / N).
    checks = [("parameters N", N, runs.N),
              ("training tokens D", D, runs.D if runs.tokens_per_parameter is None else None),
              ("tokens per parameter", D / N, runs.tokens_per_parameter), ("aspect ratio", ratio, runs.aspect_ratio)]
    for name, values, span in checks:
        if span is None:
            continue
        out = (values < span[0] * (1 - 1e-9)) | (values > span[1] * (1 + 1e-9))
        inside &= ~out
        if out.any():
            notes.append(
                f"{int(out.sum())} of {out.size} candidates have {name} outside {span[0]:.3g}-{span[1]:.3g}, the "
                f"range of {runs.source} (values {np.min(values):.3g}-{np.max(values):.3g}): an extrapolation."
                + (f" The paper checked the law on runs up to N = {runs.tested_N:.3g}."
                   if name == "parameters N" and runs.tested_N else "")
            )
    return inside, notes


@dataclass
class Assessment:
    """Per-candidate bands and probabilities for the shapes a selection shows, and warnings.

    ``columns`` maps a column name to an array over all candidates of the
    evaluation (NaN or None where not computed). ``draws`` describes the
    joint draws: their number and seed, the pool they were computed on and
    the deepest rank (by predicted loss) at which a draw's best was found.
    """

    columns: dict[str, NDArray]
    warnings: list[str] = field(default_factory=list)
    stack: str = ""
    n_draws: int = 0
    runs: FitRange | None = None
    latency_basis: str = ""
    draws: dict[str, Any] = field(default_factory=dict)
    probability_any_within_budget: float | None = None
    prior_dependence: str | None = None

    def annotate(self, frame: pd.DataFrame, index: NDArray) -> pd.DataFrame:
        """``frame`` (rows of ``index``) with the assessment's columns added."""
        out = frame.copy()
        for name, values in self.columns.items():
            out[name] = [_plain(v) for v in np.asarray(values, dtype=object)[np.asarray(index, dtype=np.int64)]]
        return out

    def update(self, payload: dict[str, Any], selection: Selection) -> dict[str, Any]:
        """Add the columns to a :meth:`Selection.to_dict` payload's ``selected`` and ``frontier``, and the summary."""
        for key, index in (("selected", selection.selected_index), ("frontier", selection.frontier_index)):
            for row, i in zip(payload[key], np.asarray(index)):
                row.update({name: _plain(values[i]) for name, values in self.columns.items()})
        payload["warnings"] = list(self.warnings)
        payload["stack"] = self.stack
        payload["latency_basis"] = self.latency_basis
        payload["draws"] = dict(self.draws)
        payload["plausibly_best_threshold"] = PLAUSIBLE
        payload["probability_any_within_budget"] = self.probability_any_within_budget
        payload["prior_dependence"] = self.prior_dependence
        best = self.columns.get("probability_best")
        if best is not None:
            # Every shape with a chance of being best, so the probabilities can be checked to add up.
            contenders = np.flatnonzero(np.nan_to_num(np.asarray(best, dtype=np.float64)) > 0)
            contenders = contenders[np.argsort(-np.asarray(best, dtype=np.float64)[contenders], kind="stable")]
            frame = selection.evaluation.to_frame(contenders)[["label", "n_layers", "d_model", "N", "loss", "latency_s"]]
            payload["contenders"] = [
                {**{k: _plain(v) for k, v in row.items()},
                 **{name: _plain(self.columns[name][i]) for name in ("probability_best", "probability_within_budget",
                                                                     "plausibly_best", "loss_low", "loss_high",
                                                                     "latency_low_s", "latency_high_s")}}
                for i, row in zip(contenders, frame.to_dict(orient="records"))
            ]
        return payload


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value.item() if hasattr(value, "item") else value


def assess(
    selection: Selection,
    runs: FitRange | None = None,
    level: float = LEVEL,
    fit_result: FitResult | None = None,
    draws: int = DRAWS,
    seed: int = SEED,
) -> Assessment:
    """Bands, probabilities, feasibility and validity for a selection, from one set of joint draws.

    Parameters
    ----------
    selection : Selection
        Its evaluation's fit (when the law came from one) gives the loss draws.
    runs : FitRange, optional
        The law's runs (default: :func:`fit_range` of the evaluation's fit,
        else of its preset name).
    level : float
        Level of the loss and latency bands (0 < level < 1).
    fit_result : FitResult, optional
        The fit whose draws give the loss bands (default: the evaluation's
        own); e.g. a preset's re-derived fit (:func:`preset_fit`) while the
        evaluation keeps the preset's published digits.
    draws, seed : int
        Number and seed of the joint draws.
    """
    evaluation = selection.evaluation
    c = evaluation.candidates
    n = len(evaluation)
    fit_result = fit_result if fit_result is not None else evaluation.fit
    if runs is None:
        runs = fit_range(fit_result if fit_result is not None else evaluation.law)
    workload = evaluation.workload
    calibration = workload.resolved_calibration()
    spread = uncertainty_of(calibration, workload.device)
    drawn = coefficient_draws(calibration, workload.device, draws, seed)
    memory_gb = (evaluation.memory_gb if evaluation.memory_gb is not None
                 else serving_memory(c.n_layers, c.d_model, c.n_heads, workload=workload).memory_gb)
    inside, warnings = range_warnings(c.N.astype(np.float64), c.D, c.aspect_ratio, runs)
    columns: dict[str, NDArray] = {
        "memory_gb": memory_gb, "feasible": evaluation.feasible,
        "infeasible_reason": _reasons(selection), "in_fit_range": inside,
        "ttft_s": evaluation.metric("ttft_s"), "tokens_per_s": evaluation.metric("tokens_per_s"),
    }
    if selection.price_per_gpu_hour is not None:
        columns["cost_per_million_tokens"] = evaluation.metric("cost_per_million_tokens", selection.price_per_gpu_hour)
    joint = joint_columns(selection, fit_result, drawn, level, columns)
    joint["draws"]["seed"] = seed
    if spread.basis == "transfer":
        warnings.insert(0, f"Latency uses coefficients made on {calibration.hardware}, transferred to "
                           f"{workload.hardware_name}: {spread.reasoning}.")
    dependence = _prior_dependence(selection, calibration, columns)
    if dependence:
        warnings.insert(0, dependence)
    if int((~evaluation.loss_valid).sum()):
        warnings.append(f"The law predicts a non-positive loss for {int((~evaluation.loss_valid).sum())} of {n} "
                        "candidates: they are infeasible (the law is used outside the range it holds).")
    if not evaluation.fits_memory.all():
        warnings.append(f"{int((~evaluation.fits_memory).sum())} of {n} candidates do not fit in the "
                        f"{workload.hardware_name}'s {workload.device.memory_gb:g} GB (weights plus KV cache).")
    if joint.get("invalid_loss_draws"):
        warnings.append(f"In {joint['invalid_loss_draws']} of {draws} draws the law predicts a non-positive loss for "
                        "some shown shape; there those shapes count as infeasible (the draws are kept, not dropped).")
    odd = _non_physical_draws(fit_result, draws)
    if odd:
        warnings.append(f"{odd} of {draws} draws of the law have a non-physical parameter (A, B, alpha or beta not "
                        "positive: loss not falling with size or data); they are kept, so the bands and "
                        "probabilities include the shapes they favour.")
    if fit_result is None:
        warnings.append("The law is a published parameter set without its fit's uncertainty: no loss bands or "
                        "probabilities of being best (fit the law, or use a bian2025 preset's re-derived fit).")
    elif fit_result.bootstrap_params is None:
        warnings.append("Loss draws come from the fit's covariance, which this law's correlated parameters make "
                        "unreliable; bootstrap refits give better ones.")
    return Assessment(columns, warnings, workload.stack_name, draws, runs, spread.basis, joint["draws"],
                      joint["any_within"], dependence)


def _non_physical_draws(fit_result: FitResult | None, draws: int) -> int:
    """How many of the law's draws have ``A``, ``B``, ``alpha`` or ``beta`` not positive."""
    if fit_result is None:
        return 0
    samples = fit_result.parameter_samples()
    samples = samples[np.arange(draws) % len(samples)]
    names = list(fit_result.law.parameter_names())
    columns = [names.index(name) for name in ("A", "B", "alpha", "beta")]
    return int(np.sum(np.any(samples[:, columns] <= 0, axis=1)))


def _reasons(selection: Selection) -> NDArray:
    """A sentence for each shown shape that cannot be chosen (None elsewhere).

    A view that shows more infeasible shapes words theirs with :func:`infeasible_reasons`.
    """
    evaluation = selection.evaluation
    explained = np.union1d(selection.selected_index, selection.frontier_index)
    reasons = np.full(len(evaluation), None, dtype=object)
    reasons[explained] = infeasible_reasons(evaluation, explained)
    return reasons


def infeasible_reasons(evaluation: Any, index: NDArray[np.int64]) -> list[str | None]:
    """Why each candidate of ``index`` cannot be chosen (None for those that can).

    Memory (weights plus key/value cache against the device's), or a law
    that predicts a non-positive loss there.
    """
    index = np.asarray(index, dtype=np.int64)
    reasons: list[str | None] = [None] * index.size
    bad = np.flatnonzero(~evaluation.feasible[index])
    if bad.size:
        c = evaluation.candidates.take(index[bad])
        memory = serving_memory(c.n_layers, c.d_model, c.n_heads, workload=evaluation.workload)
        for k, text in zip(bad.tolist(), memory.reasons()):
            reasons[k] = text or None
    for k in np.flatnonzero(~evaluation.loss_valid[index]).tolist():
        reasons[k] = (f"the law predicts a non-positive loss ({evaluation.loss[index[k]]:.3g}): it is used outside "
                      "the range it holds")
    return reasons


def _prior_dependence(selection: Selection, calibration: Any, columns: dict) -> str | None:
    """One sentence when the best shape or its budget verdict changes across the latency prior's range."""
    evaluation = selection.evaluation
    device = evaluation.workload.device
    ends = prior_ends(calibration, device)
    if ends is None:
        return None
    shown = np.flatnonzero(np.isfinite(columns["probability_within_budget"]))
    verdicts, best = [], []
    for end in ends:
        values, _ = budget_draws(selection, shown, end)
        meets = metric_meets(selection.budget_metric, values[0], selection.latency_budget_s) & evaluation.feasible[shown]
        verdicts.append(meets)
        best.append(int(shown[meets][np.argmin(evaluation.loss[shown][meets])]) if meets.any() else None)
    stack = evaluation.workload.stack_name
    phrase = prior_phrase(calibration, device)
    labels = evaluation.candidates.labels
    if best[0] != best[1]:
        ends = []
        for b, end in zip(best, ("low", "high")):
            if b is None:
                ends.append(f"no shape meets the budget at the prior's {end} end")
            else:
                p = columns["probability_best"][b]
                chance = f" (probability of being best {p:.2f})" if np.isfinite(p) else ""
                ends.append(f"{labels(b)} is best at the prior's {end} end{chance}")
        return f"Under {stack}, {ends[0]} and {ends[1]}: the answer depends on {phrase}."
    top = int(selection.selected_index[0])
    at = np.flatnonzero(shown == top)
    if at.size and verdicts[0][at[0]] != verdicts[1][at[0]]:
        p = columns["probability_within_budget"][top]
        return (f"Under {stack}, whether {labels(top)} meets the budget (probability {p:.2f}) depends on {phrase}.")
    return None


def compute_optima(selection: Selection, flops: float, law: ScalingLaw) -> dict[str, Any]:
    """Where the optima lie for a training budget of ``flops``.

    ``compute_optimal``: the law's closed-form allocation (the centre of the
    compute-mode candidates); ``chinchilla_optimal``: Hoffmann et al.'s
    (approach 3) allocation for the same budget; ``best_shape``: the candidate
    of least predicted loss that fits in memory, whatever its latency;
    ``latency_constrained``: the best within the budget (rank 1), with the loss
    it gives up against ``best_shape``.
    """
    evaluation = selection.evaluation
    ratio = REFERENCE_ASPECT_RATIO if law.needs_aspect_ratio else None
    optimum = law.compute_optimal(flops, ratio)
    chinchilla = PRESETS["hoffmann2022"].law.compute_optimal(flops)
    feasible = np.flatnonzero(evaluation.feasible)
    best = int(feasible[np.argmin(evaluation.loss[feasible])])
    chosen = int(selection.selected_index[0])

    def shape(i: int) -> dict[str, Any]:
        return {"label": str(evaluation.candidates.labels(i)), "N": float(evaluation.candidates.N[i]),
                "D": float(evaluation.candidates.D[i]), "loss": float(evaluation.loss[i]),
                "latency_s": float(evaluation.latency_s[i])}

    return {
        "flops": float(flops),
        "compute_optimal": {"N": float(optimum.N), "D": float(optimum.D),
                            "tokens_per_parameter": float(optimum.tokens_per_parameter)},
        "chinchilla_optimal": {"N": float(chinchilla.N), "D": float(chinchilla.D),
                               "tokens_per_parameter": float(chinchilla.tokens_per_parameter),
                               "law": "hoffmann2022"},
        "best_shape": shape(best),
        "latency_constrained": {**shape(chosen), "loss_penalty": float(evaluation.loss[chosen] - evaluation.loss[best])},
    }
