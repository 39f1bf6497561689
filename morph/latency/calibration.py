"""Fitting the latency model to timings: measurement tables, calibration, leave-one-out.

A measurement table is a CSV of ``generate`` timings, optionally preceded by
provenance lines of the form ``# key: value``::

    # machine: AMD EPYC, 2 cores
    # torch: 2.13.0
    # protocol: median of 5 timed runs after 1 warm-up
    n_layers,d_model,n_heads,batch,input_tokens,output_tokens,dtype,latency_s
    4,256,4,1,32,64,fp32,0.0921
    ...

Required columns: ``n_layers``, ``d_model``, ``batch``, ``input_tokens``,
``output_tokens``, ``latency_s`` (median wall time of the whole call, seconds).
Optional: ``n_heads``, ``n_kv_heads``, ``vocab`` (default 50432), ``dtype``
(``fp32``, ``bf16``, ``fp16``; default ``fp32``, PyTorch's default),
``latency_min_s``, ``latency_max_s``, ``latency_iqr_s``, ``trials``,
``warmup``, ``device``, ``hardware``, ``framework``, ``stack`` (the serving
stack that was timed: ``hf-eager`` or ``cuda-graphs``).

:func:`calibrate` fits the free coefficients of :mod:`morph.latency` by least
squares on log latency (so every row counts by its relative error) within
physical bounds: host overheads >= 0, ``0 < eta <= 1``, ``overlap_p >= 1``.
Coefficients not fitted are fixed at stated priors (:data:`PRIORS`).
:func:`leave_one_out` refits without each row and predicts it: the honest
estimate of the error on a shape that was not measured.

The shipped default for ``a100-40gb`` (:func:`calibrate_published_a100`) is
made only from the paper's two published A100 timings and the datasheet.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import load_models_1b
from ..errors import LatencyError
from .hardware import Hardware
from .measurements import (
    OPTIONAL_COLUMNS, REQUIRED_COLUMNS, as_measurements, generation_work_for, hardware_for, load_measurements,
    one_stack, stack_of, timed_under,
)
from .model import GenerationWork, decode_lines, predict, prefill_device_s, segment_device_s, segments
from .record import COEFFICIENTS, Calibration
from .workload import PAPER_WORKLOAD

__all__ = [
    "timed_under",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "PRIORS",
    "DEFAULT_FIT",
    "Calibration",
    "CalibrationResult",
    "LeaveOneOut",
    "load_measurements",
    "calibrate",
    "leave_one_out",
    "priors",
    "additive_host_coefficients",
    "GRAPH_FIT",
    "published_a100_measurements",
    "calibrate_published_a100",
    "A100_CALIBRATION",
]

DEFAULT_FIT = ("c_fixed_s", "c_layer_s", "eta_bw", "eta_flops")
"""Coefficients :func:`calibrate` fits unless told otherwise; ``overlap_p`` stays at its prior."""

GRAPH_FIT = ("c_fixed_s", "c_layer_device_s", "eta_bw")
"""Coefficients fitted for a graph-captured stack: its per-layer cost is device time, not host time."""

PRIORS: Mapping[str, Mapping[str, float]] = {
    "gpu": {"c_fixed_s": 1e-3, "c_layer_s": 5e-4, "eta_bw": 0.7, "eta_flops": 0.5, "overlap_p": 8.0,
            "c_layer_device_s": 0.0},
    "cpu": {"c_fixed_s": 1e-3, "c_layer_s": 5e-4, "eta_bw": 0.7, "eta_flops": 0.5, "overlap_p": 1.0,
            "c_layer_device_s": 0.0},
}
"""Values of coefficients that are not fitted, per hardware kind (also the fit's starting point)."""

PRIOR_NOTES: Mapping[tuple[str, str], str] = {
    ("gpu", "eta_bw"): (
        "eta_bw = 0.7: a prior, not a measurement. Large matrix-vector products reach roughly 70-90% of a GPU's "
        "datasheet bandwidth; the lower end allows for the smaller matrices of 1B-scale models and for "
        "unfused elementwise kernels."
    ),
    ("gpu", "eta_flops"): (
        "eta_flops = 0.5: a prior. A 128-token prefill runs matrix products with only 128 rows, which reach "
        "about half of peak tensor-core throughput."
    ),
    ("gpu", "overlap_p"): (
        "overlap_p = 8: a prior for asynchronous GPU launch; each token costs about max(host, device), with a "
        "9% penalty where the two are equal (each step synchronises to read the sampled token)."
    ),
    ("gpu", "c_layer_device_s"): (
        "c_layer_device_s = 0: in eager decoding each layer's host work (c_layer_s) is far longer than the gaps "
        "between its kernels, which hide behind it."
    ),
    ("cpu", "c_layer_device_s"): "c_layer_device_s = 0: on a CPU per-layer work is host time (c_layer_s).",
    ("cpu", "eta_bw"): "eta_bw = 0.7: a prior, not a measurement.",
    ("cpu", "eta_flops"): "eta_flops = 0.5: a prior, not a measurement.",
    ("cpu", "overlap_p"): (
        "overlap_p = 1: synchronous execution; the same cores run the framework and the arithmetic, so host "
        "and device time add."
    ),
}
"""Why each prior has its value, per hardware kind, recorded in a calibration's notes."""


def _fixed_note(kind: str, name: str, value: float) -> str:
    if value == PRIORS[kind][name]:
        return PRIOR_NOTES[(kind, name)] if (kind, name) in PRIOR_NOTES else f"{name} = {value:g}: a prior."
    return f"{name} = {value:g}: fixed by the user."


_SCALE = {"c_fixed_s": 1e-3, "c_layer_s": 1e-3, "eta_bw": 1.0, "eta_flops": 1.0, "overlap_p": 1.0,
          "c_layer_device_s": 1e-5}
_RANGES = {"c_fixed_s": (0.0, False, math.inf), "c_layer_s": (0.0, False, math.inf), "eta_bw": (0.0, True, 1.0),
           "eta_flops": (0.0, True, 1.0), "overlap_p": (1.0, False, math.inf),
           "c_layer_device_s": (0.0, False, math.inf)}
"""Physical range of each coefficient: (low, low excluded, high)."""

# The optimiser searches inside the physical ranges: a step above an excluded zero (an efficiency of 1e-4
# is already absurd), and p up to 64, where the overlap is max(host, device) to 1.1% (2 ** (1 / 64)).
_SEARCH_FLOOR = {"eta_bw": 1e-4, "eta_flops": 1e-4}
_SEARCH_CEILING = {"overlap_p": 64.0}
_BOUNDS = {name: (_SEARCH_FLOOR.get(name, low), min(high, _SEARCH_CEILING.get(name, high)))
           for name, (low, _, high) in _RANGES.items()}
"""Bounds of the optimiser's search for each coefficient, inside :data:`_RANGES`."""


# --- fitting ----------------------------------------------------------------------------------


def priors(hardware: Hardware) -> dict[str, float]:
    """Coefficient values used where a calibration does not fit them, for this hardware's kind."""
    return dict(PRIORS[hardware.kind])


@dataclass(frozen=True)
class CalibrationResult:
    """A fitted :class:`~morph.latency.Calibration` with its fit diagnostics.

    Attributes
    ----------
    calibration : Calibration
        The coefficients (fitted and fixed), their metadata and the
        distribution of its predictions (``uncertainty``).
    table : DataFrame
        Per measurement: shape, workload, ``measured_s``, ``predicted_s``,
        ``error`` (``predicted / measured - 1``) and ``roofline_s``.
    stderr : dict
        Approximate standard error of each fitted coefficient (from the
        Jacobian of the log residuals; NaN with no spare degrees of freedom).
    below_roofline : int
        Rows timed faster than the datasheet roofline allows (caches, or wrong
        hardware figures): no physical coefficients can fit them.
    message : str
        The optimiser's report.
    """

    calibration: Calibration
    table: pd.DataFrame
    stderr: dict[str, float]
    below_roofline: int
    message: str = ""

    @property
    def mape(self) -> float:
        """Mean absolute relative error of the fit on its own rows (fraction)."""
        return float(np.mean(np.abs(self.table["error"])))

    @property
    def max_error(self) -> float:
        """Largest absolute relative error on the fitted rows (fraction)."""
        return float(np.max(np.abs(self.table["error"])))

    def report(self) -> str:
        """Readable summary: coefficients, fitted or fixed, and the fit error."""
        cal = self.calibration
        lines = [f"calibration {cal.name} for {cal.hardware} from {cal.n_measurements} measurement(s)"]
        for name, value in cal.coefficients.items():
            unit = " s" if name.endswith("_s") else ""
            status = "fitted" if name in cal.fitted else "fixed"
            err = self.stderr.get(name, math.nan)
            spread = f" +/- {err:.3g}" if name in cal.fitted and math.isfinite(err) else ""
            lines.append(f"  {name:<10} {value:.6g}{unit}{spread} ({status})")
        lines.append(f"  fit error: mean {100 * self.mape:.2f}%, worst {100 * self.max_error:.2f}%")
        if self.below_roofline:
            lines.append(f"  warning: {self.below_roofline} row(s) measured below the roofline floor")
        return "\n".join(lines)


def _validate_fit(fit: Sequence[str], fixed: Mapping[str, float]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(fit))
    unknown = [n for n in (*names, *fixed) if n not in COEFFICIENTS]
    if unknown:
        raise LatencyError(f"unknown coefficient(s) {', '.join(unknown)}; the coefficients are {', '.join(COEFFICIENTS)}")
    both = [n for n in names if n in fixed]
    if both:
        raise LatencyError(f"coefficient(s) {', '.join(both)} cannot be both fitted and fixed")
    if not names:
        raise LatencyError("name at least one coefficient to fit")
    return names




def _check_fixed(values: Mapping[str, float]) -> None:
    for name, value in values.items():
        low, open_low, high = _RANGES[name]
        inside = math.isfinite(value) and (value > low if open_low else value >= low) and value <= high
        if not inside:
            interval = f"{'(' if open_low else '['}{low:g}, {high:g}{']' if math.isfinite(high) else ')'}"
            raise LatencyError(f"fixed {name} = {value:g} is outside its physical range {interval}")


def _coefficient_set(names: Sequence[str], x: np.ndarray, fixed: Mapping[str, float]) -> Calibration:
    values = dict(fixed)
    values.update({name: float(v) * _SCALE[name] for name, v in zip(names, x)})
    # Bounds are respected by the optimiser; clip guards the last ulp.
    values["eta_bw"] = min(values["eta_bw"], 1.0)
    values["eta_flops"] = min(values["eta_flops"], 1.0)
    return Calibration(name="fit", hardware="fit", **{k: values[k] for k in COEFFICIENTS})


def _starts(names: Sequence[str], work: GenerationWork, measured: np.ndarray, prior: Mapping[str, float]) -> list[np.ndarray]:
    """Starting points: host coefficients from a non-negative linear fit, efficiencies and p on a small grid."""
    passes = work.output_tokens * np.ones_like(measured)
    design = np.column_stack([passes, passes * work.n_layers * np.ones_like(measured)])
    weights = 1.0 / measured  # relative error, as the fit
    from scipy.optimize import nnls

    host, _ = nnls(design * weights[:, None], measured * weights)
    base = dict(prior)
    if host.any():
        base["c_fixed_s"], base["c_layer_s"] = max(host[0], 1e-6), max(host[1], 1e-6)
    grids = {"eta_bw": (base["eta_bw"], 0.3, 1.0), "eta_flops": (base["eta_flops"], 0.2, 1.0),
             "overlap_p": (base["overlap_p"], 1.5, 16.0)}
    starts = []
    for k in range(3):
        start = []
        for name in names:
            # A coefficient whose prior is zero starts from a few of its scale units instead.
            value = grids[name][k] if name in grids else (base[name] or 2 * _SCALE[name]) * (1.0, 0.5, 2.0)[k]
            low, high = _BOUNDS[name]
            start.append(min(max(value, low + 1e-9 if math.isfinite(high) else low), high) / _SCALE[name])
        starts.append(np.array(start))
    return starts


def _prior_and_held(device: Hardware, names: Sequence[str], fixed: Mapping[str, float]) -> tuple[dict, dict]:
    """The device's prior coefficients, and the values of those not fitted (``fixed``, else the prior), checked."""
    prior = priors(device)
    held = {k: float(fixed.get(k, prior[k])) for k in COEFFICIENTS if k not in names}
    _check_fixed(held)
    return prior, held


def _fit(work: GenerationWork, measured: np.ndarray, names: Sequence[str], fixed: Mapping[str, float],
         prior: Mapping[str, float], starts: Sequence[np.ndarray] | None = None, max_nfev: int = 2000,
         tolerance: float = 1e-12):
    from scipy.optimize import least_squares  # imported on use: predicting latency never needs it

    log_measured = np.log(measured)

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(predict(work, _coefficient_set(names, x, fixed)).latency_s) - log_measured

    lower = np.array([_BOUNDS[n][0] / _SCALE[n] for n in names])
    upper = np.array([_BOUNDS[n][1] / _SCALE[n] for n in names])
    best = None
    for start in starts if starts is not None else _starts(names, work, measured, prior):
        result = least_squares(residuals, np.clip(start, lower, upper), bounds=(lower, upper), method="trf",
                               x_scale="jac", xtol=tolerance, ftol=tolerance, gtol=tolerance, max_nfev=max_nfev)
        if best is None or result.cost < best.cost - 1e-15:
            best = result
    return best


def _covariance(result, names: Sequence[str], n_rows: int) -> np.ndarray | None:
    """Covariance of the fitted coefficients (their own units), from the Jacobian of the log residuals.

    None without spare degrees of freedom or with a singular Jacobian. A
    coefficient stopped at a bound has a one-sided uncertainty that this
    normal approximation overstates; draws are clipped to the bounds.
    """
    dof = n_rows - len(names)
    if dof <= 0:
        return None
    jac = np.asarray(result.jac, dtype=np.float64)
    sigma2 = 2.0 * result.cost / dof
    try:
        scaled = np.linalg.pinv(jac.T @ jac) * sigma2
    except np.linalg.LinAlgError:
        return None
    scale = np.array([_SCALE[name] for name in names])
    return scaled * np.outer(scale, scale)


def _stderr(covariance: np.ndarray | None, names: Sequence[str]) -> dict[str, float]:
    if covariance is None:
        return {name: math.nan for name in names}
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    return {name: float(e) for name, e in zip(names, errors)}


BOOTSTRAP = 100
"""Refits over resampled rows behind a measured calibration's coefficient draws."""


def _bootstrap(frame: pd.DataFrame, device: Hardware, names: Sequence[str], held: Mapping[str, float],
               prior: Mapping[str, float], optimum: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Coefficients (their own units) of ``n`` refits to rows drawn with replacement, from the optimum.

    A resample whose fit fails is drawn again, so every row of the result is
    a converged refit; the optimiser's own failures are rare and counted in
    none of the draws.
    """
    rng = np.random.default_rng(seed)
    measured = frame["latency_s"].to_numpy(dtype=np.float64)
    scale = np.array([_SCALE[name] for name in names])
    rows = []
    while len(rows) < n:
        pick = rng.integers(0, len(frame), len(frame))
        if len(np.unique(pick)) < len(names):
            continue
        work = generation_work_for(frame.iloc[pick], device)
        # From the full fit's optimum a resample moves little: a looser stop is ample for a draw.
        result = _fit(work, measured[pick], names, held, prior, starts=[optimum], max_nfev=200, tolerance=1e-9)
        if result.success:
            rows.append(result.x * scale)
    return np.array(rows)


def _measured_uncertainty(names: Sequence[str], samples: np.ndarray | None, log_residuals: np.ndarray) -> dict:
    """The distribution of a fitted calibration's predictions: coefficients and residual scatter.

    The coefficients are the bootstrap refits' (a linearised covariance is
    useless here: the efficiencies are weakly identified and strongly
    correlated with the host times, so normal draws break the correlation
    that keeps predictions tight); the residual scatter (root mean square of
    the log residuals over the degrees of freedom) is a log-normal factor,
    widened by Student's t over the normal quantile for the few degrees of
    freedom a small table has, so the band covers timings the fit has not
    seen at its stated level.
    """
    dof = len(log_residuals) - len(names)
    if dof <= 0:
        return {}
    from scipy.stats import t as student_t  # imported on use: predictions never need it

    scatter = math.sqrt(float(np.sum(log_residuals**2)) / dof)
    widening = float(student_t.ppf(0.975, dof)) / 1.959963984540054
    refits = "" if samples is None else f" the coefficients of {len(samples)} bootstrap refits over the rows, and"
    return {
        "basis": "measured",
        "fitted": list(names),
        "samples": None if samples is None else [[float(v) for v in row] for row in samples],
        "log_sigma": scatter * widening,
        "reasoning": (
            f"fitted to {len(log_residuals)} timings:{refits} the fit's residual scatter ({scatter:.1%} in log, "
            f"widened by Student's t with {dof} degrees of freedom to {scatter * widening:.1%})"
        ),
    }


def _table(frame: pd.DataFrame, predicted: np.ndarray, roofline: np.ndarray) -> pd.DataFrame:
    table = frame[["n_layers", "d_model", "batch", "input_tokens", "output_tokens", "dtype"]].copy()
    table["measured_s"] = frame["latency_s"].to_numpy()
    table["predicted_s"] = predicted
    table["error"] = predicted / table["measured_s"].to_numpy() - 1.0
    table["roofline_s"] = roofline
    return table


def calibrate(
    measurements: str | os.PathLike | bytes | pd.DataFrame,
    hardware: str | Hardware | None = None,
    *,
    fit: Iterable[str] = DEFAULT_FIT,
    fixed: Mapping[str, float] | None = None,
    name: str = "fitted",
    framework: str | None = None,
    protocol: str | None = None,
    source: str | None = None,
    stack: str | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> CalibrationResult:
    """Fit the latency model's free coefficients to measured ``generate`` timings.

    Minimises the squared log ratio of predicted to measured latency (relative
    error) with ``scipy.optimize.least_squares`` from a few starting points,
    within host overheads >= 0, ``0 < eta <= 1`` and ``1 <= overlap_p <= 64``.

    Parameters
    ----------
    measurements : path, bytes or DataFrame
        Timings (see :func:`load_measurements`).
    hardware : str or Hardware, optional
        Device they were timed on; defaults to the table's ``hardware``
        column or ``# hardware:`` line when it names exactly one preset.
    fit : iterable of str
        Coefficients to fit (names in :data:`morph.latency.COEFFICIENTS`).
    fixed : dict, optional
        Values of coefficients that are not fitted; the others not fitted take
        :data:`PRIORS` for the hardware's kind (``overlap_p = 1`` on a CPU).
    name, framework, protocol, source : str, optional
        Metadata of the calibration; framework and protocol default to the
        table's ``# framework:`` and ``# protocol:`` lines.
    stack : str, optional
        Fit only the rows of this serving stack (the table's ``stack``
        column), and record it; by default the table's one stack, if any.
    bootstrap : int
        Refits over resampled rows behind the coefficient draws of its band
        (0: the residual scatter alone); ``seed`` seeds the resampling.

    Returns
    -------
    CalibrationResult
        With the distribution of its predictions in ``calibration.uncertainty``
        (basis ``measured``) when there are more timings than coefficients.

    Raises
    ------
    LatencyError
        Bad measurements, unknown coefficient names, fewer rows than
        coefficients to fit, or a table of several stacks without ``stack``.
    """
    frame = one_stack(as_measurements(measurements), stack)
    device = hardware_for(frame, hardware)
    fixed = dict(fixed or {})
    names = _validate_fit(tuple(fit), fixed)
    if len(frame) < len(names):
        raise LatencyError(f"{len(names)} coefficients cannot be fitted to {len(frame)} measurement(s)")
    prior, held = _prior_and_held(device, names, fixed)
    work = generation_work_for(frame, device)
    measured = frame["latency_s"].to_numpy(dtype=np.float64)
    result = _fit(work, measured, names, held, prior)
    coefficients = _coefficient_set(names, result.x, held).coefficients
    prediction = predict(work, _coefficient_set(names, result.x, held))
    covariance = _covariance(result, names, len(frame))
    table = _table(frame, prediction.latency_s, prediction.roofline_s)
    errors = np.abs(table["error"].to_numpy())
    metadata = frame.attrs.get("metadata", {})
    frameworks = set(frame["framework"]) if "framework" in frame else set()
    notes = [_fixed_note(device.kind, k, held[k]) for k in COEFFICIENTS if k not in names]
    calibration = Calibration(
        name=name,
        hardware=device.name,
        **coefficients,
        framework=framework if framework is not None else metadata.get("framework", ", ".join(sorted(frameworks))),
        protocol=protocol if protocol is not None else metadata.get("protocol", ""),
        source=source if source is not None else f"fitted to {len(frame)} timings in {frame.attrs.get('source', 'a table')}",
        fitted=names,
        fit_mape=float(errors.mean()),
        fit_max_error=float(errors.max()),
        n_measurements=len(frame),
        notes=" ".join(notes),
        provenance=metadata,
        stack=stack or stack_of(frame),
        uncertainty=_measured_uncertainty(
            names, _bootstrap(frame, device, names, held, prior, result.x, bootstrap, seed) if bootstrap and len(frame) > len(names) else None,
            np.log(prediction.latency_s / measured)),
    )
    return CalibrationResult(
        calibration=calibration,
        table=table,
        stderr=_stderr(covariance, names),
        below_roofline=int((measured < prediction.roofline_s).sum()),
        message=str(result.message),
    )


@dataclass(frozen=True)
class LeaveOneOut:
    """Leave-one-out errors: each row predicted by a calibration fitted without it.

    Attributes
    ----------
    table : DataFrame
        Per row: shape, workload, ``measured_s``, ``predicted_s`` (held out)
        and ``error`` (``predicted / measured - 1``).
    """

    table: pd.DataFrame
    coefficients: pd.DataFrame = field(repr=False)

    @property
    def errors(self) -> np.ndarray:
        """Signed relative errors of the held-out predictions (fractions)."""
        return self.table["error"].to_numpy()

    @property
    def mape(self) -> float:
        """Mean absolute relative error of the held-out predictions (fraction)."""
        return float(np.mean(np.abs(self.errors)))

    @property
    def max_error(self) -> float:
        """Worst absolute relative error of a held-out prediction (fraction)."""
        return float(np.max(np.abs(self.errors)))

    @property
    def worst_row(self) -> int:
        """Index of the row predicted worst."""
        return int(np.argmax(np.abs(self.errors)))


def leave_one_out(
    measurements: str | os.PathLike | bytes | pd.DataFrame,
    hardware: str | Hardware | None = None,
    *,
    fit: Iterable[str] = DEFAULT_FIT,
    fixed: Mapping[str, float] | None = None,
    stack: str | None = None,
) -> LeaveOneOut:
    """Refit without each row in turn and predict the row left out.

    Same arguments as :func:`calibrate` (``stack`` picks the rows of one stack).

    Returns
    -------
    LeaveOneOut
        Per-row held-out errors, their mean (MAPE) and worst case, and the
        coefficients of every refit.

    Raises
    ------
    LatencyError
        If leaving a row out leaves no more rows than coefficients to fit.
    """
    frame = one_stack(as_measurements(measurements), stack)
    device = hardware_for(frame, hardware)
    names = _validate_fit(tuple(fit), dict(fixed or {}))
    if len(frame) <= len(names):
        raise LatencyError(
            f"leave-one-out needs more measurements than coefficients to fit "
            f"({len(frame)} measurement(s), {len(names)} coefficient(s))"
        )
    prior, held = _prior_and_held(device, names, fixed or {})
    work = generation_work_for(frame, device)
    measured = frame["latency_s"].to_numpy(dtype=np.float64)
    # Leaving one row out moves the optimum little, so each refit starts from the full fit's (found from
    # calibrate's starting points): on the shipped CPU sweep the held-out errors equal those of refits from
    # those starting points to 1e-8, in a sixth of the time.
    optimum = _fit(work, measured, names, held, prior).x
    predictions = np.empty(len(frame))
    refits = []
    for i in range(len(frame)):
        keep = np.arange(len(frame)) != i
        rest = generation_work_for(frame.iloc[keep], device)
        coefficients = _coefficient_set(names, _fit(rest, measured[keep], names, held, prior, starts=[optimum]).x, held)
        predictions[i] = float(predict(generation_work_for(frame.iloc[[i]], device), coefficients).latency_s[0])
        refits.append(coefficients.coefficients)
    table = frame[["n_layers", "d_model", "batch", "input_tokens", "output_tokens", "dtype"]].copy()
    table["measured_s"] = frame["latency_s"].to_numpy()
    table["predicted_s"] = predictions
    table["error"] = predictions / table["measured_s"].to_numpy() - 1.0
    return LeaveOneOut(table=table.reset_index(drop=True), coefficients=pd.DataFrame(refits))


def additive_host_coefficients(
    measurements: str | os.PathLike | bytes | pd.DataFrame,
    hardware: str | Hardware | None = None,
    *,
    eta_bw: float,
    eta_flops: float = PRIORS["gpu"]["eta_flops"],
) -> tuple[float, float]:
    """Host coefficients forced by a pure sum (``overlap_p = 1``), without bounds.

    With times that add, latency is linear in ``c_fixed_s`` and
    ``c_layer_s``: ``latency = passes * (c_fixed + c_layer * n_layers) +
    device``. This solves that system by least squares for given
    efficiencies (``eta_bw`` may exceed 1 here, to show what it would take),
    which is how the module docstring's claim about the A100 timings is
    checked: ``c_fixed_s`` comes out negative unless ``eta_bw`` is about 1.8.

    Returns
    -------
    (c_fixed_s, c_layer_s) : tuple of float
        Seconds per forward pass and per layer per pass.
    """

    frame = as_measurements(measurements)
    device = hardware_for(frame, hardware)
    work = generation_work_for(frame, device)
    lines = decode_lines(work, eta_bw, eta_flops)
    (decode_s,) = segment_device_s(lines, segments(work.decode_steps, 1))
    device_s = prefill_device_s(work, lines, eta_flops) + decode_s
    passes = work.output_tokens  # one prefill and output_tokens - 1 decode steps
    design = np.column_stack([passes * np.ones(len(frame)), passes * work.n_layers])
    solution, *_ = np.linalg.lstsq(design, frame["latency_s"].to_numpy() - device_s, rcond=None)
    return float(solution[0]), float(solution[1])


# --- the shipped A100 calibration -------------------------------------------------------------

A100_CALIBRATION = "a100-40gb-hf-generate"
"""Name of the default calibration of the ``a100-40gb`` preset (and, transferred, of the other GPUs)."""

A100_PROTOCOL = (
    "Hugging Face generate, one A100 40GB, bf16, batch 1, 128 input tokens, 256 output tokens, random weights, "
    "warm-up first, 5 kept trials, wall time of the whole call"
)
_PUBLISHED_MODELS = ("Open-LM-1B", "Morph-1B")


def published_a100_measurements() -> pd.DataFrame:
    """The paper's two A100 timings as a measurement table.

    Open-LM-1B (24 x 2048, 3.61 s) and Morph-1B (12 x 3072, 1.96 s) from
    ``data/models_1b_eval.csv``, with the protocol's workload
    (:data:`~morph.latency.PAPER_WORKLOAD`: batch 1, 128 input and 256 output
    tokens, bf16 on an A100 40GB) and the paper's vocabulary of 50432.
    """
    models = load_models_1b().set_index("model").loc[list(_PUBLISHED_MODELS)]
    paper = PAPER_WORKLOAD
    frame = pd.DataFrame(
        {
            "n_layers": models["n_layers"].to_numpy(np.int64),
            "d_model": models["d_model"].to_numpy(np.int64),
            "batch": paper.batch,
            "input_tokens": paper.input_tokens,
            "output_tokens": paper.output_tokens,
            "latency_s": models["latency_s"].to_numpy(np.float64),
            "dtype": paper.dtype,
            "hardware": paper.hardware_name,
            "framework": "Hugging Face transformers generate, PyTorch",
        }
    )
    frame.attrs["source"] = "models_1b_eval.csv"
    frame.attrs["metadata"] = {"models": ", ".join(_PUBLISHED_MODELS), "protocol": A100_PROTOCOL}
    return load_measurements(frame)


def calibrate_published_a100() -> CalibrationResult:
    """Make the shipped ``a100-40gb-hf-generate`` calibration from the two published timings.

    Fits exactly ``c_fixed_s`` and ``c_layer_s`` (two timings, two unknowns,
    so the fit reproduces them exactly); ``eta_bw = 0.7``, ``eta_flops = 0.5``
    and ``overlap_p = 8`` are fixed priors (:data:`PRIOR_NOTES`): at batch 1
    decode is host-bound and two timings cannot tell them apart.
    """
    result = calibrate(
        published_a100_measurements(),
        "a100-40gb",
        fit=("c_fixed_s", "c_layer_s"),
        fixed={k: PRIORS["gpu"][k] for k in ("eta_bw", "eta_flops", "overlap_p")},
        name=A100_CALIBRATION,
        framework="Hugging Face transformers generate (PyTorch eager), bf16",
        protocol=A100_PROTOCOL,
        source=(
            "Bian, Yan, Venkataraman, Scaling Inference-Efficient Language Models (ICML 2025): Open-LM-1B 24x2048 "
            "3.61 s and Morph-1B 12x3072 1.96 s (data/models_1b_eval.csv), with the NVIDIA A100 40GB datasheet "
            "(data/hardware.csv); made by morph.latency.calibration.calibrate_published_a100()"
        ),
    )
    transfer = (
        " Other GPU presets use these host coefficients with their own datasheet figures: a transfer, not a "
        "calibration (host overhead is CPU-side framework work, which changes with the host CPU and software "
        "more than with the GPU). No held-out timing exists, so there is no leave-one-out error; the other "
        "24x2048 models of data/models_1b_eval.csv (2.54-3.99 s for one shape) show that implementation "
        "differences alone move latency by up to a factor 3.61 / 2.54 = 1.42."
    )
    calibration = result.calibration.replace(
        notes=result.calibration.notes + transfer,
        provenance={"models": ", ".join(_PUBLISHED_MODELS), "table": "data/models_1b_eval.csv"},
    )
    return CalibrationResult(calibration, result.table, result.stderr, result.below_roofline, result.message)
