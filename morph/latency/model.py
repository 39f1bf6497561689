r"""Latency of autoregressive generation per model shape: host overhead, roofline and their overlap.

The observation this module models (Bian et al., 2025, sections 1 and 6): at
small batch, two models with the same parameter count can differ 1.8x (and up
to 3.5x) in generation time, and the time grows about linearly with depth and
only weakly with width. Streaming the weights from memory (the roofline) cannot
explain it: the weight-streaming floor of a 1.4B model in bf16 on an A100 40GB
is about 1.9 ms per token, while Hugging Face ``generate`` takes 7.7-15.6 ms.
The rest is host work paid for every layer of every forward pass: Python,
framework dispatch, kernel launches.

The model
---------
A ``generate`` call with a prompt of ``I`` tokens and ``O`` output tokens at
batch ``b`` is one prefill forward pass over the prompt (which yields the first
token) and ``O - 1`` decode steps of one token each. Every forward pass has

host time
    ``h = c_fixed + c_layer * n_layers`` (seconds): per-pass framework work plus
    per-layer launch and dispatch work, independent of width and batch;
device time
    ``g = max(FLOPs / (eta_flops * peak), bytes / (eta_bw * bandwidth))``: the
    roofline, with efficiencies ``0 < eta <= 1``.

For a decode step at context ``c`` (tokens in the key/value cache)::

    FLOPs = b * (2 * P_streamed + 4 * n_layers * d_model * c)
    bytes = P_streamed * s + b * c * (2 * n_layers * d_model * n_kv_heads / n_heads) * s

where ``P_streamed`` counts every parameter except the input embedding (a
lookup, not a product; an untied or tied output head is streamed either way)
and ``s`` is the dtype's bytes per element. The key/value cache grows by one
token per step; its sum over the steps is taken in closed form.

Host and device time combine as a p-norm, the *overlap*::

    overlap(h, g) = (h**p + g**p) ** (1 / p)

``p = 1`` is synchronous execution (a CPU backend: the same cores run the
framework and the arithmetic, so the times add). Large ``p`` (8 for GPUs) is
asynchronous launch: the GPU runs kernels while the host queues the next ones,
so each token costs whichever is slower, with a smooth penalty (``2**(1/p)``,
9% at ``p = 8``) where the two are equal, as each step still synchronises to
read the sampled token back.

Why the overlap matters
-----------------------
The two published A100 timings (Open-LM-1B, 24x2048: 3.61 s; Morph-1B,
12x3072: 1.96 s; 128 input, 256 output tokens, batch 1, bf16) fix the two host
coefficients. With a pure sum (``p = 1``) the wider model's larger weights take
device time that the fit must pay back with a *negative* ``c_fixed`` for every
``eta_bw`` below about 1.82, i.e. unless the GPU streamed memory 82% faster than
its datasheet allows (at ``eta_bw = 0.7``: ``c_fixed = -1.9 ms``).
``morph.latency.calibration.additive_host_coefficients`` does this arithmetic and the
tests check it; ``docs/latency.md`` tabulates it. With asynchronous overlap
(``p = 8``) the device time hides behind the host time and the timings are
reproduced with positive coefficients (about 1.2 ms per pass and 0.54 ms per
layer): decode is host-bound, so latency is about linear in depth and weak in
width, the paper's observation.

Within one decode the device time changes with the context while the host time
does not; host and device time are combined over :data:`DECODE_SEGMENTS` equal
runs of steps, each summed exactly. By Minkowski's inequality this never
exceeds the step-by-step sum, is exact for ``p = 1`` and is within 1% of it
otherwise (tested; the gap is largest where host and device time cross mid-decode).

The roofline floor (:func:`roofline_latency`) is the same call with ``eta = 1``
and no host time: a lower bound no prediction goes below.

Everything is vectorised: shapes, batch and token counts broadcast as numpy
arrays, and 100,000 shapes take 5-7 ms on two cores (float32 arithmetic, see
:data:`PRECISION`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import LatencyError, ShapeError
from ..shapes import VOCAB_SIZE
from .hardware import DTYPE_BYTES, Hardware, canonical_dtype, get_hardware
from .record import Calibration, resolve_calibration
from .stacks import stack_calibration
from .workload import Workload, workload_arguments

__all__ = [
    "DECODE_SEGMENTS",
    "LatencyPrediction",
    "DEFAULT_CONTEXT",
    "predict_latency",
    "roofline_latency",
    "forward_pass_s",
    "overlap",
    "GenerationWork",
    "generation_work",
    "decode_lines",
    "prefill_device_s",
    "segment_device_s",
    "segments",
    "predict",
    "evaluate",
]

FloatArray = NDArray[np.float64]

DECODE_SEGMENTS = 4
"""Runs of decode steps over which host and device time are combined (see the module docstring)."""

DEFAULT_CONTEXT = 256
"""Tokens in the key/value cache when :func:`forward_pass_s` times one pass: the middle of the
default workload's generation (a 128-token prompt and 256 generated tokens)."""


@dataclass(frozen=True)
class LatencyPrediction:
    """Predicted timings of one ``generate`` call per shape (float64 arrays, broadcast shape).

    Attributes
    ----------
    latency_s : ndarray
        Whole call: prefill plus decode (seconds).
    prefill_s : ndarray
        Forward pass over the prompt, which yields the first token (seconds);
        also :attr:`ttft_s`.
    decode_s : ndarray
        The remaining ``output_tokens - 1`` decode steps (seconds).
    ms_per_token : ndarray
        Decode time per generated token after the first (milliseconds); with
        one output token, the cost one decode step would have.
    tokens_per_s : ndarray
        ``batch * output_tokens / latency_s`` (tokens/s).
    roofline_s : ndarray
        Pure roofline lower bound of the same call: datasheet bandwidth and
        throughput, no host time (seconds).
    latency_low_s, latency_high_s : ndarray or None
        The central 95% band of ``latency_s`` over the calibration's joint
        draws (:mod:`morph.latency.uncertainty`); None when not asked for.
    latency_basis : str
        What the band rests on: ``measured``, ``published spread``, ``prior``
        or ``transfer``.
    """

    latency_s: FloatArray
    prefill_s: FloatArray
    decode_s: FloatArray
    ms_per_token: FloatArray
    tokens_per_s: FloatArray
    roofline_s: FloatArray
    latency_low_s: FloatArray | None = None
    latency_high_s: FloatArray | None = None
    latency_basis: str = ""

    @property
    def ttft_s(self) -> FloatArray:
        """Time to first token (seconds): the prefill."""
        return self.prefill_s

    def to_frame(self):  # -> pandas.DataFrame; pandas imported lazily
        """The prediction as a :class:`pandas.DataFrame`, one row per element."""
        import pandas as pd

        columns = {f.name: getattr(self, f.name) for f in fields(self)}
        return pd.DataFrame({name: np.ravel(value) for name, value in columns.items()
                             if value is not None and not isinstance(value, str)})


def overlap(host_s: ArrayLike, device_s: ArrayLike, p: float) -> FloatArray:
    """Combine host and device time: ``(host**p + device**p) ** (1/p)`` (seconds).

    ``p = 1`` adds them (synchronous); ``p -> inf`` takes the larger
    (perfect asynchronous overlap). Computed as ``m * (1 + r**p)**(1/p)``
    with ``m`` the larger and ``r`` the ratio of the smaller to it, which
    cannot overflow and is never below ``m``. Powers of two (the GPU prior 8)
    use repeated squaring and square roots, several times faster than ``**``.

    Parameters
    ----------
    host_s, device_s : array_like
        Non-negative times (seconds); float32 stays float32.
    p : float
        Exponent, >= 1.
    """
    if not p >= 1:
        raise LatencyError(f"the overlap exponent p must be >= 1, got {p}")
    host = np.asarray(host_s)
    device = np.asarray(device_s)
    if host.dtype.kind != "f":
        host = host.astype(np.float64)
    if p == 1:
        return host + device
    larger = np.maximum(host, device)
    if math.isinf(p):
        return larger
    ratio = np.array(np.minimum(host, device), ndmin=0, copy=None)
    # Where both times are zero the ratio stays at the smaller time, zero.
    np.divide(ratio, larger, out=ratio, where=larger > 0)
    halvings = int(round(math.log2(p))) if p >= 2 else 0
    if p >= 2 and 2**halvings == p:
        for _ in range(halvings):
            np.multiply(ratio, ratio, out=ratio)
        ratio += 1.0
        for _ in range(halvings):
            np.sqrt(ratio, out=ratio)
    else:
        np.power(ratio, p, out=ratio)
        ratio += 1.0
        np.power(ratio, 1.0 / p, out=ratio)
    return larger * ratio


def _whole_numbers(name: str, value: ArrayLike, error: type[Exception], minimum: int = 1) -> NDArray[np.int64]:
    """``value`` as int64 after checking every element is a whole number >= ``minimum``."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise error(f"{name} must be whole numbers, got {type(value).__name__} {np.ravel(array)[:3].tolist()}")
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not np.all(whole):
            raise error(f"{name} must be whole numbers, got {np.asarray(array)[~whole].ravel()[0]!r}")
    integers = array.astype(np.int64, copy=False)
    if integers.size and integers.min() < minimum:
        kind = "positive" if minimum == 1 else f">= {minimum}"
        raise error(f"{name} must be {kind}, got {int(integers.min())}")
    return integers


def _scalar_or_array(values: NDArray, precision: type) -> float | NDArray:
    # A Python float keeps float32 arithmetic float32 (numpy's weak scalars)
    # and costs nothing per element.
    return float(values) if values.ndim == 0 else values.astype(precision)


@dataclass(frozen=True)
class GenerationWork:
    """Per-shape quantities of one ``generate`` call (arrays, or floats where shared by all shapes)."""

    n_layers: NDArray  # blocks
    params: NDArray  # parameters streamed per pass: all but the input embedding
    layer_width: NDArray  # n_layers * d_model: attention FLOPs and cache bytes scale with it
    kv_fraction: float | NDArray  # n_kv_heads / n_heads
    bytes_per: float | NDArray  # bytes per weight or cache element
    batch: float | NDArray
    input_tokens: float | NDArray
    output_tokens: float | NDArray
    peak_flops: float | NDArray  # FLOP/s
    bandwidth: float  # bytes/s

    @property
    def decode_steps(self) -> float | NDArray:
        """Decode steps after the prefill: ``output_tokens - 1``."""
        return self.output_tokens - 1.0


def _streamed_parameters(layers: NDArray, width: NDArray, kv_fraction: float | NDArray, vocab: float | NDArray) -> NDArray:
    """Every parameter except the input embedding, as floats (the count of :mod:`morph.shapes`).

    The same formula as :func:`morph.shapes.non_embedding_parameters` plus the
    output head, in floating point: integer division is several times slower
    than these few float operations, and a test checks both agree.
    """
    ffn = np.ceil(np.floor(8.0 * width / 3.0) / 256.0) * 256.0
    # q and o (d x d), k and v (d x d * kv_fraction), three SwiGLU matrices, two norm gains.
    per_layer = width * ((2.0 + 2.0 * kv_fraction) * width + 3.0 * ffn + 2.0)
    # Final norm and the V x d output head (read every pass, tied or not).
    return layers * per_layer + width * (1.0 + vocab)


def generation_work(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    n_heads: ArrayLike | None,
    n_kv_heads: ArrayLike | None,
    hardware: Hardware,
    batch: ArrayLike,
    input_tokens: ArrayLike,
    output_tokens: ArrayLike,
    dtype: str | ArrayLike,
    vocab: ArrayLike,
    precision: type = np.float64,
) -> GenerationWork:
    layers = _whole_numbers("n_layers", n_layers, ShapeError).astype(precision)
    width = _whole_numbers("d_model", d_model, ShapeError).astype(precision)
    kv_fraction: float | NDArray = 1.0
    if n_heads is not None or n_kv_heads is not None:
        width_int = np.asarray(d_model).astype(np.int64)
        if n_heads is None and np.any(width_int % 64):
            raise ShapeError("d_model is not a multiple of 64; give n_heads with n_kv_heads")
        heads = width_int // 64 if n_heads is None else _whole_numbers("n_heads", n_heads, ShapeError)
        kv = heads if n_kv_heads is None else _whole_numbers("n_kv_heads", n_kv_heads, ShapeError)
        if np.any(width_int % heads):
            raise ShapeError("the number of heads must divide d_model for every shape")
        if np.any(heads % kv):
            raise ShapeError("n_kv_heads must divide n_heads for every shape")
        kv_fraction = _scalar_or_array(np.asarray(kv / heads), precision)
    vocabulary = _scalar_or_array(_whole_numbers("vocab", vocab, ShapeError).astype(np.float64), precision)
    bytes_per, peak = _dtype_figures(dtype, hardware, precision)
    counts = {
        name: _scalar_or_array(_whole_numbers(name, value, LatencyError).astype(np.float64), precision)
        for name, value in (("batch", batch), ("input_tokens", input_tokens), ("output_tokens", output_tokens))
    }
    return GenerationWork(
        n_layers=layers,
        params=_streamed_parameters(layers, width, kv_fraction, vocabulary),
        layer_width=layers * width,
        kv_fraction=kv_fraction,
        bytes_per=bytes_per,
        peak_flops=peak,
        bandwidth=hardware.memory_bandwidth,
        **counts,
    )


def _dtype_figures(dtype: str | ArrayLike, hardware: Hardware, precision: type) -> tuple[float | NDArray, float | NDArray]:
    """Bytes per element and peak FLOP/s for a dtype name or an array of names."""
    if isinstance(dtype, str):
        name = canonical_dtype(dtype)
        return float(DTYPE_BYTES[name]), hardware.peak_flops(name)
    names = np.asarray(dtype, dtype=object)
    canonical = [canonical_dtype(value) for value in names.ravel().tolist()]
    sizes = np.array([DTYPE_BYTES[c] for c in canonical], dtype=precision).reshape(names.shape)
    peaks = np.array([hardware.peak_flops(c) for c in canonical], dtype=precision).reshape(names.shape)
    return sizes, peaks


def decode_lines(
    work: GenerationWork, eta_bw: float | NDArray, eta_flops: float | NDArray, layer_device_s: float | NDArray = 0.0
) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """Compute and memory time of decode step ``k`` as ``a + b k`` (seconds; context ``input_tokens + k``).

    Memory: the streamed weights plus the key/value cache of every sequence,
    ``2 * kv_fraction * n_layers * d_model`` elements per cached token.
    Compute: ``2 P`` FLOPs per token for the products plus ``4 n_layers
    d_model`` per cached token for attention scores and weighted values.
    The per-layer device time ``layer_device_s`` (seconds per layer per step)
    adds to both intercepts, so it adds to the step's device time whichever
    bound holds. Efficiencies may be arrays of draws of shape ``(draws, 1)``.
    """
    byte_time = 1.0 / (eta_bw * work.bandwidth)
    flop_time = 1.0 / (eta_flops * work.peak_flops)
    memory_b = work.layer_width * (2.0 * work.kv_fraction * work.bytes_per * work.batch * byte_time)
    memory_a = work.params * (work.bytes_per * byte_time) + memory_b * work.input_tokens
    compute_b = work.layer_width * (4.0 * work.batch * flop_time)
    compute_a = work.params * (2.0 * work.batch * flop_time) + compute_b * work.input_tokens
    if np.any(np.asarray(layer_device_s) != 0):
        fixed = work.n_layers * layer_device_s
        memory_a, compute_a = memory_a + fixed, compute_a + fixed
    return compute_a, compute_b, memory_a, memory_b


def prefill_device_s(
    work: GenerationWork, lines: tuple[NDArray, ...], eta_flops: float | NDArray, layer_device_s: float | NDArray = 0.0
) -> NDArray:
    """Device time of the prompt's forward pass (seconds).

    Its traffic is the weights plus writing the prompt's cache, which is the
    memory line's intercept (which holds the per-layer device time); its FLOPs
    are the products for every prompt token plus causal attention, where token
    ``j`` attends to ``j`` tokens, plus the same per-layer device time.
    """
    prompt = work.input_tokens
    flop_time = 1.0 / (eta_flops * work.peak_flops)
    compute = work.params * (2.0 * work.batch * prompt * flop_time) + work.layer_width * (
        2.0 * work.batch * prompt * (prompt + 1.0) * flop_time
    )
    return np.maximum(compute + work.n_layers * layer_device_s, lines[2])


def _affine_sum(intercept: NDArray, slope: NDArray, count: float | NDArray, middle: float | NDArray) -> NDArray:
    """``sum_k (intercept + slope k)`` over ``count`` consecutive steps centred on ``middle``."""
    return (intercept + slope * middle) * count


def _max_affine_sum(
    compute_a: NDArray, compute_b: NDArray, memory_a: NDArray, memory_b: NDArray, first: float | NDArray,
    last: float | NDArray,
) -> NDArray:
    r"""``sum_{k=first}^{last} max(compute_a + compute_b k, memory_a + memory_b k)``, exactly.

    The compute sum plus the positive part of the difference ``alpha + beta
    k`` (memory minus compute), which is positive on one run of consecutive
    steps on one side of its root. With the prefix sum ``T(m) = sum_{k=1}^m
    (alpha + beta k)`` and ``r = max(floor(root), 0)``, the positive part of
    the prefix up to ``m`` is ``T(m) - T(min(r, m))`` when ``beta >= 0`` and
    ``T(min(r, m))`` otherwise.
    """
    alpha = memory_a - compute_a
    beta = memory_b - compute_b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # beta = 0: root is -inf (all positive), +inf (none) or NaN (alpha = 0,
        # nothing to add); fmax and fmin pass the non-NaN side through. A
        # subnormal beta overflows the ratio to +-inf, which is the same answer.
        root = np.fmax(np.floor(-alpha / beta), 0.0)
    rising = beta >= 0

    def prefix(m: float | NDArray) -> NDArray:
        below = np.fmin(root, m)
        total = m * (alpha + beta * (m + 1.0) / 2.0)
        head = below * (alpha + beta * (below + 1.0) / 2.0)
        return np.where(rising, total - head, head)

    count = np.maximum(np.asarray(last) - first + 1.0, 0.0)
    compute = _affine_sum(compute_a, compute_b, count, (np.asarray(first) + last) / 2.0)
    positive = np.where(count > 0, prefix(last) - prefix(np.asarray(first) - 1.0), 0.0)
    return compute + np.maximum(positive, 0.0)


def segment_device_s(lines: tuple[NDArray, ...], bounds: list[tuple]) -> list[NDArray]:
    """Device time summed over runs of decode steps ``[(first, last, count, middle), ...]`` (seconds).

    Where compute and memory time do not cross anywhere in the decode (the
    usual case) each run is ``max(sum of compute, sum of memory)``; shapes
    where they cross take the exact sum of :func:`_max_affine_sum`.
    """
    compute_a, compute_b, memory_a, memory_b = lines
    sums = [
        np.maximum(_affine_sum(compute_a, compute_b, count, middle), _affine_sum(memory_a, memory_b, count, middle))
        for _, _, count, middle in bounds
    ]
    alpha = memory_a - compute_a
    beta = memory_b - compute_b
    last_step = bounds[-1][1]
    crossing = (alpha + beta > 0) != (alpha + beta * last_step > 0)
    if np.any(crossing):
        shape = np.broadcast_shapes(*(np.shape(s) for s in sums), np.shape(crossing))
        where = np.broadcast_to(crossing, shape)
        pick = [np.broadcast_to(x, shape)[where] for x in lines]
        for j, (first, last, _, _) in enumerate(bounds):
            exact = _max_affine_sum(*pick, np.broadcast_to(first, shape)[where], np.broadcast_to(last, shape)[where])
            sums[j] = np.array(np.broadcast_to(sums[j], shape))
            sums[j][where] = exact
    return sums


def segments(steps: float | NDArray, n_segments: int) -> list[tuple]:
    """``(first, last, count, middle)`` of ``n_segments`` near-equal runs covering steps 1..``steps``."""
    bounds = []
    for j in range(n_segments):
        first = np.floor(j * np.asarray(steps) / n_segments) + 1.0
        last = np.floor((j + 1) * np.asarray(steps) / n_segments)
        count = np.maximum(last - first + 1.0, 0.0)
        bounds.append(tuple(_scalar_or_array(np.asarray(v), np.float64) for v in (first, last, count, (first + last) / 2.0)))
    return bounds


def _roofline_s(work: GenerationWork) -> NDArray:
    lines = decode_lines(work, 1.0, 1.0)
    prefill = prefill_device_s(work, lines, 1.0)
    (decode,) = segment_device_s(lines, segments(work.decode_steps, 1))
    return prefill + decode


def evaluate(work: GenerationWork, calibration: Calibration | Any) -> tuple:
    """Latency, prefill, decode, ms per token, tokens per second and roofline of one workload.

    ``calibration`` is a :class:`Calibration` or any object with the same
    coefficient attributes; they may be arrays of draws of shape ``(draws,
    1)`` that broadcast against the shapes, except ``overlap_p``, which is
    one number.
    """
    eta_bw, eta_flops, p = calibration.eta_bw, calibration.eta_flops, float(calibration.overlap_p)
    device_layer = getattr(calibration, "c_layer_device_s", 0.0)
    host = calibration.c_fixed_s + calibration.c_layer_s * work.n_layers
    lines = decode_lines(work, eta_bw, eta_flops, device_layer)
    prefill = overlap(host, prefill_device_s(work, lines, eta_flops, device_layer), p)
    # Times that add (p = 1) can be summed over the whole decode at once.
    bounds = segments(work.decode_steps, 1 if p == 1 else DECODE_SEGMENTS)
    decode: NDArray | float = 0.0
    for (_, _, count, _), device in zip(bounds, segment_device_s(lines, bounds)):
        decode = decode + overlap(host * count, device, p)
    latency = prefill + decode
    steps = work.decode_steps
    with np.errstate(divide="ignore", invalid="ignore"):
        per_token = decode / steps
    if np.any(np.asarray(steps) == 0):
        # One output token: report what the next decode step would cost.
        compute_a, compute_b, memory_a, memory_b = lines
        one_step = overlap(host, np.maximum(compute_a + compute_b, memory_a + memory_b), p)
        per_token = np.where(np.asarray(steps) == 0, one_step, per_token)
    tokens_per_s = work.batch * work.output_tokens / latency
    return latency, prefill, decode, 1e3 * per_token, tokens_per_s, _roofline_s(work)


def predict(work: GenerationWork, calibration: Calibration) -> LatencyPrediction:
    results = evaluate(work, calibration)
    shape = np.broadcast_shapes(*(np.shape(r) for r in results))
    return LatencyPrediction(*(np.broadcast_to(np.asarray(r, dtype=np.float64), shape).copy() for r in results))


CHUNK = 24576
"""Shapes evaluated at a time. Their float32 temporaries (96 KiB each) stay below the C
allocator's threshold for fresh pages (128 KiB in glibc), so they reuse memory already in
use; page faults on large temporaries otherwise cost more than the arithmetic."""

PRECISION = np.float32
"""Arithmetic precision of :func:`predict_latency` and :func:`roofline_latency`: float32
is twice as fast as float64, and its rounding (about 1e-7 relative) is far below the
model's uncertainty. Fits use float64, which finite-difference Jacobians need."""


def _chunked(
    arguments: dict[str, Any], evaluate: Callable[..., tuple], chunk: int = CHUNK
) -> tuple[FloatArray, ...]:
    """Run ``evaluate(**arguments)`` over the broadcast inputs in runs of :data:`CHUNK`.

    Scalars pass through unchanged (they cost nothing per shape); arrays are
    broadcast to the common shape and sliced. Returns float64 arrays of that
    shape, rows of one block.
    """
    arrays = {k: v for k, v in arguments.items() if v is not None and not isinstance(v, str) and np.ndim(v) > 0}
    shape = np.broadcast_shapes(*(np.shape(v) for v in arrays.values()))
    size = math.prod(shape)
    flat = {k: np.broadcast_to(np.asarray(v), shape).reshape(-1) for k, v in arrays.items()}
    first = evaluate(**{**arguments, **{k: v[:chunk] for k, v in flat.items()}})
    block = np.empty((len(first), size), dtype=np.float64)
    for row, values in zip(block, first):
        row[: min(chunk, size)] = values
    for start in range(chunk, size, chunk):
        results = evaluate(**{**arguments, **{k: v[start : start + chunk] for k, v in flat.items()}})
        for row, values in zip(block, results):
            row[start : start + chunk] = values
    return tuple(row.reshape(shape) for row in block)


def _per_shape(
    arguments: dict[str, Any], device: Hardware, evaluate: Callable[[GenerationWork], tuple], chunk: int = CHUNK
) -> tuple[FloatArray, ...]:
    """``evaluate`` on the float32 work of every shape and setting in ``arguments``, a chunk at a time."""
    return _chunked(arguments, lambda **part: evaluate(generation_work(**part, hardware=device, precision=PRECISION)),
                    chunk)


BAND_CHUNK = 512
"""Shapes whose draws are evaluated at a time: 200 draws of 512 shapes keep each temporary near 400 KiB."""


def _band(arguments: dict[str, Any], device: Hardware, coefficients: Calibration, draws: int,
          seed: int) -> tuple[FloatArray, FloatArray]:
    """The central 95% band of the latency under ``draws`` joint draws of the calibration."""
    from .uncertainty import coefficient_draws, draw_latency, latency_interval

    drawn = coefficient_draws(coefficients, device, draws, seed)
    return _per_shape(arguments, device, lambda work: latency_interval(draw_latency(work, drawn)["latency_s"]),
                      BAND_CHUNK)


def predict_latency(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    *,
    workload: Workload | None = None,
    hardware: str | Hardware | None = None,
    calibration: str | os.PathLike | Calibration | None = None,
    batch: ArrayLike | None = None,
    input_tokens: ArrayLike | None = None,
    output_tokens: ArrayLike | None = None,
    dtype: str | ArrayLike | None = None,
    stack: str | None = None,
    vocab: ArrayLike = VOCAB_SIZE,
    band: bool = True,
    draws: int | None = None,
    seed: int | None = None,
) -> LatencyPrediction:
    """Predict the time of one ``generate`` call for each shape.

    Parameters
    ----------
    n_layers, d_model : int or array of int
        Depth (blocks) and width (features); broadcast against each other and
        against ``batch``, ``input_tokens`` and ``output_tokens``.
    n_heads, n_kv_heads : int or array of int, optional
        Query and key/value heads. Only their ratio matters here (it sets the
        key/value cache size); without them attention is multi-head.
    workload : Workload, optional
        Hardware, calibration, batch, tokens and dtype (default
        :class:`~morph.latency.workload.Workload`: an A100 40GB with its
        default calibration, batch 1, 128 input and 256 output tokens, bf16).
    hardware, calibration, batch, input_tokens, output_tokens, dtype, stack : optional
        Override one setting of ``workload``; batch, token counts and dtype
        may be arrays that broadcast against the shapes (tokens, sequences).
    vocab : int or array of int
        Vocabulary size (tokens), for the output head.
    band : bool
        Compute ``latency_low_s`` and ``latency_high_s``, the central 95% of
        the calibration's joint draws (:mod:`morph.latency.uncertainty`); this
        costs one evaluation per draw, so a sweep over many shapes may skip it.
    draws, seed : int, optional
        Number and seed of those draws (default
        :data:`morph.latency.uncertainty.DRAWS` and ``SEED``).

    Returns
    -------
    LatencyPrediction
        Float64 arrays of the broadcast shape (seconds, milliseconds per token,
        tokens per second), the band and its basis. The arithmetic runs in
        float32, which keeps 100,000 shapes within a few milliseconds; its
        relative rounding (about 1e-7) is far below the model's own uncertainty.

    Raises
    ------
    ShapeError
        Non-integer or non-positive depth, width or heads; heads that do not
        divide the width.
    LatencyError
        Unknown hardware, calibration or dtype; non-positive batch or token counts.

    Examples
    --------
    >>> p = predict_latency([24, 12], [2048, 3072])  # Open-LM-1B, Morph-1B on an A100 40GB
    >>> [round(float(t), 2) for t in p.latency_s]
    [3.61, 1.96]
    """
    settings = workload_arguments(workload, hardware=hardware, calibration=calibration, batch=batch,
                                  input_tokens=input_tokens, output_tokens=output_tokens, dtype=dtype, stack=stack)
    device = get_hardware(settings.pop("hardware"))
    coefficients = _coefficients(settings.pop("calibration"), settings.pop("stack"), device)
    shapes = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, vocab=vocab)
    arguments = {**shapes, **settings}
    point = _per_shape(arguments, device, lambda work: evaluate(work, coefficients))
    from .uncertainty import DRAWS, SEED, uncertainty_of

    basis = uncertainty_of(coefficients, device).basis
    if not band:
        return LatencyPrediction(*point, latency_basis=basis)
    low, high = _band(arguments, device, coefficients, DRAWS if draws is None else draws, SEED if seed is None else seed)
    return LatencyPrediction(*point, latency_low_s=low, latency_high_s=high, latency_basis=basis)


def _coefficients(calibration: Any, stack: str | None, device: Hardware) -> Calibration:
    """The calibration a prediction uses: the one named, else the stack's, else the hardware's default."""
    if calibration is None and stack is not None:
        return stack_calibration(stack, device)
    return resolve_calibration(calibration, device)


def roofline_latency(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    *,
    workload: Workload | None = None,
    hardware: str | Hardware | None = None,
    batch: ArrayLike | None = None,
    input_tokens: ArrayLike | None = None,
    output_tokens: ArrayLike | None = None,
    dtype: str | ArrayLike | None = None,
    vocab: ArrayLike = VOCAB_SIZE,
) -> FloatArray:
    """Roofline lower bound of one ``generate`` call (seconds).

    Device time only, at the datasheet bandwidth and throughput (``eta = 1``),
    no host time: every pass costs ``max(FLOPs / peak, bytes / bandwidth)``.
    Same arguments as :func:`predict_latency`; the workload's calibration is
    not used.
    """
    settings = workload_arguments(workload, hardware=hardware, batch=batch, input_tokens=input_tokens,
                                  output_tokens=output_tokens, dtype=dtype)
    device = get_hardware(settings.pop("hardware"))
    settings.pop("calibration")
    settings.pop("stack")
    shapes = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, vocab=vocab)
    (roofline,) = _per_shape({**shapes, **settings}, device, lambda work: (_roofline_s(work),))
    return roofline


def forward_pass_s(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    tokens: ArrayLike = 1,
    *,
    context: ArrayLike = DEFAULT_CONTEXT,
    n_heads: ArrayLike | None = None,
    n_kv_heads: ArrayLike | None = None,
    workload: Workload | None = None,
    hardware: str | Hardware | None = None,
    calibration: str | os.PathLike | Calibration | None = None,
    batch: ArrayLike | None = None,
    dtype: str | ArrayLike | None = None,
    vocab: ArrayLike = VOCAB_SIZE,
) -> FloatArray:
    """Time of one forward pass over ``tokens`` new tokens after ``context`` cached ones (seconds).

    With ``tokens = 1`` one decode step: exactly the step :func:`predict_latency`
    prices for one output token after a prompt of ``context`` tokens; with
    ``context = 0`` a prefill; with ``tokens = k + 1`` the verification pass of
    speculative decoding. The host work is paid once per pass, ``c_fixed +
    c_layer * n_layers``, whatever the number of tokens, and the device time is
    the roofline of the pass,

    - FLOPs ``= batch * (2 P tokens + 4 n_layers d_model A)`` with ``P`` the
      streamed parameters (all but the input embedding) and ``A = tokens *
      context + tokens (tokens + 1) / 2`` the cached positions the new tokens
      attend to (token ``j`` sees ``context + j``);
    - bytes ``= s (P + batch (context + tokens) 2 n_layers d_model n_kv_heads
      / n_heads)``: the weights are streamed *once* for all the tokens, plus
      the key/value cache read and written;

    combined with the calibration's overlap. At batch 1 the weights dominate
    the bytes, so a pass over a few tokens costs about as much as one token.
    Computed in float64.

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
    workload : Workload, optional
        Hardware, calibration (or the stack whose calibration is used when
        none is named), batch and dtype (default
        :class:`~morph.latency.workload.Workload`); its token counts are not
        used, ``tokens`` and ``context`` say where the pass stands.
    hardware, calibration, batch, dtype : optional
        Override one setting of ``workload``; batch may be an array (sequences).
    vocab : int or array of int
        Vocabulary (tokens), for the output head.

    Returns
    -------
    ndarray of float64
        Seconds per pass, in the broadcast shape.

    Raises
    ------
    ShapeError
        Non-integer or non-positive depth, width or heads.
    LatencyError
        Unknown hardware, calibration or dtype; bad batch, tokens or context.
    """
    settings = workload_arguments(workload, hardware=hardware, calibration=calibration, batch=batch, dtype=dtype)
    device = get_hardware(settings["hardware"])
    coefficients = _coefficients(settings["calibration"], settings["stack"], device)
    # The pass's new tokens stand where a prefill's prompt would (a prefill is such a pass with nothing cached).
    new = _whole_numbers("tokens", tokens, LatencyError).astype(np.float64)
    work = generation_work(n_layers, d_model, n_heads, n_kv_heads, device, settings["batch"], new, 1,
                           settings["dtype"], vocab, precision=np.float64)
    cached = _whole_numbers("context", context, LatencyError, minimum=0).astype(np.float64)
    attended = new * cached + new * (new + 1.0) / 2.0
    flops = work.batch * (2.0 * work.params * new + 4.0 * work.layer_width * attended)
    traffic = work.bytes_per * (work.params + work.batch * (cached + new) * 2.0 * work.kv_fraction * work.layer_width)
    device_s = np.maximum(flops / (coefficients.eta_flops * work.peak_flops),
                          traffic / (coefficients.eta_bw * work.bandwidth)) + coefficients.c_layer_device_s * work.n_layers
    host_s = coefficients.c_fixed_s + coefficients.c_layer_s * work.n_layers
    return np.asarray(overlap(host_s, device_s, coefficients.overlap_p), dtype=np.float64)
