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
from .fitcache import cached_fit
from .fitting import FitResult
from .frontier import Selection
from .laws import PRESETS, REFERENCE_ASPECT_RATIO, ScalingLaw
from .shapes import VOCAB_SIZE
from .latency.memory import serving_memory
from .latency.model import evaluate, generation_work
from .latency.serving import SERVING_METRICS, metric_meets, serving_metric
from .latency.uncertainty import (
    DRAWS, LEVEL, SEED, CoefficientDraws, coefficient_draws, draw_latency, latency_interval, prior_ends,
    prior_phrase, uncertainty_of,
)

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
    "compute_optima",
    "PLAUSIBLE",
]

BOOTSTRAP = 200
"""Bootstrap refits behind a preset's loss band (the dashboard's default)."""

POOL_MAX = 20_000
"""Most shapes, nearest the point frontier first, among which a draw's best is sought.

Only a shape that meets the budget in some draw can be best in it, so only
the shapes that meet the budget under the fastest corner of the latency draws
(every coefficient at its fastest drawn value, the shared factor at its
lowest: no draw is faster) are candidates, which loses no probability. The
law's draws reorder shapes of very different aspect ratios, so a draw's best
can lie far from the point frontier; :func:`_beaters` finds it without
drawing every candidate. Beyond ``POOL_MAX`` candidates the nearest to the
point frontier are kept and ``Assessment.draws`` says the pool was capped."""

PLAUSIBLE = 0.05
"""Probability of being best at or above which a shape is *plausibly best*."""

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


def loss_draws(fit_result: FitResult, N: NDArray, D: NDArray, ratio: NDArray, n: int | None = None) -> NDArray[np.float64]:
    """Predicted loss under the fit's parameter draws: shape ``(draws, candidates)``.

    With ``n``, exactly ``n`` rows: the draws in order, repeated when the fit
    has fewer. Every draw is kept, a non-finite or non-positive loss
    included: such a value makes that shape infeasible in that draw (the
    caller counts them); dropping the draw would bias the bands.
    """
    samples = fit_result.parameter_samples()
    if n is not None:
        samples = samples[np.arange(n) % len(samples)]
    law = _drawn_law(fit_result, samples)
    D = np.asarray(D, dtype=np.float64)
    if D.size > 1 and np.all(D == D.flat[0]):
        D = D.flat[0]  # one token budget for all: one power per draw instead of one per shape
    with np.errstate(all="ignore"):
        return np.asarray(law.predict(N, D, ratio), dtype=np.float64).reshape(len(samples), -1)


def _drawn_law(fit_result: FitResult, samples: NDArray, column: bool = True) -> ScalingLaw:
    """The fit's law with each parameter an array of draws: one array expression for all of them.

    ``column``: each parameter of shape ``(draws, 1)``, to broadcast against
    the shapes; else ``(draws,)``, paired one to one with as many shapes.
    """
    law = object.__new__(type(fit_result.law))
    for j, name in enumerate(fit_result.law.parameter_names()):
        object.__setattr__(law, name, samples[:, j : j + 1] if column else samples[:, j])
    return law


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
    memory = serving_memory(c.n_layers, c.d_model, c.n_heads, workload=workload)
    inside, warnings = range_warnings(c.N.astype(np.float64), c.D, c.aspect_ratio, runs)
    columns: dict[str, NDArray] = {
        "memory_gb": memory.memory_gb, "feasible": evaluation.feasible,
        "infeasible_reason": _reasons(selection, memory), "in_fit_range": inside,
        "ttft_s": evaluation.metric("ttft_s"), "tokens_per_s": evaluation.metric("tokens_per_s"),
    }
    if selection.price_per_gpu_hour is not None:
        columns["cost_per_million_tokens"] = evaluation.metric("cost_per_million_tokens", selection.price_per_gpu_hour)
    joint = _joint_columns(selection, fit_result, drawn, level, columns)
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
    if not memory.feasible.all():
        warnings.append(f"{int((~memory.feasible).sum())} of {n} candidates do not fit in the "
                        f"{workload.hardware_name}'s {memory.capacity_gb:g} GB (weights plus KV cache).")
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


def _reasons(selection: Selection, memory: Any) -> NDArray:
    """A sentence for each shown shape that cannot be chosen (and up to REASONS others)."""
    evaluation = selection.evaluation
    n = len(evaluation)
    explained = np.union1d(np.union1d(selection.selected_index, selection.frontier_index),
                           np.flatnonzero(~evaluation.feasible)[:REASONS])
    reasons = np.full(n, None, dtype=object)
    reasons[explained] = [text or None for text in memory.reasons(explained)]
    bad = explained[~evaluation.loss_valid[explained]]
    reasons[bad] = [f"the law predicts a non-positive loss ({evaluation.loss[i]:.3g}): it is used outside the range "
                    "it holds" for i in bad]
    return reasons


def _budget_draws(selection: Selection, index: NDArray, drawn: CoefficientDraws | Any) -> tuple[NDArray, NDArray]:
    """The budget metric and the latency of the shapes ``index`` under every draw: shape ``(draws, shapes)`` each.

    ``drawn`` may also be one set of coefficients (a calibration): then one row.
    """
    evaluation = selection.evaluation
    workload = evaluation.workload
    if getattr(drawn, "shared_only", False):
        # Only the shared factor varies: the point predictions, scaled per draw (a corner applies its own factor).
        factor = np.exp(drawn.log_factor) if isinstance(drawn, CoefficientDraws) else np.ones((1, 1))
        latency = np.maximum(evaluation.latency_s[index] * factor, evaluation.roofline_s[index])
        if selection.budget_metric == "latency_s":
            return latency, latency
        timing = {"latency_s": latency, "prefill_s": evaluation.prefill_s[index] * factor,
                  "ms_per_token": evaluation.ms_per_token[index] * factor}
        values = serving_metric(selection.budget_metric, latency_s=timing["latency_s"], prefill_s=timing["prefill_s"],
                                ms_per_token=timing["ms_per_token"], batch=workload.batch,
                                output_tokens=workload.output_tokens, price_per_gpu_hour=selection.price_per_gpu_hour)
        return np.asarray(values, dtype=np.float64), latency
    c = evaluation.candidates.take(index)
    # The same work the evaluation's point predictions were made from (float32, as predict_latency).
    work = generation_work(c.n_layers, c.d_model, c.n_heads, None, workload.device, workload.batch,
                           workload.input_tokens, workload.output_tokens, workload.dtype, VOCAB_SIZE,
                           precision=np.float32)
    if isinstance(drawn, CoefficientDraws):
        timing = draw_latency(work, drawn)
    else:
        latency, prefill, _, per_token, _, _ = evaluate(work, drawn)
        timing = {"latency_s": np.atleast_2d(latency), "prefill_s": np.atleast_2d(prefill),
                  "ms_per_token": np.atleast_2d(per_token)}
    values = serving_metric(selection.budget_metric, latency_s=timing["latency_s"], prefill_s=timing["prefill_s"],
                            ms_per_token=timing["ms_per_token"], batch=workload.batch,
                            output_tokens=workload.output_tokens, price_per_gpu_hour=selection.price_per_gpu_hour)
    return np.asarray(values, dtype=np.float64), np.asarray(timing["latency_s"], dtype=np.float64)


def _corner(drawn: CoefficientDraws, fastest: bool = True) -> Any:
    """Coefficients no draw is faster (or, ``fastest=False``, slower) than: costs at one end, efficiencies at the other."""
    from types import SimpleNamespace

    low, high = (np.min, np.max) if fastest else (np.max, np.min)
    return SimpleNamespace(
        c_fixed_s=float(low(drawn.c_fixed_s)), c_layer_s=float(low(drawn.c_layer_s)),
        c_layer_device_s=float(low(drawn.c_layer_device_s)), eta_bw=float(high(drawn.eta_bw)),
        eta_flops=float(high(drawn.eta_flops)), overlap_p=drawn.overlap_p,
        factor=float(np.exp(low(drawn.log_factor))), shared_only=drawn.shared_only,
    )


def _meets_at(selection: Selection, index: NDArray[np.int64], corner: Any) -> NDArray[np.bool_]:
    """Whether each shape of ``index`` meets the budget under one corner of the draws."""
    values, _ = _budget_draws(selection, index, corner)
    # The shared factor scales every metric; throughput inversely.
    metric = SERVING_METRICS[selection.budget_metric]
    scaled = values[0] / corner.factor if metric.higher_is_better else values[0] * corner.factor
    return metric_meets(selection.budget_metric, scaled, selection.latency_budget_s)


def _possible(selection: Selection, drawn: CoefficientDraws) -> NDArray[np.int64]:
    """Feasible shapes that meet the budget under the fastest corner (only they can meet it in a draw).

    Nearest the point frontier first (see :data:`POOL_MAX`).
    """
    evaluation = selection.evaluation
    feasible = np.flatnonzero(evaluation.feasible)
    possible = feasible[_meets_at(selection, feasible, _corner(drawn))]
    # A draw's best lies on that draw's frontier, which is the point frontier moved a little: order the shapes by
    # how far their loss lies above the best loss of any shape at least as fast (zero on the frontier).
    gap = evaluation.loss[possible] - _frontier_loss(evaluation.latency_s[possible], evaluation.loss[possible])
    return possible[np.lexsort((evaluation.loss[possible], gap))]


def _frontier_loss(latency: NDArray, loss: NDArray) -> NDArray:
    """For each shape, the least loss among the shapes at least as fast as it (itself included)."""
    order = np.argsort(latency, kind="stable")
    best = np.empty_like(loss)
    best[order] = np.minimum.accumulate(loss[order])
    return best


def _joint_columns(selection: Selection, fit_result: FitResult | None, drawn: CoefficientDraws, level: float,
                   columns: dict) -> dict[str, Any]:
    """Fill the band and probability columns from the joint draws; return their summary.

    Draws are computed for the shown shapes and, among the shapes that can
    meet the budget in some draw, either all of them (a few hundred) or a first
    pool plus each draw's best beyond it (:func:`_first_pool`,
    :func:`_beaters`); bands are read for the shown shapes and every shape
    with a chance of being best.
    """
    evaluation = selection.evaluation
    n = len(evaluation)
    for name in ("latency_low_s", "latency_high_s", "probability_within_budget", "loss_low", "loss_high",
                 "probability_best"):
        columns[name] = np.full(n, np.nan)
    columns["plausibly_best"] = np.full(n, None, dtype=object)
    possible = _possible(selection, drawn)
    base = np.union1d(selection.selected_index, selection.frontier_index)
    if fit_result is not None and possible.size > 2 * FIRST_POOL:
        shown = np.union1d(base, _first_pool(selection, drawn, possible))
        values, latency, losses = _draws_for(selection, fit_result, drawn, shown)
        bar = _bar(selection, values, losses, shown)
        extra = _beaters(selection, fit_result, drawn, np.setdiff1d(possible[:POOL_MAX], shown), bar)
        if extra.size:
            more = _draws_for(selection, fit_result, drawn, extra)
            shown = np.concatenate([shown, extra])
            values, latency, losses = (np.concatenate([a, b], axis=1) for a, b in zip((values, latency, losses), more))
    else:
        shown = np.union1d(base, possible[:POOL_MAX])
        values, latency, losses = _draws_for(selection, fit_result, drawn, shown)
    meets = metric_meets(selection.budget_metric, values, selection.latency_budget_s) & evaluation.feasible[shown]
    summary = {"n": len(drawn), "pool": int(shown.size), "possible": int(possible.size),
               "pool_rule": ("among the shapes that meet the budget under the fastest corner of the draws (no draw "
                             "is faster): a first pool (the best by predicted loss, and those that meet the budget "
                             "in every draw), plus every shape that beats a draw's best of that pool in that draw "
                             "(loss bounded below over cells of (N, D, aspect ratio) rules out the rest); plus the "
                             "shapes shown")}
    result = {"any_within": float(meets.any(axis=1).mean()), "invalid_loss_draws": 0, "draws": summary}
    columns["probability_within_budget"][shown] = meets.mean(axis=0)
    read = np.isin(shown, np.union1d(selection.selected_index, selection.frontier_index))
    if fit_result is not None:
        valid = np.isfinite(losses) & (losses > 0)
        result["invalid_loss_draws"] = int((~valid.all(axis=1)).sum())
        eligible = meets & valid
        has = eligible.any(axis=1)
        winners = np.argmin(np.where(eligible, losses, np.inf), axis=1)[has]
        probability = np.bincount(winners, minlength=shown.size) / len(drawn)
        columns["probability_best"][shown] = probability
        columns["plausibly_best"][shown] = probability >= PLAUSIBLE
        rank = _ranks(possible, shown[winners])
        summary["deepest_winner_rank"] = int(rank.max()) + 1 if rank.size else 0
        summary["capped"] = bool(possible.size > POOL_MAX)
        read |= probability > 0
        # A non-finite draw is a law outside its domain: it counts (as infeasible) but has no place in a band.
        band = np.where(np.isfinite(losses[:, read]), losses[:, read], np.nan)
        tail = (1.0 - level) / 2.0 * 100.0
        low, high = (np.percentile(band, [tail, 100 - tail], axis=0) if np.isfinite(band).all()
                     else np.nanpercentile(band, [tail, 100 - tail], axis=0))
        columns["loss_low"][shown[read]], columns["loss_high"][shown[read]] = low, high
    if drawn.shared_only:
        # Every draw scales the point prediction by its factor: the band's edges are the factor's quantiles
        # applied to it (a monotone map keeps quantiles), never below the roofline.
        at = shown[read]
        f_low, f_high = latency_interval(np.exp(drawn.log_factor), level)
        low = np.maximum(evaluation.latency_s[at] * f_low[0], evaluation.roofline_s[at])
        high = np.maximum(evaluation.latency_s[at] * f_high[0], evaluation.roofline_s[at])
    else:
        low, high = latency_interval(latency[:, read], level)
    columns["latency_low_s"][shown[read]], columns["latency_high_s"][shown[read]] = low, high
    return result


FIRST_POOL = 256
"""Shapes (best predicted loss first) in the first pool whose draws give each draw's bar (:func:`_first_pool`)."""

CELLS = 24
"""Bins per axis (log N, log D, log aspect ratio) of the cells whose loss is bounded below per draw."""


def _draws_for(selection: Selection, fit_result: FitResult | None, drawn: CoefficientDraws,
               index: NDArray[np.int64]) -> tuple[NDArray, NDArray, NDArray | None]:
    """The budget metric, latency and (with a fit) loss of the shapes ``index`` under every draw."""
    values, latency = _budget_draws(selection, index, drawn)
    if fit_result is None:
        return values, latency, None
    c = selection.evaluation.candidates.take(index)
    return values, latency, loss_draws(fit_result, c.N.astype(np.float64), c.D, c.aspect_ratio, n=len(drawn))


def _first_pool(selection: Selection, drawn: CoefficientDraws, possible: NDArray[np.int64]) -> NDArray[np.int64]:
    """The shapes whose draws set each draw's bar: likely bests (see :func:`_beaters`)."""
    evaluation = selection.evaluation
    by_loss = possible[np.argsort(evaluation.loss[possible], kind="stable")]
    # The best of the shapes that meet the budget even in the slowest draw give every draw a bar to beat, and
    # the point frontier's shapes that may meet it are each draw's likeliest best.
    sure = by_loss[_meets_at(selection, by_loss, _corner(drawn, fastest=False))]
    near = np.intersect1d(selection.frontier_index, possible)
    return np.union1d(np.union1d(by_loss[:FIRST_POOL], sure[:FIRST_POOL // 4]), near)


def _bar(selection: Selection, values: NDArray, losses: NDArray, index: NDArray[np.int64]) -> NDArray[np.float64]:
    """Each draw's best loss among the shapes ``index`` that meet the budget and are feasible in it."""
    meets = (metric_meets(selection.budget_metric, values, selection.latency_budget_s)
             & selection.evaluation.feasible[index] & np.isfinite(losses) & (losses > 0))
    return np.min(np.where(meets, losses, np.inf), axis=1)


def _beaters(selection: Selection, fit_result: FitResult, drawn: CoefficientDraws, rest: NDArray[np.int64],
             bar: NDArray[np.float64]) -> NDArray[np.int64]:
    """The shapes of ``rest`` that are the best of some draw: an exact pruning.

    ``bar`` is each draw's best loss among a first pool of shapes within the
    budget (:func:`_first_pool`); no shape whose loss is at least that in draw
    ``d`` can be best there. The others are grouped in cells of (log N, log D,
    log R); in each draw the loss ``f(N, D) g(R)`` is bounded below over a cell
    from the corners (``f`` is monotone in N and in D, ``g`` monotone in R
    or, for the U-shaped law, smallest at ``r_opt``), and a cell whose bound is
    at least the bar, or none of whose shapes can meet the budget in that draw,
    is ruled out for that draw. The pairs of a draw and a shape not ruled out
    are evaluated one element each; each draw's best of them that beats its
    bar is a contender. Nothing that could be best in any draw is left out.
    """
    if rest.size == 0:
        return rest
    evaluation = selection.evaluation
    samples = fit_result.parameter_samples()
    samples = samples[np.arange(len(drawn)) % len(samples)]
    lower, cell = _cell_bounds(fit_result, samples, evaluation.candidates.take(rest))
    promising = (lower < bar[:, None]) & _cell_may_meet(selection, rest, cell, lower.shape[1], drawn)
    # Only the (draw, shape) pairs whose cell can beat the draw's bar are evaluated, one element each.
    draw, shape = np.nonzero(promising[:, cell])
    c = evaluation.candidates.take(rest[shape])
    with np.errstate(all="ignore"):
        loss = np.asarray(_drawn_law(fit_result, samples[draw], column=False).predict(
            c.N.astype(np.float64), np.asarray(c.D, dtype=np.float64), c.aspect_ratio), dtype=np.float64)
    values = _pair_budget(selection, rest[shape], draw, drawn)
    better = np.flatnonzero(metric_meets(selection.budget_metric, values, selection.latency_budget_s)
                            & np.isfinite(loss) & (loss > 0) & (loss < bar[draw]))
    # Each draw's best: the first of its pairs in order of loss (ties to the lower index, as argmin).
    order = better[np.lexsort((rest[shape[better]], loss[better], draw[better]))]
    first_of_draw = order[np.r_[True, draw[order][1:] != draw[order][:-1]]] if order.size else order
    return np.unique(rest[shape[first_of_draw]])


def _cell_may_meet(selection: Selection, index: NDArray[np.int64], cell: NDArray[np.int64], cells: int,
                   drawn: CoefficientDraws) -> NDArray[np.bool_]:
    """Per draw and cell, whether the cell's fastest shape may meet the budget (``(draws, cells)``).

    Only where the draws share their coefficients: a draw scales every point
    prediction by its factor (the roofline only raises latency), so the
    cell's best point value scaled by the factor is a bound. Elsewhere every
    cell may.
    """
    if not drawn.shared_only:
        return np.ones((len(drawn), cells), dtype=bool)
    metric = SERVING_METRICS[selection.budget_metric]
    values = selection.budget_values[index]
    best = np.full(cells, -np.inf if metric.higher_is_better else np.inf)
    (np.maximum if metric.higher_is_better else np.minimum).at(best, cell, values)
    factor = np.exp(drawn.log_factor)
    scaled = best / factor if metric.higher_is_better else best * factor
    return metric_meets(selection.budget_metric, scaled, selection.latency_budget_s)


def _pair_budget(selection: Selection, index: NDArray[np.int64], draw: NDArray[np.int64],
                 drawn: CoefficientDraws) -> NDArray[np.float64]:
    """The budget metric of shape ``index[k]`` under draw ``draw[k]``, for each ``k`` (one element each)."""
    evaluation = selection.evaluation
    workload = evaluation.workload
    factor = np.exp(drawn.log_factor[draw, 0])
    if drawn.shared_only:
        latency, prefill, per_token = (evaluation.latency_s[index], evaluation.prefill_s[index],
                                       evaluation.ms_per_token[index])
    else:
        from types import SimpleNamespace

        coefficients = SimpleNamespace(overlap_p=drawn.overlap_p, **{
            name: getattr(drawn, name)[draw, 0] for name in ("c_fixed_s", "c_layer_s", "eta_bw", "eta_flops",
                                                              "c_layer_device_s")})
        c = evaluation.candidates.take(index)
        work = generation_work(c.n_layers, c.d_model, c.n_heads, None, workload.device, workload.batch,
                               workload.input_tokens, workload.output_tokens, workload.dtype, VOCAB_SIZE,
                               precision=np.float32)
        latency, prefill, _, per_token, _, _ = evaluate(work, coefficients)
    return np.asarray(serving_metric(
        selection.budget_metric, latency_s=np.maximum(latency * factor, evaluation.roofline_s[index]),
        prefill_s=prefill * factor, ms_per_token=per_token * factor, batch=workload.batch,
        output_tokens=workload.output_tokens, price_per_gpu_hour=selection.price_per_gpu_hour), dtype=np.float64)


def _cell_bounds(fit_result: FitResult, samples: NDArray, c: Any) -> tuple[NDArray, NDArray[np.int64]]:
    """Per draw, a lower bound of the loss over each cell of shapes, and each shape's cell."""
    axes = [np.log(c.N.astype(np.float64)), np.log(np.asarray(c.D, dtype=np.float64)), np.log(c.aspect_ratio)]
    index = np.zeros(len(axes[0]), dtype=np.int64)
    for values in axes:
        span = np.ptp(values)
        bins = np.zeros(values.size, dtype=np.int64) if span == 0 else np.minimum(
            ((values - values.min()) / span * CELLS).astype(np.int64), CELLS - 1)
        index = index * CELLS + bins
    cells, cell = np.unique(index, return_inverse=True)
    low = [np.full(cells.size, np.inf) for _ in axes]
    high = [np.full(cells.size, -np.inf) for _ in axes]
    for k, values in enumerate(axes):
        np.minimum.at(low[k], cell, values)
        np.maximum.at(high[k], cell, values)
    law = _drawn_law(fit_result, samples)
    with np.errstate(all="ignore"):
        f = [law.chinchilla_loss(np.exp(n), np.exp(d)) for n in (low[0], high[0]) for d in (low[1], high[1])]
        ratios = [np.exp(low[2]), np.exp(high[2])]
        if hasattr(law, "r_opt"):
            ratios.append(np.clip(law.r_opt, ratios[0], ratios[1]))
        g = [law.shape_factor(r) for r in ratios]
        f_low, f_high = np.minimum.reduce(f), np.maximum.reduce(f)
        g_low, g_high = np.minimum.reduce(g), np.maximum.reduce(g)
        lower = np.minimum.reduce([f_low * g_low, f_low * g_high, f_high * g_low, f_high * g_high])
    # A bound that is not a number (a draw outside the law's domain) cannot rule a cell out.
    return np.where(np.isnan(lower), -np.inf, lower), cell


def _ranks(possible: NDArray, index: NDArray) -> NDArray[np.int64]:
    """Positions of ``index`` in ``possible`` (shapes not in it, e.g. shown ones, count as the last)."""
    order = {int(v): k for k, v in enumerate(possible)}
    return np.array([order.get(int(i), len(possible)) for i in index], dtype=np.int64)


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
        values, _ = _budget_draws(selection, shown, end)
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
