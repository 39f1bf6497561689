"""Which draft model to train for speculative decoding: candidate shapes ranked by speed-up.

A draft's speed-up over its target depends on its acceptance rate and on the
time of its decode steps (:mod:`morph.speculative`). At small batch a step is
host-bound, about ``c_fixed + c_layer * n_layers`` whatever the width, so of
two drafts of the same size the shallow, wide one is usually the faster and
about as accurate. :func:`select_drafts` evaluates every candidate shape at
once: its predicted loss, its acceptance rate (given, or derived from the loss
gap to the target by :func:`morph.speculative.acceptance_from_loss`), its step
time under a :class:`~morph.latency.Workload`, its best lookahead and the
speed-up there; it keeps the top drafts within a parameter budget that fit
in memory beside the target (weights and both key/value caches,
:func:`morph.speculative.pair_memory`), and :class:`DraftSelection` says why
every other draft lost.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .frontier import Candidates, LawLike, pareto_frontier, resolve_law
from .latency import DEFAULT_CONTEXT, Workload, forward_pass_s
from .shapes import Shape
from .speculative import (
    DEFAULT_MAX_LOOKAHEAD,
    FloatArray,
    IntArray,
    PairMemory,
    ShapeLike,
    SpeculativeError,
    acceptance_from_loss,
    as_shape,
    best_lookahead,
    pair_memory,
    step_workload,
    target_pass_s,
    validate_acceptance,
)

__all__ = ["DraftSelection", "select_drafts"]


@dataclass(frozen=True)
class DraftSelection:
    """Draft shapes for one target, ranked by the speed-up they give at their best lookahead.

    Attributes
    ----------
    target : Shape
    candidates : Candidates
        Every draft shape considered.
    loss : ndarray
        Predicted loss of each draft (nats per token).
    acceptance : ndarray
        Acceptance rate used for each draft.
    draft_step_s : ndarray
        Decode step of each draft (seconds).
    best_lookahead : ndarray of int
        Best ``k`` per draft (0: drafting does not pay).
    best_speedup : ndarray
        Speed-up at that ``k``.
    eligible : ndarray of bool
        Within the parameter budget and fits in memory beside the target.
    selected_index : ndarray of int
        The top drafts, best first, among those within the budgets whose
        best lookahead is above 0 (a draft that does not pay is no choice).
    frontier_index : ndarray of int
        The (draft latency, draft loss) Pareto frontier, fastest first.
    target_step_s : float
        One decode step of the target alone (seconds).
    settings : dict
        Budgets, workload and the acceptance assumption.
    memory : PairMemory, optional
        Weights and key/value caches of the target and each draft against
        the memory available.
    """

    target: Shape
    candidates: Candidates
    loss: FloatArray
    acceptance: FloatArray
    draft_step_s: FloatArray
    best_lookahead: IntArray
    best_speedup: FloatArray
    eligible: NDArray[np.bool_]
    selected_index: IntArray
    frontier_index: IntArray
    target_step_s: float
    settings: dict[str, Any] = field(default_factory=dict)
    memory: PairMemory | None = None

    def __len__(self) -> int:
        return len(self.candidates)

    def to_frame(self, index: ArrayLike | None = None) -> pd.DataFrame:
        """One row per draft (or per ``index``): shape, parameters, loss, acceptance, timing, best ``k``, memory.

        ``memory_gb`` is target and draft together, weights and both caches
        (GB); ``feasible`` says whether that fits, ``infeasible_reason`` why
        not (None where it fits).
        """
        i = np.arange(len(self)) if index is None else np.asarray(index, dtype=np.int64)
        c = self.candidates.take(i)
        frame = pd.DataFrame({
            "label": c.label,
            "n_layers": c.n_layers,
            "d_model": c.d_model,
            "aspect_ratio": c.aspect_ratio,
            "N": c.N,
            "loss": self.loss[i],
            "acceptance": self.acceptance[i],
            "draft_step_s": self.draft_step_s[i],
            "best_lookahead": self.best_lookahead[i],
            "best_speedup": self.best_speedup[i],
        })
        if self.memory is not None:
            frame["memory_gb"] = self.memory.memory_gb[i]
            frame["feasible"] = self.memory.feasible[i]
            # An object column: None where the draft fits.
            frame["infeasible_reason"] = np.array(self.memory.reasons(i), dtype=object)
        return frame

    @functools.cached_property
    def selected(self) -> pd.DataFrame:
        """The top drafts, best first, with their ``rank``."""
        frame = self.to_frame(self.selected_index)
        frame.insert(0, "rank", np.arange(1, len(frame) + 1))
        return frame

    @functools.cached_property
    def frontier(self) -> pd.DataFrame:
        """Drafts no other draft beats on both loss and step time, fastest first."""
        return self.to_frame(self.frontier_index)

    @functools.cached_property
    def ranking(self) -> IntArray:
        """Every draft within the budgets that speeds the target up, best first (ties in the order given)."""
        eligible = np.flatnonzero(self.eligible & (self.best_lookahead > 0))
        return eligible[np.argsort(-self.best_speedup[eligible], kind="stable")]

    @functools.cached_property
    def dropped(self) -> pd.DataFrame:
        """Every draft not selected, with the ``reason`` it lost (built on first use)."""
        rank_of = np.zeros(len(self), dtype=np.int64)
        rank_of[self.ranking] = np.arange(1, self.ranking.size + 1)
        index = np.setdiff1d(np.arange(len(self)), self.selected_index)
        frame = self.to_frame(index)
        # An object column, so that string methods work even when nothing was dropped.
        frame["reason"] = np.array([self._reason(int(i), int(rank_of[i])) for i in index], dtype=object)
        return frame

    def _reason(self, i: int, rank: int) -> str:
        budget = self.settings.get("param_budget")
        if budget is not None and self.candidates.N[i] > budget:
            return f"{self.candidates.N[i]:.3g} parameters exceed the {budget:.3g} parameter budget"
        if not self.eligible[i]:
            if self.memory is None:
                return "does not fit in memory beside the target"
            return str(self.memory.reasons([i])[0])
        if self.best_lookahead[i] == 0:
            return (f"drafting does not pay: a draft step takes {1e3 * self.draft_step_s[i]:.3g} ms against "
                    f"{1e3 * self.target_step_s:.3g} ms for the target, at acceptance {self.acceptance[i]:.2f}")
        dominated = self._dominated_by(i)
        beaten = f"; {dominated} is faster with lower loss" if dominated else ""
        return (f"ranked {rank} of {self.ranking.size} by speed-up ({self.best_speedup[i]:.3f}x at k = "
                f"{self.best_lookahead[i]}); top {len(self.selected_index)} kept{beaten}")

    def _dominated_by(self, i: int) -> str | None:
        """The frontier draft that dominates draft ``i``, if one does."""
        front_t = self.draft_step_s[self.frontier_index]
        j = int(np.searchsorted(front_t, self.draft_step_s[i], side="right")) - 1
        if j < 0:
            return None
        f = int(self.frontier_index[j])
        if f == i or self.loss[f] > self.loss[i] or (self.loss[f] == self.loss[i] and front_t[j] == self.draft_step_s[i]):
            return None
        return str(self.candidates.labels(f))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: target, settings, ``selected``, ``frontier`` and ``dropped`` as records."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                    for row in frame.to_dict(orient="records")]

        return {
            "target": str(self.target),
            "target_step_s": self.target_step_s,
            "settings": self.settings,
            "n_candidates": len(self),
            "selected": records(self.selected),
            "frontier": records(self.frontier),
            "dropped": records(self.dropped),
        }


def select_drafts(
    target: ShapeLike,
    candidates: Candidates,
    *,
    acceptance: ArrayLike | None = None,
    law: LawLike = "bian2025",
    target_tokens: float | None = None,
    tightness: float = 1.0,
    max_lookahead: int = DEFAULT_MAX_LOOKAHEAD,
    param_budget: float | None = None,
    memory_budget_gb: float | None = None,
    top_n: int = 5,
    workload: Workload | None = None,
    context: int = DEFAULT_CONTEXT,
    **overrides: Any,
) -> DraftSelection:
    """Rank candidate draft shapes for ``target`` by speed-up at each one's best lookahead.

    Parameters
    ----------
    target : Shape or str
        The target model (``"32x4096"``).
    candidates : Candidates
        Draft shapes with their training tokens (from
        :func:`morph.frontier.candidates_from_range`, ``candidates_from_table``
        or ``Candidates.from_arrays``).
    acceptance : float or array, optional
        Acceptance rate of every draft (one number or one per candidate).
        Without it, :func:`morph.speculative.acceptance_from_loss` with ``tightness`` maps each
        draft's predicted loss gap to the target to a rate (needs
        ``target_tokens``).
    law : preset name, ScalingLaw or FitResult
        Loss model for the drafts (and the target).
    target_tokens : float, optional
        Training tokens of the target, for its predicted loss.
    tightness : float
        See :func:`morph.speculative.acceptance_from_loss`.
    max_lookahead : int
        Lookaheads ``0 .. max_lookahead`` are searched.
    param_budget : float, optional
        Largest draft (parameters).
    memory_budget_gb : float, optional
        Memory for target and draft together (GB, 1e9 bytes): both models'
        weights and key/value caches, each cache holding ``batch *
        (input_tokens + output_tokens)`` tokens of the workload (see
        :func:`morph.speculative.pair_memory`); defaults to the hardware's
        memory.
    top_n : int
        Drafts to keep.
    workload, context, **overrides
        The workload a step is timed under, as in
        :func:`morph.speculative.step_workload`.

    Raises
    ------
    SpeculativeError
        No candidates, bad budgets, a target that alone does not fit in
        memory, no draft within the budgets, or none of those that speeds
        the target up.
    """
    shape = as_shape(target)
    if len(candidates) == 0:
        raise SpeculativeError("there are no draft candidates; widen the parameter range")
    if not isinstance(max_lookahead, (int, np.integer)) or max_lookahead < 0:
        raise SpeculativeError(f"the largest lookahead must be a whole number >= 0, got {max_lookahead!r}")
    if not isinstance(top_n, (int, np.integer)) or top_n < 1:
        raise SpeculativeError(f"keep at least one draft, got top_n={top_n!r}")
    serving = step_workload(workload, **overrides)
    device = serving.device
    coefficients = serving.resolved_calibration()
    stack = serving.stack_name
    # The calibration resolved once, not once per pass.
    serving = serving.replace(hardware=device, calibration=coefficients)
    scaling_law, _ = resolve_law(law)
    N = candidates.N.astype(np.float64)
    loss = np.asarray(scaling_law.predict(N, candidates.D, candidates.aspect_ratio), dtype=np.float64)
    if acceptance is None:
        if target_tokens is None or not math.isfinite(target_tokens) or target_tokens <= 0:
            raise SpeculativeError("give the acceptance rate, or the target's training tokens to derive it from loss")
        target_loss = float(scaling_law.predict(float(shape.N), float(target_tokens), shape.aspect_ratio))
        rates = acceptance_from_loss(loss, target_loss, tightness)
        assumption = f"1 - {tightness:g} * sqrt(max(loss - {target_loss:.4f}, 0) / 2) (Pinsker bound)"
    else:
        rates = np.broadcast_to(validate_acceptance(acceptance), N.shape)
        assumption = "given"
    draft_s = forward_pass_s(candidates.n_layers, candidates.d_model, 1, context=context, workload=serving)
    verify_s = target_pass_s(shape, np.arange(1, max_lookahead + 2), workload=serving, context=context)
    best = best_lookahead(rates, draft_s, verify_s)
    memory = pair_memory(shape, candidates.n_layers, candidates.d_model, candidates.n_heads, workload=serving,
                         memory_budget_gb=memory_budget_gb)
    if not memory.target_fits:
        raise SpeculativeError(f"{memory.target_reason()}; give more memory, a smaller batch or shorter sequences, or "
                               "a smaller target")
    eligible = _within_parameter_budget(N, param_budget) & memory.feasible
    within = np.flatnonzero(eligible)
    if within.size == 0:
        budget = "no parameter budget" if param_budget is None else f"a parameter budget of {param_budget:.3g}"
        raise SpeculativeError(
            f"no draft fits the budgets: the smallest candidate has {N.min():.3g} parameters ({budget}, "
            f"{memory.capacity_gb - memory.target_gb:.3g} GB left beside the target's weights and KV cache)"
        )
    # A draft whose best lookahead is 0 is not worth running: it is not a choice.
    paying = within[best.lookahead[within] > 0]
    if paying.size == 0:
        fastest = within[np.argmin(draft_s[within])]
        raise SpeculativeError(
            f"no draft within the budgets speeds the target up: the fastest, {candidates.labels(fastest)}, takes "
            f"{1e3 * draft_s[fastest]:.3g} ms per step against {1e3 * verify_s[0]:.3g} ms for the target, at "
            f"acceptance {rates[fastest]:.2f}; allow shallower drafts or give a higher acceptance rate"
        )
    within = paying
    # Only the top n are needed in order: a partial sort keeps this O(n).
    n = min(int(top_n), within.size)
    score = best.speedup[within]
    top = within[np.argpartition(-score, n - 1)[:n]] if within.size > n else within
    top = top[np.lexsort((top, -best.speedup[top]))]
    settings = {
        "hardware": device.name, "calibration": coefficients.name, "stack": stack,
        "batch": serving.batch, "input_tokens": serving.input_tokens, "output_tokens": serving.output_tokens,
        "context": context, "dtype": serving.dtype, "max_lookahead": int(max_lookahead), "param_budget": param_budget,
        "memory_budget_gb": memory.capacity_gb, "acceptance": assumption,
        "law": law if isinstance(law, str) else scaling_law.family,
    }
    return DraftSelection(
        target=shape, candidates=candidates, loss=loss, acceptance=np.asarray(rates, dtype=np.float64),
        draft_step_s=draft_s, best_lookahead=best.lookahead, best_speedup=best.speedup, eligible=eligible,
        selected_index=top.astype(np.int64), frontier_index=pareto_frontier(draft_s, loss),
        target_step_s=float(verify_s[0]), settings=settings, memory=memory,
    )


def _within_parameter_budget(N: FloatArray, param_budget: float | None) -> NDArray[np.bool_]:
    """Drafts of at most ``param_budget`` parameters (all of them without a budget)."""
    if param_budget is None:
        return np.ones(N.shape, dtype=bool)
    if not math.isfinite(param_budget) or param_budget <= 0:
        raise SpeculativeError(f"the parameter budget must be a positive number, got {param_budget!r}")
    return N <= param_budget
