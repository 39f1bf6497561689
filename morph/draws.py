"""The joint draws over candidate shapes: which shapes are drawn, and what is read from the draws.

Draw ``d`` pairs the law's ``d``-th parameter draw with the latency
calibration's ``d``-th coefficient draw and applies both to every shape
(:mod:`morph.decision` explains what the bands and probabilities mean).
Drawing 100,000 shapes 200 times is wasteful: only a shape that can meet the
budget in some draw can be best in it, and among those a draw's best is found
from a first pool and an exact pruning over cells of (N, D, aspect ratio)
(:func:`joint_columns`). Tests compare the result with drawing every shape.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .fitting import FitResult
from .frontier import Selection
from .laws import ScalingLaw
from .latency.model import evaluate, generation_work
from .latency.serving import SERVING_METRICS, metric_meets, serving_metric
from .latency.uncertainty import CoefficientDraws, central_interval, draw_latency, latency_interval
from .shapes import VOCAB_SIZE

__all__ = ["POOL_MAX", "PLAUSIBLE", "FIRST_POOL", "CELLS", "loss_draws", "budget_draws", "joint_columns"]

POOL_MAX = 20_000
"""Most shapes, nearest the point frontier first, among which a draw's best is sought.

Only a shape that meets the budget in some draw can be best in it, so only
the shapes that meet the budget under the fastest corner of the latency draws
(every coefficient at its fastest drawn value, the shared factor at its
lowest: no draw is faster) are candidates, which loses no probability. The
law's draws reorder shapes of very different aspect ratios, so a draw's best
can lie far from the point frontier; :func:`_beaters` finds it without
drawing every candidate. Beyond ``POOL_MAX`` candidates the nearest to the
point frontier are kept and ``Assessment.draws`` (:mod:`morph.decision`) says the pool was capped."""

PLAUSIBLE = 0.05
"""Probability of being best at or above which a shape is *plausibly best*."""

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


def budget_draws(selection: Selection, index: NDArray, drawn: CoefficientDraws | Any) -> tuple[NDArray, NDArray]:
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
    low, high = (np.min, np.max) if fastest else (np.max, np.min)
    return SimpleNamespace(
        c_fixed_s=float(low(drawn.c_fixed_s)), c_layer_s=float(low(drawn.c_layer_s)),
        c_layer_device_s=float(low(drawn.c_layer_device_s)), eta_bw=float(high(drawn.eta_bw)),
        eta_flops=float(high(drawn.eta_flops)), overlap_p=drawn.overlap_p,
        factor=float(np.exp(low(drawn.log_factor))), shared_only=drawn.shared_only,
    )


def _meets_at(selection: Selection, index: NDArray[np.int64], corner: Any) -> NDArray[np.bool_]:
    """Whether each shape of ``index`` meets the budget under one corner of the draws."""
    values, _ = budget_draws(selection, index, corner)
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


def joint_columns(selection: Selection, fit_result: FitResult | None, drawn: CoefficientDraws, level: float,
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
        blocks = [(shown, *_draws_for(selection, fit_result, drawn, shown))]
        bar = _bar(selection, blocks[0][1], blocks[0][3], shown)
        extra = _beaters(selection, fit_result, drawn, np.setdiff1d(possible[:POOL_MAX], shown), bar)
        if extra.size:
            blocks.append((extra, *_draws_for(selection, fit_result, drawn, extra)))
    else:
        shown = np.union1d(base, possible[:POOL_MAX])
        blocks = [(shown, *_draws_for(selection, fit_result, drawn, shown))]
    # The blocks are read one at a time, as if side by side: joining draws of thousands of shapes costs more
    # than every statistic read from them.
    meets = [metric_meets(selection.budget_metric, values, selection.latency_budget_s) & evaluation.feasible[index]
             for index, values, _, _ in blocks]
    drawn_index = np.concatenate([index for index, *_ in blocks])
    summary = {"n": len(drawn), "pool": int(drawn_index.size), "possible": int(possible.size),
               "pool_rule": ("among the shapes that meet the budget under the fastest corner of the draws (no draw "
                             "is faster): a first pool (the best by predicted loss, and those that meet the budget "
                             "in every draw), plus every shape that beats a draw's best of that pool in that draw "
                             "(loss bounded below over cells of (N, D, aspect ratio) rules out the rest); plus the "
                             "shapes shown")}
    result = {"any_within": float(np.any([m.any(axis=1) for m in meets], axis=0).mean()), "invalid_loss_draws": 0,
              "draws": summary}
    for (index, *_), meet in zip(blocks, meets):
        columns["probability_within_budget"][index] = meet.mean(axis=0)
    read = [np.isin(index, base) for index, *_ in blocks]
    if fit_result is not None:
        valid = [np.isfinite(losses) & (losses > 0) for *_, losses in blocks]
        result["invalid_loss_draws"] = int(np.any([~v.all(axis=1) for v in valid], axis=0).sum())
        winners = _winners([np.where(m & v, losses, np.inf) for m, v, (*_, losses) in zip(meets, valid, blocks)])
        has = winners >= 0
        probability = np.bincount(winners[has], minlength=drawn_index.size) / len(drawn)
        columns["probability_best"][drawn_index] = probability
        columns["plausibly_best"][drawn_index] = probability >= PLAUSIBLE
        rank = _ranks(possible, drawn_index[winners[has]], n)
        summary["deepest_winner_rank"] = int(rank.max()) + 1 if rank.size else 0
        summary["capped"] = bool(possible.size > POOL_MAX)
        offsets = np.cumsum([0] + [index.size for index, *_ in blocks])
        read = [r | (probability[o:o + r.size] > 0) for r, o in zip(read, offsets)]
        for (index, _, _, losses), r in zip(blocks, read):
            # A non-finite draw is a law outside its domain: it counts (as infeasible) but has no place in a band.
            band = losses[:, r]
            low, high = (central_interval(band, level) if np.isfinite(band).all()
                         else _nan_interval(np.where(np.isfinite(band), band, np.nan), level))
            columns["loss_low"][index[r]], columns["loss_high"][index[r]] = low, high
    for (index, _, latency, _), r in zip(blocks, read):
        at = index[r]
        if drawn.shared_only:
            # Every draw scales the point prediction by its factor: the band's edges are the factor's quantiles
            # applied to it (a monotone map keeps quantiles), never below the roofline.
            f_low, f_high = latency_interval(np.exp(drawn.log_factor), level)
            low = np.maximum(evaluation.latency_s[at] * f_low[0], evaluation.roofline_s[at])
            high = np.maximum(evaluation.latency_s[at] * f_high[0], evaluation.roofline_s[at])
        else:
            low, high = latency_interval(latency[:, r], level)
        columns["latency_low_s"][at], columns["latency_high_s"][at] = low, high
    return result


def _winners(masked: list[NDArray]) -> NDArray[np.int64]:
    """Per draw, the column (counted across the blocks, side by side) of least loss; -1 where every loss is inf.

    ``masked`` holds each block's losses with inf where a shape cannot be
    best; ties go to the first column, as ``argmin`` over the joined blocks.
    """
    best = np.full(masked[0].shape[0], np.inf)
    winner = np.full(masked[0].shape[0], -1, dtype=np.int64)
    offset = 0
    for losses in masked:
        column = np.argmin(losses, axis=1)
        least = losses[np.arange(losses.shape[0]), column]
        better = least < best
        best[better], winner[better] = least[better], column[better] + offset
        offset += losses.shape[1]
    return winner


def _nan_interval(values: NDArray, level: float) -> tuple[NDArray, NDArray]:
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    return low, high


FIRST_POOL = 256
"""Shapes (best predicted loss first) in the first pool whose draws give each draw's bar (:func:`_first_pool`)."""

CELLS = 24
"""Bins per axis (log N, log D, log aspect ratio) of the cells whose loss is bounded below per draw."""


def _draws_for(selection: Selection, fit_result: FitResult | None, drawn: CoefficientDraws,
               index: NDArray[np.int64]) -> tuple[NDArray, NDArray, NDArray | None]:
    """The budget metric, latency and (with a fit) loss of the shapes ``index`` under every draw."""
    values, latency = budget_draws(selection, index, drawn)
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
    may = np.zeros(len(evaluation), dtype=bool)
    may[possible] = True
    near = selection.frontier_index[may[selection.frontier_index]]
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
    # Only the (draw, shape) pairs whose cell can beat the draw's bar are evaluated, one element each: each
    # promising (draw, cell) pair is expanded to the cell's shapes.
    draw, shape = _expand(*np.nonzero(promising), cell)
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


def _expand(draw: NDArray[np.int64], cells: NDArray[np.int64], cell: NDArray[np.int64]) -> tuple[NDArray, NDArray]:
    """The (draw, shape) pairs of the (draw, cell) pairs, given each shape's ``cell``."""
    members = np.argsort(cell, kind="stable")
    count = np.bincount(cell)
    first = np.cumsum(count) - count
    size = count[cells]
    # For each pair, the positions first[c] .. first[c] + size - 1 of ``members``.
    start = np.repeat(first[cells] - (np.cumsum(size) - size), size)
    return np.repeat(draw, size), members[start + np.arange(int(size.sum()))]


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
    # The occupied cells, numbered in order (np.unique's, from a count: the cells are few and dense).
    occupied = np.bincount(index, minlength=CELLS ** len(axes)) > 0
    cell = (np.cumsum(occupied) - 1)[index]
    cells = np.flatnonzero(occupied)
    low = [np.full(cells.size, np.inf) for _ in axes]
    high = [np.full(cells.size, -np.inf) for _ in axes]
    for k, values in enumerate(axes):
        np.minimum.at(low[k], cell, values)
        np.maximum.at(high[k], cell, values)
    law = _drawn_law(fit_result, samples)
    with np.errstate(all="ignore"):
        # One token budget for every shape (the usual case): its two corners coincide.
        tokens = (low[1],) if np.array_equal(low[1], high[1]) else (low[1], high[1])
        f = [law.chinchilla_loss(np.exp(n), np.exp(d)) for n in (low[0], high[0]) for d in tokens]
        ratios = [np.exp(low[2]), np.exp(high[2])]
        if hasattr(law, "r_opt"):
            ratios.append(np.clip(law.r_opt, ratios[0], ratios[1]))
        g = [law.shape_factor(r) for r in ratios]
        # Pairwise: a ufunc's reduce over a list first stacks it into one array, which costs more here.
        f_low, f_high = functools.reduce(np.minimum, f), functools.reduce(np.maximum, f)
        g_low, g_high = functools.reduce(np.minimum, g), functools.reduce(np.maximum, g)
        lower = functools.reduce(np.minimum, [f_low * g_low, f_low * g_high, f_high * g_low, f_high * g_high])
    # A bound that is not a number (a draw outside the law's domain) cannot rule a cell out.
    return np.where(np.isnan(lower), -np.inf, lower), cell


def _ranks(possible: NDArray, index: NDArray, n: int) -> NDArray[np.int64]:
    """Positions of ``index`` in ``possible`` (shapes not in it, e.g. shown ones, count as the last); ``n`` candidates."""
    position = np.full(n, len(possible), dtype=np.int64)
    position[possible] = np.arange(len(possible))
    return position[np.asarray(index, dtype=np.int64)]
