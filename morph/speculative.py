r"""Speculative decoding: how much a draft model speeds up its target, and which draft shape to train.

Speculative decoding (Leviathan, Kalman and Matias, "Fast Inference from
Transformers via Speculative Decoding", ICML 2023) lets a small *draft* model
propose ``k`` tokens one at a time, then runs the large *target* model once over
those ``k`` tokens plus one. Each drafted token is kept with probability
``min(1, p(x) / q(x))`` (``p`` the target's distribution, ``q`` the draft's);
at the first rejection a token is drawn from the normalised residual
``max(p - q, 0)``, and if all ``k`` are kept the target's pass yields one more
token for free. The emitted tokens follow ``p`` exactly (see
:func:`speculative_output_distribution`), so the draft changes the speed, never
the text's distribution.

The model
---------
With a probability ``a`` that each drafted token is kept (the *acceptance
rate*, ``sum_x min(p(x), q(x))``, one minus the total variation distance),
independently per token, a verification step yields on average ::

    E[tokens] = 1 + a + ... + a^k = (1 - a^(k+1)) / (1 - a)

tokens (:func:`expected_tokens`; ``k + 1`` at ``a = 1``, 1 at ``a = 0``). One
step costs ``k`` decode steps of the draft plus one forward pass of the target
over ``k + 1`` tokens, both from Morph's latency model
(:func:`morph.latency.forward_pass_s`) under one
:class:`~morph.latency.Workload`. The speed-up over the target alone is ::

    speedup = E[tokens] * t_target / (k * t_draft + t_verify(k + 1))

which is 1 at ``k = 0`` (no drafting) and below 1 for every ``k`` when a draft
step is slower than a target step. At batch ``b > 1`` a step counts ``b *
E[tokens]``, which holds when each sequence advances by its own accepted
count; an implementation that advances the batch in lockstep gains less. :func:`best_lookahead` finds the best ``k``
for any number of drafts at once.

Why the draft's shape matters
-----------------------------
At small batch a decode step is host-bound: it costs about ``c_fixed +
c_layer * n_layers`` whatever the width (see :mod:`morph.latency`). A deep,
narrow draft therefore pays per layer on each of its ``k`` steps, while a
wide, shallow draft of the same size is several times cheaper per step and
usually about as accurate. Yan, Agarwal and Venkataraman ("Decoding
Speculative Decoding", arXiv:2402.01528) found the same on GPUs: the speed-up
depends heavily on the draft's latency, and its language-modelling quality
does not correlate strongly with it. The draft they designed for LLaMA-65B
gave 30% more throughput than existing drafts in the paper's first version
(111% in a later one).
:func:`morph.drafts.select_drafts` ranks candidate draft shapes by speed-up
under a parameter or memory budget.

Memory
------
Target and draft stay resident together, each with its own key/value cache.
:func:`pair_memory` counts both models' weights and both caches (each holding
``batch * (input_tokens + output_tokens)`` tokens, the longest a sequence
gets) against the device's memory or a budget, with the formulas of
:func:`morph.latency.memory.serving_memory`; the command line and
:func:`morph.drafts.select_drafts` both use it.

Acceptance rates
----------------
The acceptance rate of a draft is measured, not predicted: give it per draft
when you have it. Without a measurement, :func:`acceptance_from_loss` links it
to the draft's predicted loss by a stated, adjustable assumption (a Pinsker
lower bound; see its docstring). :data:`PUBLISHED_ACCEPTANCE` lists rates
reported for one published draft pair, as reference points.

Monte Carlo
-----------
:func:`simulate_speculative` draws the acceptance of every drafted token and
counts the tokens each step yields, without using the formula; the tests check
that it agrees with :func:`expected_tokens` within its sampling error.
"""

from __future__ import annotations

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import MorphError
from .latency import DEFAULT_CONTEXT, Workload, forward_pass_s
from .latency.memory import serving_memory
from .latency.workload import as_workload
from .shapes import Shape, parse_shape

__all__ = [
    "SpeculativeError",
    "PUBLISHED_ACCEPTANCE",
    "DEFAULT_CONTEXT",
    "DEFAULT_MAX_LOOKAHEAD",
    "expected_tokens",
    "speculative_speedup",
    "validate_acceptance",
    "as_shape",
    "step_workload",
    "target_pass_s",
    "SpeculativeTiming",
    "speculative_timing",
    "BestLookahead",
    "best_lookahead",
    "PairMemory",
    "pair_memory",
    "acceptance_from_loss",
    "acceptance_rate",
    "speculative_output_distribution",
    "MonteCarlo",
    "simulate_speculative",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ShapeLike = Union[Shape, str]


class SpeculativeError(MorphError):
    """An acceptance rate, lookahead or draft request that has no answer as asked."""


PUBLISHED_ACCEPTANCE: Mapping[str, Mapping[str, Any]] = {
    "t5-xxl/t5-small/ende/greedy": {
        "acceptance": 0.75,
        "target": "T5-XXL (11B)",
        "draft": "T5-small (77M)",
        "task": "WMT English-German translation, argmax sampling (temperature 0)",
        "source": "Leviathan, Kalman, Matias, 'Fast Inference from Transformers via Speculative Decoding', "
                  "ICML 2023, Table 2",
    },
    "t5-xxl/t5-small/ende/sampled": {
        "acceptance": 0.62,
        "target": "T5-XXL (11B)",
        "draft": "T5-small (77M)",
        "task": "WMT English-German translation, sampling at temperature 1",
        "source": "Leviathan, Kalman, Matias, 'Fast Inference from Transformers via Speculative Decoding', "
                  "ICML 2023, Table 2",
    },
}
"""Acceptance rates reported for one published draft/target pair (reference points, not predictions).

They belong to an encoder-decoder pair and a task; a decoder-only draft for
another target has its own rate. The notebook uses 0.75 as its starting value.
"""

DEFAULT_MAX_LOOKAHEAD = 16
"""Largest lookahead ``k`` :func:`best_lookahead` and :func:`morph.drafts.select_drafts` consider by default."""


# --- the closed form ------------------------------------------------------------------------


def validate_acceptance(value: ArrayLike, name: str = "acceptance") -> FloatArray:
    """``value`` as a float64 array of acceptance rates, each in ``[0, 1]``.

    Raises
    ------
    SpeculativeError
        For anything else, naming the first bad value.
    """
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpeculativeError(f"the {name} rate must be a number between 0 and 1, got {value!r}") from None
    if not np.all(np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        bad = np.ravel(a)[~(np.isfinite(np.ravel(a)) & (np.ravel(a) >= 0) & (np.ravel(a) <= 1))][0]
        raise SpeculativeError(f"the {name} rate must lie between 0 and 1, got {bad:g}")
    return a


def _lookahead(value: ArrayLike, name: str = "lookahead") -> IntArray:
    k = np.asarray(value)
    if k.dtype.kind not in "iuf" or (k.dtype.kind == "f" and not np.all(np.isfinite(k) & (k == np.round(k)))):
        raise SpeculativeError(f"the {name} must be a whole number of drafted tokens, got {np.ravel(k)[:3].tolist()}")
    k = k.astype(np.int64)
    if np.any(k < 0):
        raise SpeculativeError(f"the {name} must be >= 0 drafted tokens, got {int(k.min())}")
    return k


def expected_tokens(acceptance: ArrayLike, lookahead: ArrayLike) -> FloatArray:
    """Expected tokens one verification step yields: ``(1 - a^(k+1)) / (1 - a)``.

    Accepted drafted tokens plus the one token the target's pass always adds
    (the correction at the first rejection, or a bonus token when all ``k``
    are kept). Equals ``1 + a + ... + a^k``: ``k + 1`` at ``a = 1``, 1 at
    ``a = 0`` or ``k = 0``.

    Parameters
    ----------
    acceptance : float or array
        Probability ``a`` that a drafted token is kept, in ``[0, 1]``.
    lookahead : int or array of int
        Drafted tokens per step ``k >= 0``; broadcast against ``acceptance``.

    Returns
    -------
    ndarray of float64
        Tokens per step (between 1 and ``k + 1``).

    Raises
    ------
    SpeculativeError
        For a rate outside ``[0, 1]`` or a negative or fractional lookahead.
    """
    a = validate_acceptance(acceptance)
    k = _lookahead(lookahead).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # 1 - a^(k+1) as -expm1((k+1) log a) keeps full precision for a near 1,
        # where the plain difference cancels; log(0) = -inf gives exactly 1.
        numerator = -np.expm1((k + 1.0) * np.log(a))
        ratio = numerator / (1.0 - a)
    # The limits exactly: a = 1 keeps every drafted token, k = 0 drafts none.
    return np.where(a == 1.0, k + 1.0, np.where(k == 0, 1.0, ratio))


def speculative_speedup(
    acceptance: ArrayLike, lookahead: ArrayLike, draft_step_s: ArrayLike, verify_s: ArrayLike, target_step_s: ArrayLike
) -> FloatArray:
    """Speed-up over the target alone: ``E[tokens] * t_target / (k t_draft + t_verify)``.

    Parameters
    ----------
    acceptance, lookahead : array_like
        As in :func:`expected_tokens`.
    draft_step_s : array_like
        One decode step of the draft (seconds).
    verify_s : array_like
        The target's forward pass over ``k + 1`` tokens (seconds).
    target_step_s : array_like
        One decode step of the target alone (seconds).

    Returns
    -------
    ndarray of float64
        Ratio of tokens per second with and without the draft (1 at ``k = 0``
        when ``verify_s`` equals ``target_step_s``).
    """
    k = _lookahead(lookahead)
    step = k * np.asarray(draft_step_s, dtype=np.float64) + np.asarray(verify_s, dtype=np.float64)
    if np.any(~(step > 0)):
        raise SpeculativeError("a step must take a positive time; check the draft and verification times")
    return expected_tokens(acceptance, k) * np.asarray(target_step_s, dtype=np.float64) / step


# --- speed-up per draft and lookahead -------------------------------------------------------


def as_shape(value: ShapeLike) -> Shape:
    """A :class:`~morph.shapes.Shape`, or one read from text such as ``"32x4096"``."""
    return value if isinstance(value, Shape) else parse_shape(value)


def step_workload(workload: Workload | None = None, **overrides: Any) -> Workload:
    """The workload a speculative step is timed under: ``workload`` with some settings changed.

    Parameters
    ----------
    workload : Workload, optional
        Hardware, calibration or stack, batch and dtype (default
        :class:`~morph.latency.Workload`). Its token counts do not time a
        step, which is timed at a given ``context``, the tokens in the
        key/value cache (see :func:`morph.latency.forward_pass_s`); they size
        the caches that :func:`pair_memory` counts.
    **overrides
        ``hardware``, ``calibration``, ``stack``, ``batch`` or ``dtype``:
        change one setting of ``workload``.

    Raises
    ------
    SpeculativeError
        For a token count, which a step does not use.
    """
    tokens = sorted({"input_tokens", "output_tokens"} & set(overrides))
    if tokens:
        raise SpeculativeError(f"a speculative step is timed at a context of cached tokens, not with "
                               f"{' or '.join(tokens)}; give context= instead")
    return as_workload(workload, **overrides)


def target_pass_s(
    target: ShapeLike, tokens: ArrayLike, *, workload: Workload | None = None, context: ArrayLike = DEFAULT_CONTEXT
) -> FloatArray:
    """The target's forward pass over ``tokens`` new tokens (seconds), with its own heads.

    ``tokens = 1`` is one decode step of the target alone, ``tokens = k + 1``
    the verification of ``k`` drafted tokens; ``np.arange(1, K + 2)`` gives
    the ``verify_s`` that :func:`best_lookahead` searches.
    """
    shape = as_shape(target)
    return forward_pass_s(shape.n_layers, shape.d_model, tokens, context=context, n_heads=shape.n_heads,
                          n_kv_heads=shape.n_kv_heads, workload=workload)


@dataclass(frozen=True)
class SpeculativeTiming:
    """Speculative decoding with given drafts and lookaheads (float64 arrays, broadcast shape).

    Attributes
    ----------
    acceptance : ndarray
        Acceptance rate per drafted token.
    lookahead : ndarray of int
        Drafted tokens per step ``k``.
    expected_tokens : ndarray
        Tokens per verification step.
    draft_step_s : ndarray
        One decode step of the draft (seconds).
    verify_s : ndarray
        The target's pass over ``k + 1`` tokens (seconds).
    step_time_s : ndarray
        ``k * draft_step_s + verify_s`` (seconds).
    tokens_per_s : ndarray
        ``batch * expected_tokens / step_time_s`` (tokens/s).
    target_step_s : float
        One decode step of the target alone (seconds).
    target_tokens_per_s : float
        The target alone (tokens/s).
    speedup : ndarray
        ``tokens_per_s / target_tokens_per_s``.
    """

    acceptance: FloatArray
    lookahead: IntArray
    expected_tokens: FloatArray
    draft_step_s: FloatArray
    verify_s: FloatArray
    step_time_s: FloatArray
    tokens_per_s: FloatArray
    target_step_s: float
    target_tokens_per_s: float
    speedup: FloatArray


def speculative_timing(
    target: ShapeLike,
    draft_layers: ArrayLike,
    draft_d_model: ArrayLike,
    acceptance: ArrayLike,
    lookahead: ArrayLike,
    *,
    workload: Workload | None = None,
    context: int = DEFAULT_CONTEXT,
    **overrides: Any,
) -> SpeculativeTiming:
    """Step time, tokens per second and speed-up of drafts for ``target`` at given lookaheads.

    Parameters
    ----------
    target : Shape or str
        The target model (``"32x4096"``).
    draft_layers, draft_d_model : int or array of int
        Draft shapes; broadcast with ``acceptance`` and ``lookahead`` (give
        ``lookahead`` a trailing axis for a drafts x k table).
    acceptance : float or array
        Acceptance rate per drafted token, in ``[0, 1]``.
    lookahead : int or array of int
        Drafted tokens per step, >= 0.
    workload, context, **overrides
        The workload a step is timed under, as in :func:`step_workload`.
    """
    serving = step_workload(workload, **overrides)
    batch = serving.batch
    a = validate_acceptance(acceptance)
    k = _lookahead(lookahead)
    draft = forward_pass_s(draft_layers, draft_d_model, 1, context=context, workload=serving)
    verify = target_pass_s(target, k + 1, workload=serving, context=context)
    target_step = float(target_pass_s(target, 1, workload=serving, context=context))
    tokens = expected_tokens(a, k)
    step = k * draft + verify
    out_shape = np.broadcast_shapes(a.shape, k.shape, draft.shape)
    per_s = batch * tokens / step
    target_per_s = batch / target_step

    def full(x: ArrayLike) -> NDArray:
        return np.broadcast_to(x, out_shape).copy()

    return SpeculativeTiming(
        acceptance=full(a), lookahead=full(k), expected_tokens=full(tokens), draft_step_s=full(draft),
        verify_s=full(verify), step_time_s=full(step), tokens_per_s=full(per_s), target_step_s=target_step,
        target_tokens_per_s=target_per_s, speedup=full(per_s / target_per_s),
    )


@dataclass(frozen=True)
class BestLookahead:
    """The best lookahead per draft and the speed-up it gives.

    Attributes
    ----------
    lookahead : ndarray of int
        Best ``k`` (0 means drafting does not pay: the draft is too slow or
        its tokens too rarely kept).
    speedup : ndarray
        Speed-up at that ``k`` (>= 1, since ``k = 0`` gives exactly 1).
    """

    lookahead: IntArray
    speedup: FloatArray


def best_lookahead(acceptance: ArrayLike, draft_step_s: ArrayLike, verify_s: ArrayLike) -> BestLookahead:
    """Best lookahead ``k`` in ``0 .. len(verify_s) - 1`` for many drafts at once.

    ``E[tokens]`` is accumulated as ``1 + a + ... + a^k`` while ``k`` grows,
    so the whole search is a few array operations per ``k`` with no division
    by ``1 - a``, and no drafts x k table is held in memory. Ties go to the
    smaller ``k`` (less drafting for the same speed).

    Parameters
    ----------
    acceptance : array_like
        Acceptance rate per draft, in ``[0, 1]``.
    draft_step_s : array_like
        Decode step of each draft (seconds); broadcast with ``acceptance``.
    verify_s : 1-D array_like
        The target's pass over ``k + 1`` tokens for ``k = 0, 1, ...``
        (seconds); ``verify_s[0]`` is one decode step of the target alone.
        Build it with ``target_pass_s(target, np.arange(1, K + 2))``.

    Returns
    -------
    BestLookahead
    """
    a = validate_acceptance(acceptance)
    draft = np.asarray(draft_step_s, dtype=np.float64)
    verify = np.asarray(verify_s, dtype=np.float64)
    if verify.ndim != 1 or verify.size == 0 or np.any(~(verify > 0)):
        raise SpeculativeError("verify_s must be a non-empty 1-D array of positive times, one per lookahead 0, 1, ...")
    if np.any(~(draft > 0)):
        raise SpeculativeError("draft step times must be positive seconds")
    shape = np.broadcast_shapes(a.shape, draft.shape)
    target = verify[0]
    best = np.ones(shape)
    best_k = np.zeros(shape, dtype=np.int64)
    power = np.ones(shape)  # a^k
    tokens = np.ones(shape)  # 1 + a + ... + a^k
    for k in range(1, verify.size):
        power *= a
        tokens += power
        speedup = tokens * target / (k * draft + verify[k])
        better = speedup > best
        np.copyto(best, speedup, where=better)
        np.copyto(best_k, k, where=better)
    return BestLookahead(lookahead=best_k, speedup=best)


# --- memory ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairMemory:
    """Memory a target and each of its drafts hold together while decoding speculatively.

    Both models stay resident with their own key/value caches, each sized by
    its own layers, width and key/value heads (see
    :func:`morph.latency.memory.serving_memory`).

    Attributes
    ----------
    target_weights_gb, target_kv_cache_gb : float
        The target's weights and key/value cache (GB, 1 GB = 1e9 bytes).
    draft_weights_gb, draft_kv_cache_gb : ndarray
        Each draft's weights and key/value cache (GB).
    capacity_gb : float
        Memory available (GB): the budget given, else the device's.
    capacity : str
        Where that memory comes from, in words, for the reasons
        (``"the a100-40gb has 40 GB"``).
    """

    target_weights_gb: float
    target_kv_cache_gb: float
    draft_weights_gb: FloatArray
    draft_kv_cache_gb: FloatArray
    capacity_gb: float
    capacity: str

    @property
    def target_gb(self) -> float:
        """The target alone: weights plus key/value cache (GB)."""
        return self.target_weights_gb + self.target_kv_cache_gb

    @property
    def memory_gb(self) -> FloatArray:
        """Target and draft together, weights and both caches, per draft (GB)."""
        return self.target_gb + self.draft_weights_gb + self.draft_kv_cache_gb

    @property
    def target_fits(self) -> bool:
        """Whether the target alone fits."""
        return self.target_gb <= self.capacity_gb

    @property
    def feasible(self) -> NDArray[np.bool_]:
        """Whether target and draft fit together, per draft."""
        return self.memory_gb <= self.capacity_gb

    def target_reason(self) -> str:
        """Why the target alone does not fit (empty where it does)."""
        if self.target_fits:
            return ""
        return (f"the target alone needs {self.target_gb:.4g} GB (weights {self.target_weights_gb:.4g} GB + KV cache "
                f"{self.target_kv_cache_gb:.4g} GB) but {self.capacity}")

    def reasons(self, index: ArrayLike | None = None) -> list[str | None]:
        """Why each draft (or each in ``index``) does not fit beside the target: None where it does."""
        i = np.arange(self.draft_weights_gb.size) if index is None else np.asarray(index, dtype=np.int64)
        if not self.target_fits:
            # Nothing fits beside a target that does not fit alone: say so, not the sum.
            return [self.target_reason()] * i.size
        total, weights, cache = (np.ravel(a)[i].tolist() for a in
                                 (self.memory_gb, self.draft_weights_gb, self.draft_kv_cache_gb))
        return [
            None if t <= self.capacity_gb else
            (f"target and draft need {t:.4g} GB (target {self.target_gb:.4g} GB, draft weights {w:.4g} GB + KV "
             f"cache {c:.4g} GB) but {self.capacity}")
            for t, w, c in zip(total, weights, cache)
        ]


def pair_memory(
    target: ShapeLike,
    draft_layers: ArrayLike,
    draft_d_model: ArrayLike,
    draft_heads: ArrayLike | None = None,
    draft_kv_heads: ArrayLike | None = None,
    *,
    workload: Workload | None = None,
    memory_budget_gb: float | None = None,
) -> PairMemory:
    """Weights and key/value caches of ``target`` and each draft, against the memory available.

    Parameters
    ----------
    target : Shape or str
        The target model, with its own heads.
    draft_layers, draft_d_model : int or array of int
        Draft shapes (blocks, features).
    draft_heads, draft_kv_heads : int or array of int, optional
        Draft heads; their ratio shrinks a grouped-query draft's cache.
    workload : Workload, optional
        Hardware, batch, dtype and the token counts: each cache holds
        ``batch * (input_tokens + output_tokens)`` tokens, the most a
        sequence reaches (default :class:`~morph.latency.Workload`).
    memory_budget_gb : float, optional
        Memory available (GB, 1e9 bytes); defaults to the hardware's.

    Raises
    ------
    SpeculativeError
        For a budget that is not a positive, finite number.
    """
    shape = as_shape(target)
    serving = workload if workload is not None else Workload()
    if memory_budget_gb is None:
        capacity_gb = float(serving.device.memory_gb)
        capacity = f"the {serving.hardware_name} has {capacity_gb:g} GB"
    else:
        capacity_gb = float(memory_budget_gb)
        if not math.isfinite(capacity_gb) or capacity_gb <= 0:
            raise SpeculativeError(f"the memory budget must be a positive number of GB, got {memory_budget_gb!r}")
        capacity = f"the memory budget is {capacity_gb:g} GB"
    own = serving_memory(shape.n_layers, shape.d_model, shape.n_heads, shape.n_kv_heads, workload=serving,
                         vocab=shape.vocab)
    drafts = serving_memory(draft_layers, draft_d_model, draft_heads, draft_kv_heads, workload=serving)
    return PairMemory(
        target_weights_gb=float(own.weights_gb), target_kv_cache_gb=float(own.kv_cache_gb),
        draft_weights_gb=np.ravel(drafts.weights_gb), draft_kv_cache_gb=np.ravel(drafts.kv_cache_gb),
        capacity_gb=capacity_gb, capacity=capacity,
    )


# --- acceptance ------------------------------------------------------------------------------


def acceptance_from_loss(draft_loss: ArrayLike, target_loss: ArrayLike, tightness: float = 1.0) -> FloatArray:
    r"""Acceptance rate implied by the loss gap: ``1 - tightness * sqrt(max(gap, 0) / 2)``, clipped to [0, 1].

    The assumption, stated: the target is close enough to the data that the
    draft's excess loss (nats per token) is the Kullback-Leibler divergence
    ``KL(p || q)`` of the draft ``q`` from the target ``p``. The acceptance
    rate is ``1 - TV(p, q)`` at each position (Leviathan et al., 2023), and
    Pinsker's inequality bounds ``TV <= sqrt(KL / 2)``; averaging over
    positions with Jensen's inequality (the square root is concave) gives
    ``a >= 1 - sqrt(gap / 2)``. So ``tightness = 1`` is that *lower bound*
    (pessimistic: real drafts are usually accepted more often); a smaller
    ``tightness`` assumes the bound is loose by that factor, a larger one is
    more pessimistic still. A draft no worse than the target gets 1.

    Parameters
    ----------
    draft_loss, target_loss : array_like
        Predicted or measured loss (nats per token).
    tightness : float
        Factor on the Pinsker term, > 0 (1 = the bound itself).

    Returns
    -------
    ndarray of float64
        Acceptance rate per drafted token, in ``[0, 1]``.
    """
    if not (isinstance(tightness, (int, float, np.floating, np.integer)) and math.isfinite(tightness)
            and tightness > 0):
        raise SpeculativeError(f"the tightness of the acceptance assumption must be a number > 0, got {tightness!r}")
    gap = np.asarray(draft_loss, dtype=np.float64) - np.asarray(target_loss, dtype=np.float64)
    if not np.all(np.isfinite(gap)):
        raise SpeculativeError("draft and target losses must be finite numbers (nats per token)")
    return np.clip(1.0 - float(tightness) * np.sqrt(np.maximum(gap, 0.0) / 2.0), 0.0, 1.0)


def _distribution(value: ArrayLike, name: str) -> FloatArray:
    p = np.asarray(value, dtype=np.float64)
    if p.ndim < 1 or not np.all(np.isfinite(p)) or np.any(p < 0) or not np.allclose(p.sum(axis=-1), 1.0, atol=1e-9):
        raise SpeculativeError(f"{name} must be probabilities over the last axis (non-negative, summing to 1)")
    return p


def acceptance_rate(target_probs: ArrayLike, draft_probs: ArrayLike) -> FloatArray:
    """Probability a drafted token is kept: ``sum_x min(p(x), q(x))`` (over the last axis).

    Parameters
    ----------
    target_probs, draft_probs : array_like
        Next-token distributions ``p`` (target) and ``q`` (draft).
    """
    p = _distribution(target_probs, "target_probs")
    q = _distribution(draft_probs, "draft_probs")
    return np.minimum(p, q).sum(axis=-1)


def speculative_output_distribution(target_probs: ArrayLike, draft_probs: ArrayLike) -> FloatArray:
    """Distribution of the token speculative sampling emits at one position.

    A token ``x`` drawn from ``q`` is kept with probability ``min(1, p(x) /
    q(x))``, which contributes ``min(p(x), q(x))``; on rejection (probability
    ``1 - sum min(p, q)``) a token is drawn from ``max(p - q, 0)``
    normalised. Since ``sum max(p - q, 0) = 1 - sum min(p, q)``, the two parts
    add up to ``min(p, q) + max(p - q, 0) = p``: the output follows the
    target exactly, whatever the draft. Computed here term by term (not
    returned as ``p``) so the claim can be checked.

    Returns
    -------
    ndarray of float64
        Probabilities over the last axis.
    """
    p = _distribution(target_probs, "target_probs")
    q = _distribution(draft_probs, "draft_probs")
    kept = np.minimum(p, q)
    residual = np.maximum(p - q, 0.0)
    mass = residual.sum(axis=-1, keepdims=True)
    rejected = 1.0 - kept.sum(axis=-1, keepdims=True)
    # p == q: nothing is ever rejected and the residual is empty.
    with np.errstate(invalid="ignore", divide="ignore"):
        resample = np.where(mass > 0, residual / mass, 0.0)
    return kept + rejected * resample


# --- Monte Carlo -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MonteCarlo:
    """Simulated tokens per verification step (broadcast shape of the inputs).

    Attributes
    ----------
    mean_tokens : ndarray
        Mean tokens per step over the simulated steps.
    standard_error : ndarray
        Standard error of that mean (sample standard deviation / sqrt(steps)).
    steps : int
        Steps simulated per (acceptance, lookahead) pair.
    """

    mean_tokens: FloatArray
    standard_error: FloatArray
    steps: int


def simulate_speculative(acceptance: ArrayLike, lookahead: ArrayLike, steps: int = 20_000, seed: int = 0) -> MonteCarlo:
    """Simulate drafting and verification, token by token, without the closed form.

    Each step drafts ``k`` tokens, each kept independently with probability
    ``a`` (a uniform draw below ``a``); the step keeps the drafted tokens up
    to the first rejection and adds one token from the target's pass (the
    correction, or the bonus token when all ``k`` are kept).

    Parameters
    ----------
    acceptance, lookahead : array_like
        Broadcast against each other; each pair is simulated separately.
    steps : int
        Verification steps per pair.
    seed : int
        Seed of the random generator (results are reproducible).
    """
    if not isinstance(steps, (int, np.integer)) or steps < 2:
        raise SpeculativeError(f"simulate at least 2 steps, got {steps!r}")
    a = validate_acceptance(acceptance)
    k = _lookahead(lookahead)
    a, k = np.broadcast_arrays(a, k)
    rng = np.random.default_rng(seed)
    mean = np.empty(a.shape)
    error = np.empty(a.shape)
    for index in np.ndindex(a.shape):
        kept = rng.random((steps, int(k[index]))) < a[index]
        # Tokens before the first rejection: the run of leading True values.
        accepted = np.cumprod(kept, axis=1).sum(axis=1)
        tokens = accepted + 1.0
        mean[index] = tokens.mean()
        error[index] = tokens.std(ddof=1) / math.sqrt(steps)
    return MonteCarlo(mean_tokens=mean, standard_error=error, steps=int(steps))
