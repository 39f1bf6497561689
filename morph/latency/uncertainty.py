"""The distribution of a latency prediction: what each calibration's evidence supports, as joint draws.

Every calibration says how far its predictions may be off, and on what basis
(:data:`BASES`):

``measured``
    Fitted to timings with degrees of freedom to spare (the CPU sweep, a
    user's ``morph latency calibrate``): the coefficients of bootstrap refits
    over the measured rows, and the fit's residual scatter as a log-normal
    factor widened by Student's t for a small table.
``published spread``
    Built from a few published timings that fix the coefficients exactly (the
    paper's two A100 timings): a log-normal factor, symmetric in log, whose
    central 95% interval reaches every published timing of the same shape it
    cites (with a margin, so a band built from finitely many draws still does).
``prior``
    A coefficient no shipped timing measures, drawn from a stated
    distribution with its reasoning in the calibration's file (the per-layer
    device cost of a graph-captured stack); the coefficients the evidence
    does fix follow each draw (refitted for each value of the prior).
``transfer``
    Any of the above used on another device than it was made on: a further
    log-normal factor of :data:`~morph.latency.stacks.TRANSFER_ERROR`.

:func:`coefficient_draws` turns a calibration into ``n`` joint draws: one
draw is one set of coefficients and one factor, applied to *every* shape, so
what the shapes share (a wrong bandwidth, a slower implementation) moves them
together and a ranking between shapes is only as uncertain as what separates
them. The draws are seeded and stratified (the factor's normal quantiles and
the prior's uniform quantiles are spread evenly, then paired at random), so a
band from 200 draws is reproducible and close to its exact quantiles.
:func:`draw_latency` evaluates the model under the draws;
:func:`latency_interval` gives the central band of any predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import LatencyError
from .hardware import Hardware
from .record import COEFFICIENTS, Calibration

__all__ = [
    "BASES",
    "DRAWS",
    "SEED",
    "LEVEL",
    "BAND_Z",
    "LatencyUncertainty",
    "CoefficientDraws",
    "uncertainty_of",
    "coefficient_draws",
    "draw_latency",
    "latency_interval",
    "central_interval",
    "log_sigma_for",
    "prior_ends",
    "prior_phrase",
    "probability_fastest",
    "shapes_work",
    "workload_draws",
    "fastest_sentence",
]

BASES = ("measured", "published spread", "prior", "transfer")
"""What a latency band rests on, from the strongest evidence to the weakest."""

DRAWS = 200
"""Joint draws behind every band and probability (the law's bootstrap has as many refits)."""

SEED = 0
"""Seed of the draws: the same inputs give the same bands and probabilities."""

LEVEL = 0.95
"""Level of every band: the central 95% of the draws."""

BAND_Z = NormalDist().inv_cdf(0.5 + LEVEL / 2)
"""Normal quantile of the band's upper edge (1.96): ``log_sigma * BAND_Z`` is the band's log half-width."""

FloatArray = NDArray[np.float64]


def log_sigma_for(relative: float) -> float:
    """The log-normal sigma whose central 95% interval is ``[x / (1 + e), x * (1 + e)]``."""
    return math.log1p(float(relative)) / BAND_Z


@dataclass(frozen=True)
class LatencyUncertainty:
    """How far one calibration's predictions may be off, on ``hardware``.

    Attributes
    ----------
    basis : str
        One of :data:`BASES`.
    log_sigma : float
        Sigma of the log-normal factor every draw applies to all shapes
        (residual scatter, published spread, allowances, transfer; added in
        quadrature).
    samples : ndarray, optional
        Bootstrap coefficients, one row per refit, columns ``fitted``.
    fitted : tuple of str
        Columns of ``samples``.
    prior : mapping, optional
        ``coefficient``, ``low``, ``high`` (uniform between them), and
        ``grid`` with ``follow``: the values of the coefficients the evidence
        fixes (``{name: [...]}``) at each grid value of the prior.
    reasoning : str
        Why the spread has its size, in a sentence or two.
    """

    basis: str
    log_sigma: float = 0.0
    samples: NDArray[np.float64] | None = None
    fitted: tuple[str, ...] = ()
    prior: Mapping[str, Any] | None = None
    reasoning: str = ""

    @property
    def relative(self) -> float:
        """The factor's half-width as a fraction: its band is ``x * (1 + e) ** (+-1)``."""
        return math.expm1(self.log_sigma * BAND_Z)

    def describe(self) -> str:
        """One sentence: the basis and its reasoning."""
        return f"{self.basis}: {self.reasoning}" if self.reasoning else self.basis


def _from_record(calibration: Calibration) -> LatencyUncertainty:
    record = dict(calibration.uncertainty)
    basis = record.get("basis")
    if basis is None:
        return _legacy(calibration)
    if basis not in BASES:
        raise LatencyError(f"calibration {calibration.name!r}: unknown uncertainty basis {basis!r}")
    samples = record.get("samples")
    fitted = tuple(record.get("fitted", ()))
    unknown = [name for name in fitted if name not in COEFFICIENTS]
    if unknown:
        raise LatencyError(f"calibration {calibration.name!r}: unknown coefficient(s) {', '.join(unknown)}")
    array = None if samples is None else np.asarray(samples, dtype=np.float64).reshape(-1, len(fitted))
    sigma = float(record.get("log_sigma", 0.0))
    if not math.isfinite(sigma) or sigma < 0 or (array is not None and not np.all(np.isfinite(array))):
        raise LatencyError(f"calibration {calibration.name!r}: its uncertainty holds a bad number")
    return LatencyUncertainty(basis, sigma, array, fitted, record.get("prior"), str(record.get("reasoning", "")))


def _legacy(calibration: Calibration) -> LatencyUncertainty:
    """A calibration written before distributions were recorded: its stated error as a log-normal factor."""
    own = calibration.relative_error if calibration.relative_error is not None else calibration.loo_max_error
    if own is None:
        from .stacks import TRANSFER_ERROR

        return LatencyUncertainty("prior", log_sigma_for(TRANSFER_ERROR),
                                  reasoning=f"no error estimate; an allowance of {TRANSFER_ERROR:.0%} stands in")
    basis = "measured" if calibration.n_measurements > len(calibration.fitted) else "published spread"
    return LatencyUncertainty(basis, log_sigma_for(own), reasoning=calibration.error_basis or
                              f"its stated error of {own:.1%} as the band's half-width")


def uncertainty_of(calibration: Calibration, hardware: Hardware) -> LatencyUncertainty:
    """The distribution of ``calibration``'s predictions on ``hardware``; a transfer when made on another device."""
    own = _from_record(calibration)
    if calibration.hardware == hardware.name:
        return own
    from .stacks import TRANSFER_ERROR

    extra = log_sigma_for(TRANSFER_ERROR)
    return LatencyUncertainty(
        "transfer", math.hypot(own.log_sigma, extra), own.samples, own.fitted, own.prior,
        f"coefficients made on {calibration.hardware} ({own.basis}) used on {hardware.name} with its datasheet, "
        f"plus {TRANSFER_ERROR:.0%} for the move",
    )


@dataclass(frozen=True)
class CoefficientDraws:
    """``n`` joint draws of a calibration's coefficients, each an array of shape ``(n, 1)``.

    They broadcast against an array of shapes; ``overlap_p`` is one number
    (no shipped calibration fits it). ``log_factor`` multiplies every shape
    of a draw by ``exp(log_factor)``; ``prior`` holds the drawn values of the
    prior's coefficient, when there is one.
    """

    c_fixed_s: FloatArray
    c_layer_s: FloatArray
    eta_bw: FloatArray
    eta_flops: FloatArray
    overlap_p: float
    c_layer_device_s: FloatArray
    log_factor: FloatArray
    prior: FloatArray | None = None

    def __len__(self) -> int:
        return int(np.shape(self.log_factor)[0])

    @property
    def shared_only(self) -> bool:
        """Whether only the shared factor varies (the coefficients are the same in every draw)."""
        return all(np.ptp(getattr(self, name)) == 0 for name in COEFFICIENTS if name != "overlap_p")

    def at(self, i: int) -> Calibration:
        """Draw ``i`` as a :class:`Calibration` (for a check by hand or a plot)."""
        values = {name: float(np.ravel(getattr(self, name))[i]) for name in COEFFICIENTS if name != "overlap_p"}
        return Calibration(name="draw", hardware="draw", overlap_p=self.overlap_p, **values)


def _stratified_normal(n: int, rng: np.random.Generator) -> FloatArray:
    normal = NormalDist()
    return np.array([normal.inv_cdf((k + 0.5) / n) for k in rng.permutation(n)])


def _stratified_uniform(n: int, rng: np.random.Generator) -> FloatArray:
    return (rng.permutation(n) + 0.5) / n


def coefficient_draws(
    calibration: Calibration, hardware: Hardware, n: int = DRAWS, seed: int = SEED
) -> CoefficientDraws:
    """``n`` seeded joint draws of ``calibration``'s coefficients and shared factor on ``hardware``.

    Parameters
    ----------
    calibration : Calibration
    hardware : Hardware
        The device predicted; another than the calibration's adds the transfer factor.
    n : int
        Number of draws (>= 2).
    seed : int
        Seed of the draws.
    """
    if n < 2:
        raise LatencyError(f"at least 2 draws are needed for a band, got {n}")
    spread = uncertainty_of(calibration, hardware)
    rng = np.random.default_rng(seed)
    values = {name: np.full(n, getattr(calibration, name), dtype=np.float64) for name in COEFFICIENTS}
    if spread.samples is not None and len(spread.samples):
        # Every refit once before any twice: the draws use the bootstrap evenly.
        rows = rng.permutation(max(n, len(spread.samples)))[:n] % len(spread.samples)
        for j, name in enumerate(spread.fitted):
            values[name] = spread.samples[rows, j].copy()
    drawn_prior = None
    if spread.prior:
        prior = spread.prior
        drawn_prior = prior["low"] + _stratified_uniform(n, rng) * (prior["high"] - prior["low"])
        values[prior["coefficient"]] = drawn_prior
        for name, column in prior.get("follow", {}).items():
            values[name] = np.interp(drawn_prior, prior["grid"], column)
    factor = spread.log_sigma * _stratified_normal(n, rng)
    if len(np.unique(values["overlap_p"])) > 1:
        raise LatencyError("draws of the overlap exponent are not supported; fix overlap_p when calibrating")
    column = {name: values[name].reshape(n, 1) for name in COEFFICIENTS if name != "overlap_p"}
    return CoefficientDraws(overlap_p=float(values["overlap_p"][0]), log_factor=factor.reshape(n, 1),
                            prior=drawn_prior, **column)


def draw_latency(work: Any, draws: CoefficientDraws) -> dict[str, FloatArray]:
    """Latency, time to first token and ms per token of every shape of ``work`` under every draw.

    Returns arrays of shape ``(draws, shapes)`` (keys ``latency_s``,
    ``prefill_s``, ``ms_per_token``); no draw's latency goes below the
    roofline, a hard floor.
    """
    from .model import evaluate

    coefficients = [getattr(draws, name) for name in COEFFICIENTS if name != "overlap_p"]
    if draws.shared_only:
        # Only the shared factor varies: one evaluation, scaled per draw.
        draws_at = CoefficientDraws(*(values[:1] for values in coefficients[:4]), overlap_p=draws.overlap_p,
                                    c_layer_device_s=coefficients[4][:1], log_factor=draws.log_factor)
        latency, prefill, _, per_token, _, roofline = evaluate(work, draws_at)
    else:
        latency, prefill, _, per_token, _, roofline = evaluate(work, draws)
    factor = np.exp(draws.log_factor)
    shape = np.broadcast_shapes(np.shape(latency), (len(draws), 1))
    return {
        "latency_s": np.maximum(np.broadcast_to(latency * factor, shape), roofline).astype(np.float64),
        "prefill_s": np.broadcast_to(prefill * factor, shape).astype(np.float64),
        "ms_per_token": np.broadcast_to(per_token * factor, shape).astype(np.float64),
    }


def latency_interval(draws: NDArray, level: float = LEVEL) -> tuple[FloatArray, FloatArray]:
    """Low and high edges of the central ``level`` interval of draws ``(draws, shapes)`` per shape."""
    return central_interval(draws, level)


def central_interval(draws: ArrayLike, level: float = LEVEL) -> tuple[FloatArray, FloatArray]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of ``draws`` along the first axis.

    Equal to ``np.percentile(draws, [tail, 100 - tail], axis=0)`` (its default
    linear interpolation, same arithmetic), but from one sort: percentile's
    partition along a column of 200 draws costs several times the sort, and
    a dashboard update reads thousands of columns. A column holding NaN
    is left to percentile itself.
    """
    values = np.asarray(draws, dtype=np.float64)
    n = values.shape[0]
    tail = (1.0 - level) / 2.0 * 100.0
    ordered = np.sort(values, axis=0)
    if n == 0 or np.isnan(ordered[-1]).any():
        low, high = np.percentile(values, [tail, 100.0 - tail], axis=0)
        return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    edges = []
    for percent in (tail, 100.0 - tail):
        # numpy's virtual index for the linear method, ``(n - 1) q``, and its neighbours clipped to the sample.
        virtual = (n - 1) * np.true_divide(percent, 100)
        below = 0 if virtual < 0 else (n - 1 if virtual >= n - 1 else int(np.floor(virtual)))
        above = 0 if virtual < 0 else min(below + 1, n - 1)
        gamma = virtual - below
        a, b = ordered[below], ordered[above]
        diff = b - a
        # numpy's lerp: from the nearer end, so the result never leaves [a, b].
        edges.append(np.asarray(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma, dtype=np.float64))
    return edges[0], edges[1]


def prior_ends(calibration: Calibration, hardware: Hardware) -> tuple[Calibration, Calibration] | None:
    """The calibration at its prior's low and high end (the coefficients that follow it refitted); None without one."""
    prior = uncertainty_of(calibration, hardware).prior
    if not prior:
        return None
    ends = []
    for value in (prior["low"], prior["high"]):
        changes = {prior["coefficient"]: float(value)}
        changes.update({name: float(np.interp(value, prior["grid"], column))
                        for name, column in prior.get("follow", {}).items()})
        ends.append(calibration.replace(**changes))
    return ends[0], ends[1]


def prior_phrase(calibration: Calibration, hardware: Hardware) -> str:
    """``"the per-layer device cost (a prior of 0-54 us)"``: what an answer that depends on the prior depends on."""
    prior = uncertainty_of(calibration, hardware).prior or {}
    if prior.get("coefficient") == "c_layer_device_s":
        return (f"the per-layer device cost (a prior of {prior['low'] * 1e6:.0f}-{prior['high'] * 1e6:.0f} us per "
                "layer and step), which no shipped timing measures")
    return f"the prior on {prior.get('coefficient', 'a coefficient')}, which no shipped timing measures"


def probability_fastest(latency_draws: NDArray) -> FloatArray:
    """Share of the draws ``(draws, shapes)`` in which each shape is the fastest (ties to the first)."""
    winners = np.argmin(latency_draws, axis=1)
    return np.bincount(winners, minlength=latency_draws.shape[1]) / latency_draws.shape[0]


def shapes_work(shapes: Any, workload: Any) -> Any:
    """The float32 work of a list of :class:`~morph.shapes.Shape` under a workload (as :func:`predict_latency` uses)."""
    from ..shapes import VOCAB_SIZE
    from .model import PRECISION, generation_work

    return generation_work(np.array([s.n_layers for s in shapes]), np.array([s.d_model for s in shapes]),
                           np.array([s.n_heads for s in shapes]), np.array([s.n_kv_heads for s in shapes]),
                           workload.device, workload.batch, workload.input_tokens, workload.output_tokens,
                           workload.dtype, VOCAB_SIZE, precision=PRECISION)


def workload_draws(shapes: Any, workload: Any, n: int = DRAWS, seed: int = SEED) -> dict[str, FloatArray]:
    """Latency, time to first token and ms per token of a few shapes under a workload's joint draws ``(draws, shapes)``.

    For a handful of shapes (a command line's ``--shape``); a frontier's
    thousands go through :func:`morph.decision.assess`, which draws only the
    shapes that can matter.
    """
    calibration = workload.resolved_calibration()
    return draw_latency(shapes_work(shapes, workload), coefficient_draws(calibration, workload.device, n, seed))


def fastest_sentence(shapes: Any, latency_draws: NDArray, workload: Any) -> str | None:
    """One sentence when which shape is fastest changes across the latency prior's range; None otherwise."""
    calibration = workload.resolved_calibration()
    ends = prior_ends(calibration, workload.device)
    if ends is None or len(shapes) < 2:
        return None
    work = shapes_work(shapes, workload)
    fastest = []
    for end in ends:
        at_end = CoefficientDraws(
            **{name: np.full((1, 1), getattr(end, name)) for name in COEFFICIENTS if name != "overlap_p"},
            overlap_p=end.overlap_p, log_factor=np.zeros((1, 1)))
        fastest.append(int(np.argmin(draw_latency(work, at_end)["latency_s"][0])))
    if fastest[0] == fastest[1]:
        return None
    share = probability_fastest(latency_draws)
    a, b = fastest
    names = [f"{s.n_layers}x{s.d_model}" for s in shapes]
    phrase = prior_phrase(calibration, workload.device)
    if len(shapes) == 2:
        return (f"Under {workload.stack_name} {names[a]} is faster than {names[b]} with probability {share[a]:.2f}: "
                f"the answer depends on {phrase}.")
    return (f"Under {workload.stack_name} the fastest is {names[a]} with probability {share[a]:.2f} and {names[b]} "
            f"with probability {share[b]:.2f}: the answer depends on {phrase}.")


def latency_bands(shapes: Any, workload: Any, n: int = DRAWS, seed: int = SEED) -> Any:
    """A table of a few shapes under one workload: prediction, 95% band, P(fastest) and the band's basis.

    One set of joint draws (:func:`workload_draws`) gives every band and probability, as on the
    command line (``morph latency --json``); the basis says whether the coefficients were made on this
    device (``published spread``, ``measured``) or moved from another (``transfer``).
    """
    import pandas as pd

    from ..shapes import parse_shape
    from .model import predict_latency

    shapes = [parse_shape(s) if isinstance(s, str) else s for s in shapes]
    calibration = workload.resolved_calibration()
    prediction = predict_latency(np.array([s.n_layers for s in shapes]), np.array([s.d_model for s in shapes]),
                                 np.array([s.n_heads for s in shapes]), workload=workload.replace(calibration=calibration),
                                 band=False)
    draws = workload_draws(shapes, workload, n, seed)["latency_s"]
    low, high = latency_interval(draws)
    return pd.DataFrame({
        "shape": [f"{s.n_layers}x{s.d_model}" for s in shapes],
        "latency_s": np.asarray(prediction.latency_s, dtype=float),
        "low_s": low, "high_s": high,
        "p_fastest": probability_fastest(draws),
        "basis": uncertainty_of(calibration, workload.device).basis,
    })
