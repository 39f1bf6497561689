"""What a selection can honestly claim: loss and latency bands, ties, feasibility, validity.

:func:`morph.frontier.select` ranks candidates by predicted loss under a
latency budget. This module says how sure that ranking is:

- **loss bands and ties**: each candidate's loss under every draw of the
  law's parameters (bootstrap refits, else the fit's covariance); its band,
  its probability of being the best of the candidates within the budget, and
  whether its band overlaps the best one's (*tied with the best*);
- **latency bands**: the workload's calibration error as a band, and the
  probability that each shape meets the budget;
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
from .fitcache import cached_fit
from .fitting import FitResult
from .frontier import Selection
from .laws import PRESETS, ScalingLaw
from .latency.memory import serving_memory
from .latency.serving import SERVING_METRICS, metric_meets
from .latency.stacks import latency_band, probability_within

__all__ = [
    "FitRange",
    "Assessment",
    "POOL",
    "fit_range",
    "preset_fit",
    "prepare_preset_fits",
    "BOOTSTRAP",
    "range_warnings",
    "loss_draws",
    "assess",
    "compute_optima",
]

BOOTSTRAP = 200
"""Bootstrap refits behind a preset's loss band (the dashboard's default)."""

POOL = 200
"""Candidates within the budget, best predicted first, among which the best is sought.

A candidate outside the 200 best predictions has a vanishing chance of being
the best; capping the pool keeps the draws at 200 x samples numbers."""

REASONS = 2000
"""At most this many infeasible shapes beyond those shown get a sentence (a view draws no more)."""

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
        return _range_of(runs[runs["in_fit_B"] == 1], "the paper's 27 runs of fit set B", tested=runs)
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


def loss_draws(fit_result: FitResult, N: NDArray, D: NDArray, ratio: NDArray) -> NDArray[np.float64]:
    """Predicted loss under every parameter draw of the fit: shape ``(draws, candidates)``.

    Draws that give a non-finite or non-positive loss anywhere (a covariance
    draw outside the law's domain) are dropped.
    """
    samples = fit_result.parameter_samples()
    names = fit_result.law.parameter_names()
    cls = type(fit_result.law)
    with np.errstate(all="ignore"):
        draws = np.stack([cls.from_values(dict(zip(names, row)), check=False).predict(N, D, ratio) for row in samples])
    keep = np.all(np.isfinite(draws) & (draws > 0), axis=1)
    return draws[keep]


@dataclass
class Assessment:
    """Per-candidate bands and flags for the shapes a selection shows, and warnings.

    ``columns`` maps a column name to an array over all candidates of the
    evaluation (NaN or None where not computed).
    """

    columns: dict[str, NDArray]
    warnings: list[str] = field(default_factory=list)
    stack: str = ""
    n_draws: int = 0
    runs: FitRange | None = None

    def annotate(self, frame: pd.DataFrame, index: NDArray) -> pd.DataFrame:
        """``frame`` (rows of ``index``) with the assessment's columns added."""
        out = frame.copy()
        for name, values in self.columns.items():
            out[name] = [_plain(v) for v in np.asarray(values, dtype=object)[np.asarray(index, dtype=np.int64)]]
        return out

    def update(self, payload: dict[str, Any], selection: Selection) -> dict[str, Any]:
        """Add the columns to a :meth:`Selection.to_dict` payload's ``selected`` and ``frontier``, and the warnings."""
        for key, index in (("selected", selection.selected_index), ("frontier", selection.frontier_index)):
            for row, i in zip(payload[key], np.asarray(index)):
                row.update({name: _plain(values[i]) for name, values in self.columns.items()})
        payload["warnings"] = list(self.warnings)
        payload["stack"] = self.stack
        return payload


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value.item() if hasattr(value, "item") else value


def assess(
    selection: Selection, runs: FitRange | None = None, level: float = 0.95, fit_result: FitResult | None = None
) -> Assessment:
    """Bands, ties, feasibility and validity for a selection.

    Parameters
    ----------
    selection : Selection
        Its evaluation's fit (when the law came from one) gives the loss draws.
    runs : FitRange, optional
        The law's runs (default: :func:`fit_range` of the evaluation's fit,
        else of its preset name).
    level : float
        Level of the loss bands (0 < level < 1).
    fit_result : FitResult, optional
        The fit whose draws give the loss bands (default: the evaluation's
        own); e.g. a preset's re-derived fit (:func:`preset_fit`) while the
        evaluation keeps the preset's published digits.
    """
    evaluation = selection.evaluation
    c = evaluation.candidates
    n = len(evaluation)
    fit_result = fit_result if fit_result is not None else evaluation.fit
    if runs is None:
        runs = fit_range(fit_result if fit_result is not None else evaluation.law)
    workload = evaluation.workload
    error = workload.latency_error()
    low, high = latency_band(evaluation.latency_s, error.relative, evaluation.roofline_s)
    memory = serving_memory(c.n_layers, c.d_model, c.n_heads, workload=workload)
    # Sentences for the shapes a view shows (kept, frontier, and up to REASONS others that do not fit).
    explained = np.union1d(np.union1d(selection.selected_index, selection.frontier_index),
                           np.flatnonzero(~memory.feasible)[:REASONS])
    reasons = np.full(n, None, dtype=object)
    reasons[explained] = [text or None for text in memory.reasons(explained)]
    inside, warnings = range_warnings(c.N.astype(np.float64), c.D, c.aspect_ratio, runs)
    columns: dict[str, NDArray] = {
        "latency_low_s": low, "latency_high_s": high,
        "probability_within_budget": _probability_meets(selection, error.relative),
        "memory_gb": memory.memory_gb, "feasible": memory.feasible,
        "infeasible_reason": reasons, "in_fit_range": inside,
    }
    columns["ttft_s"] = evaluation.metric("ttft_s")
    columns["tokens_per_s"] = evaluation.metric("tokens_per_s")
    if selection.price_per_gpu_hour is not None:
        columns["cost_per_million_tokens"] = evaluation.metric("cost_per_million_tokens", selection.price_per_gpu_hour)
    draws = _loss_columns(selection, fit_result, level, columns)
    if error.transferred:
        warnings.insert(0, f"Latency uses coefficients fitted on {workload.resolved_calibration().hardware}, "
                           f"transferred to {workload.hardware_name}: the band is widened to +/-{error.relative:.0%}.")
    if not memory.feasible.all():
        warnings.append(f"{int((~memory.feasible).sum())} of {n} candidates do not fit in the "
                        f"{workload.hardware_name}'s {memory.capacity_gb:g} GB (weights plus KV cache).")
    if fit_result is None:
        warnings.append("The law is a published parameter set without its fit's uncertainty: no loss bands, ties "
                        "or probabilities of being best (fit the law, or use a bian2025 preset's re-derived fit).")
    elif fit_result.bootstrap_params is None:
        warnings.append("Loss bands come from the fit's covariance, which this law's correlated parameters make "
                        "unreliable; bootstrap refits give better ones.")
    return Assessment(columns, warnings, workload.stack_name, draws, runs)


def _probability_meets(selection: Selection, relative_error: float) -> NDArray[np.float64]:
    """Probability that each candidate meets the budget, from the latency band.

    Every serving metric is proportional to latency or to its inverse
    (throughput), so the band carries over with the same relative width.
    """
    below = probability_within(selection.budget_values, relative_error, selection.latency_budget_s)
    return 1.0 - below if SERVING_METRICS[selection.budget_metric].higher_is_better else below


def _loss_columns(selection: Selection, fit_result: FitResult | None, level: float, columns: dict) -> int:
    """Fill loss_low/high, probability_best and tied_with_best over the pool; return the draws used."""
    evaluation = selection.evaluation
    n = len(evaluation)
    for name in ("loss_low", "loss_high", "probability_best"):
        columns[name] = np.full(n, np.nan)
    columns["tied_with_best"] = np.full(n, None, dtype=object)
    if fit_result is None:
        return 0
    meets = metric_meets(selection.budget_metric, selection.budget_values, selection.latency_budget_s)
    within = np.flatnonzero(meets & evaluation.feasible)
    pool = within[np.argsort(evaluation.loss[within], kind="stable")[:POOL]]
    shown = np.union1d(np.union1d(pool, selection.selected_index), selection.frontier_index)
    c = evaluation.candidates.take(shown)
    draws = loss_draws(fit_result, c.N.astype(np.float64), c.D, c.aspect_ratio)
    if draws.shape[0] < 2:
        return int(draws.shape[0])
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(draws, [tail, 100.0 - tail], axis=0)
    columns["loss_low"][shown], columns["loss_high"][shown] = low, high
    in_pool = np.isin(shown, pool)
    winners = np.argmin(np.where(in_pool, draws, np.inf), axis=1)
    probability = np.bincount(winners, minlength=shown.size) / draws.shape[0]
    columns["probability_best"][shown] = np.where(in_pool, probability, 0.0)
    best = np.flatnonzero(shown == selection.selected_index[0])[0]
    columns["tied_with_best"][shown] = in_pool & (low <= high[best])
    return int(draws.shape[0])


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
    ratio = 64.0 if law.needs_aspect_ratio else None
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
