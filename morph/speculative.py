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
(:func:`forward_pass_s`). The speed-up over the target alone is ::

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
:func:`select_drafts` ranks candidate draft shapes by speed-up under a
parameter or memory budget.

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

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from . import FitResult, Hardware, ScalingLaw, get_hardware
from .errors import MorphError
from .frontier import Candidates, pareto_frontier, resolve_law
from .latency import Calibration, overlap, resolve_calibration
from .shapes import VOCAB_SIZE, Shape, non_embedding_parameters, parse_shape

__all__ = [
    "SpeculativeError",
    "PUBLISHED_ACCEPTANCE",
    "DEFAULT_CONTEXT",
    "DEFAULT_MAX_LOOKAHEAD",
    "expected_tokens",
    "forward_pass_s",
    "speculative_speedup",
    "SpeculativeTiming",
    "speculative_timing",
    "BestLookahead",
    "best_lookahead",
    "acceptance_from_loss",
    "acceptance_rate",
    "speculative_output_distribution",
    "MonteCarlo",
    "simulate_speculative",
    "DraftSelection",
    "select_drafts",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ShapeLike = Union[Shape, str]
LawLike = Union[str, ScalingLaw, FitResult]


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

DEFAULT_CONTEXT = 256
"""Tokens in the key/value cache when a step is timed: the middle of Morph's default
workload (a 128-token prompt and 256 generated tokens)."""

DEFAULT_MAX_LOOKAHEAD = 16
"""Largest lookahead ``k`` :func:`best_lookahead` and :func:`select_drafts` consider by default."""

_DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}


# --- the closed form ------------------------------------------------------------------------


def _acceptance(value: ArrayLike, name: str = "acceptance") -> FloatArray:
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
    a = _acceptance(acceptance)
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


# --- time of a forward pass -----------------------------------------------------------------


def _whole(value: ArrayLike, name: str, minimum: int) -> FloatArray:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or (
        array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array)))
    ):
        raise SpeculativeError(f"{name} must be whole numbers, got {np.ravel(array)[:3].tolist()}")
    if array.size and array.min() < minimum:
        raise SpeculativeError(f"{name} must be >= {minimum}, got {np.ravel(array).min()}")
    return array.astype(np.float64)


def _streamed_parameters(layers: FloatArray, width: FloatArray, vocab: float) -> FloatArray:
    """Parameters read per pass with multi-head attention: all but the input embedding (floats).

    :func:`morph.shapes.non_embedding_parameters` plus the output head, in
    float64: its int64 division costs several times these few float
    operations on 100,000 shapes, and every count below 2**53 is exact in
    float64 (a test checks both agree).
    """
    ffn = np.ceil(np.floor(8.0 * width / 3.0) / 256.0) * 256.0
    # q, k, v, o (d x d each), three SwiGLU matrices, two norm gains; then the final norm and the head.
    return layers * (width * (4.0 * width + 3.0 * ffn + 2.0)) + width * (1.0 + vocab)


def forward_pass_s(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    tokens: ArrayLike = 1,
    *,
    context: ArrayLike = DEFAULT_CONTEXT,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    hardware: str | Hardware = "a100-40gb",
    calibration: str | Calibration | None = None,
    batch: ArrayLike = 1,
    dtype: str = "bf16",
    vocab: int = VOCAB_SIZE,
) -> FloatArray:
    """Time of one forward pass over ``tokens`` new tokens after ``context`` cached ones (seconds).

    The verification pass of speculative decoding (``tokens = k + 1``) and,
    with ``tokens = 1``, one decode step. It is one pass of Morph's latency
    model (:mod:`morph.latency`): the host work is paid once per pass,
    ``c_fixed + c_layer * n_layers``, whatever the number of tokens, and the
    device time is the roofline of the pass,

    - FLOPs ``= batch * (2 P tokens + 4 n_layers d_model A)`` with ``P`` the
      streamed parameters (all but the input embedding) and ``A = tokens *
      context + tokens (tokens + 1) / 2`` the cached positions the new tokens
      attend to (token ``j`` sees ``context + j``);
    - bytes ``= s (P + batch (context + tokens) 2 n_layers d_model n_kv_heads
      / n_heads)``: the weights are streamed *once* for all the tokens, plus
      the key/value cache read and written;

    combined with the calibration's overlap. At batch 1 the weights dominate
    the bytes, so a pass over a few tokens costs about as much as one token:
    that is what makes verification cheap. With ``tokens = 1`` this is
    exactly the decode step :func:`morph.latency.predict_latency` prices for
    one output token after a prompt of ``context`` tokens.

    Parameters
    ----------
    n_layers, d_model : int or array of int
        Depth (blocks) and width (features); broadcast with ``tokens``,
        ``context`` and ``batch``.
    tokens : int or array of int
        New tokens in the pass (>= 1).
    context : int or array of int
        Tokens already in the key/value cache (>= 0).
    n_heads, n_kv_heads : int or array of int, optional
        Query and key/value heads; only their ratio matters (cache size).
    hardware : str or Hardware
        Preset slug or a :class:`~morph.hardware.Hardware`.
    calibration : str, Calibration or None
        Latency coefficients; None takes the hardware's default.
    batch : int or array of int
        Sequences in the pass.
    dtype : {"bf16", "fp16", "fp32"}
        Weights, activations and cache.
    vocab : int
        Vocabulary (tokens), for the output head.

    Returns
    -------
    ndarray of float64
        Seconds per pass, in the broadcast shape.
    """
    device = get_hardware(hardware)
    coefficients = resolve_calibration(calibration, device)
    name = str(dtype).strip().lower()
    if name not in _DTYPE_BYTES:
        raise SpeculativeError(f"dtype {dtype!r} is not supported; use one of {', '.join(_DTYPE_BYTES)}")
    layers = _whole(n_layers, "n_layers", 1)
    width = _whole(d_model, "d_model", 1)
    new = _whole(tokens, "tokens", 1)
    cached = _whole(context, "context", 0)
    sequences = _whole(batch, "batch", 1)
    kv_fraction: float | FloatArray = 1.0
    if n_heads is not None and n_kv_heads is not None:
        heads, kv_heads = _whole(n_heads, "n_heads", 1), _whole(n_kv_heads, "n_kv_heads", 1)
        kv_fraction = kv_heads / heads
        streamed = non_embedding_parameters(layers.astype(np.int64), width.astype(np.int64), heads.astype(np.int64),
                                            kv_heads.astype(np.int64)).astype(np.float64) + float(vocab) * width
    else:
        streamed = _streamed_parameters(layers, width, float(vocab))
    bytes_per = _DTYPE_BYTES[name]
    attended = new * cached + new * (new + 1.0) / 2.0
    flops = sequences * (2.0 * streamed * new + 4.0 * layers * width * attended)
    traffic = bytes_per * (streamed + sequences * (cached + new) * 2.0 * kv_fraction * layers * width)
    device_s = np.maximum(
        flops / (coefficients.eta_flops * device.peak_flops(name)),
        traffic / (coefficients.eta_bw * device.memory_bandwidth),
    )
    host_s = coefficients.c_fixed_s + coefficients.c_layer_s * layers
    return np.asarray(overlap(host_s, device_s, coefficients.overlap_p), dtype=np.float64)


# --- speed-up per draft and lookahead -------------------------------------------------------


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


def _shape(value: ShapeLike) -> Shape:
    return value if isinstance(value, Shape) else parse_shape(value)


def speculative_timing(
    target: ShapeLike,
    draft_layers: ArrayLike,
    draft_d_model: ArrayLike,
    acceptance: ArrayLike,
    lookahead: ArrayLike,
    *,
    hardware: str | Hardware = "a100-40gb",
    calibration: str | Calibration | None = None,
    batch: int = 1,
    context: int = DEFAULT_CONTEXT,
    dtype: str = "bf16",
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
    hardware, calibration, batch, context, dtype
        The workload, as in :func:`forward_pass_s`.
    """
    shape = _shape(target)
    workload = dict(hardware=hardware, calibration=calibration, batch=batch, context=context, dtype=dtype)
    a = _acceptance(acceptance)
    k = _lookahead(lookahead)
    draft = forward_pass_s(draft_layers, draft_d_model, 1, **workload)
    verify = forward_pass_s(shape.n_layers, shape.d_model, k + 1, n_heads=shape.n_heads,
                            n_kv_heads=shape.n_kv_heads, **workload)
    target_step = float(forward_pass_s(shape.n_layers, shape.d_model, 1, n_heads=shape.n_heads,
                                       n_kv_heads=shape.n_kv_heads, **workload))
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
        Build it with ``forward_pass_s(L, d, np.arange(1, K + 2))``.

    Returns
    -------
    BestLookahead
    """
    a = _acceptance(acceptance)
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
    a = _acceptance(acceptance)
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


# --- draft selection -------------------------------------------------------------------------


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
        Within the parameter and memory budgets.
    selected_index : ndarray of int
        The top drafts, best first, among those within the budgets whose
        best lookahead is above 0 (a draft that does not pay is no choice).
    frontier_index : ndarray of int
        The (draft latency, draft loss) Pareto frontier, fastest first.
    target_step_s : float
        One decode step of the target alone (seconds).
    settings : dict
        Budgets, workload and the acceptance assumption.
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

    def __len__(self) -> int:
        return len(self.candidates)

    def to_frame(self, index: ArrayLike | None = None) -> pd.DataFrame:
        """One row per draft (or per ``index``): shape, parameters, loss, acceptance, timing, best ``k``."""
        i = np.arange(len(self)) if index is None else np.asarray(index, dtype=np.int64)
        c = self.candidates.take(i)
        return pd.DataFrame({
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
            memory = self.settings["memory_budget_gb"]
            return f"target and draft weights need more than the {memory:.3g} GB memory budget"
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
    hardware: str | Hardware = "a100-40gb",
    calibration: str | Calibration | None = None,
    batch: int = 1,
    context: int = DEFAULT_CONTEXT,
    dtype: str = "bf16",
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
        Without it, :func:`acceptance_from_loss` with ``tightness`` maps each
        draft's predicted loss gap to the target to a rate (needs
        ``target_tokens``).
    law : preset name, ScalingLaw or FitResult
        Loss model for the drafts (and the target).
    target_tokens : float, optional
        Training tokens of the target, for its predicted loss.
    tightness : float
        See :func:`acceptance_from_loss`.
    max_lookahead : int
        Lookaheads ``0 .. max_lookahead`` are searched.
    param_budget : float, optional
        Largest draft (parameters).
    memory_budget_gb : float, optional
        Memory for the weights of target and draft together (GB, 1e9
        bytes); defaults to the hardware's memory. The key/value cache is
        not counted.
    top_n : int
        Drafts to keep.
    hardware, calibration, batch, context, dtype
        The workload, as in :func:`forward_pass_s`.

    Raises
    ------
    SpeculativeError
        No candidates, bad budgets, no draft within them, or none of those
        that speeds the target up.
    """
    shape = _shape(target)
    if len(candidates) == 0:
        raise SpeculativeError("there are no draft candidates; widen the parameter range")
    if not isinstance(max_lookahead, (int, np.integer)) or max_lookahead < 0:
        raise SpeculativeError(f"the largest lookahead must be a whole number >= 0, got {max_lookahead!r}")
    if not isinstance(top_n, (int, np.integer)) or top_n < 1:
        raise SpeculativeError(f"keep at least one draft, got top_n={top_n!r}")
    device = get_hardware(hardware)
    workload = dict(hardware=device, calibration=resolve_calibration(calibration, device), batch=batch,
                    context=context, dtype=dtype)
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
        rates = np.broadcast_to(_acceptance(acceptance), N.shape)
        assumption = "given"
    draft_s = forward_pass_s(candidates.n_layers, candidates.d_model, 1, **workload)
    verify_s = forward_pass_s(shape.n_layers, shape.d_model, np.arange(1, max_lookahead + 2), n_heads=shape.n_heads,
                              n_kv_heads=shape.n_kv_heads, **workload)
    best = best_lookahead(rates, draft_s, verify_s)
    eligible = _within_budgets(shape, N, param_budget, memory_budget_gb, device, dtype)
    memory = device.memory_gb if memory_budget_gb is None else float(memory_budget_gb)
    within = np.flatnonzero(eligible)
    if within.size == 0:
        target_gb = shape.N * _DTYPE_BYTES[str(dtype).strip().lower()] / 1e9
        if target_gb >= memory:
            raise SpeculativeError(f"the target's weights alone take {target_gb:.3g} GB, more than the {memory:.3g} GB "
                                   "memory budget; raise the budget or use a smaller target")
        budget = "no parameter budget" if param_budget is None else f"a parameter budget of {param_budget:.3g}"
        raise SpeculativeError(
            f"no draft fits the budgets: the smallest candidate has {N.min():.3g} parameters ({budget}, "
            f"{memory - target_gb:.3g} GB left beside the target's weights)"
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
        "hardware": device.name, "calibration": workload["calibration"].name, "batch": batch, "context": context,
        "dtype": dtype, "max_lookahead": int(max_lookahead), "param_budget": param_budget,
        "memory_budget_gb": memory, "acceptance": assumption, "law": law if isinstance(law, str) else scaling_law.family,
    }
    return DraftSelection(
        target=shape, candidates=candidates, loss=loss, acceptance=np.asarray(rates, dtype=np.float64),
        draft_step_s=draft_s, best_lookahead=best.lookahead, best_speedup=best.speedup, eligible=eligible,
        selected_index=top.astype(np.int64), frontier_index=pareto_frontier(draft_s, loss),
        target_step_s=float(verify_s[0]), settings=settings,
    )


def _within_budgets(
    target: Shape, N: FloatArray, param_budget: float | None, memory_budget_gb: float | None, device: Hardware,
    dtype: str,
) -> NDArray[np.bool_]:
    """Drafts within the parameter budget whose weights fit in memory beside the target's."""
    ok = np.ones(N.shape, dtype=bool)
    if param_budget is not None:
        if not math.isfinite(param_budget) or param_budget <= 0:
            raise SpeculativeError(f"the parameter budget must be a positive number, got {param_budget!r}")
        ok &= N <= param_budget
    memory = device.memory_gb if memory_budget_gb is None else memory_budget_gb
    if not math.isfinite(memory) or memory <= 0:
        raise SpeculativeError(f"the memory budget must be a positive number of GB, got {memory!r}")
    bytes_per = _DTYPE_BYTES[str(dtype).strip().lower()]
    ok &= (float(target.N) + N) * bytes_per <= memory * 1e9
    return ok
