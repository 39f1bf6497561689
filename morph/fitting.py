"""Fitting scaling laws to training runs.

:func:`fit` returns a :class:`FitResult`, modelled on lmfit's ``ModelResult``:
parameters with uncertainties, a readable :meth:`~FitResult.report`,
:meth:`~FitResult.predict`, residuals and metrics on any evaluation set.

Two methods:

``paper``
    ``scipy.optimize.curve_fit`` on the raw loss, unweighted least squares,
    ``p0`` all ones and ``maxfev = 100000`` (for the non-equal
    inference-efficient law ``p0 = [5e4, 5e5, 2, 0.5, 0.0011, 0.5]`` with an
    upper bound of 100 on ``gamma``), exactly as Bian et al. (2025) fitted.
    Standard errors come from the covariance ``curve_fit`` returns.
``robust``
    Huber loss (``delta = 1e-3``) on log-loss from many starting points, as
    Hoffmann et al. (2022) and Besiroglu et al. (2024) fit, with ``A``,
    ``B``, ``E`` kept positive (see :mod:`morph.robust`). Standard errors are
    the least-squares asymptotic approximation at the robust optimum;
    ``bootstrap=K`` gives percentile confidence intervals from ``K`` refits.
"""

from __future__ import annotations

import math
import sys
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .data import Source, fit_mask, load_runs
from .errors import FitError
from .laws import ScalingLaw, free_parameters, law_class, tie_parameters
from .metrics import PAPER_DECIMALS, Metrics, evaluate, split_metrics
from .robust import DEFAULT_DELTA, LogSpaceModel, bootstrap_huber, fit_huber

__all__ = ["fit", "FitResult", "METHODS", "design_warnings", "paper_start"]

METHODS = ("paper", "robust")
FloatArray = NDArray[np.float64]

#: Tokens-per-parameter spread (standard deviation of ln(D/N)) below which N and D are confounded.
CONFOUNDED_SPREAD = 0.1


def paper_start(family: str, variant: str) -> tuple[list[float], tuple[list[float], list[float]] | None]:
    """Starting point and bounds of the ``paper`` method for a law (see :meth:`ScalingLaw.paper_start`)."""
    return law_class(family).paper_start(variant)


def design_warnings(N: FloatArray, D: FloatArray, aspect_ratio: FloatArray | None, family: str) -> list[str]:
    """Sentences about what a set of fit points cannot determine.

    Parameters
    ----------
    N, D : array
        Parameters and tokens of the fit points.
    aspect_ratio : array or None
        Their aspect ratios.
    family : str
        The law being fitted.
    """
    notes = []
    log_n, log_d = np.log(N), np.log(D)
    if np.ptp(log_n) < 1e-9:
        notes.append("Every fit point has the same N, so the parameter term (A, alpha) cannot be determined.")
    if np.ptp(log_d) < 1e-9:
        notes.append("Every fit point has the same D, so the data term (B, beta) cannot be determined.")
    ratio = D / N
    if np.ptp(log_n) >= 1e-9 and np.ptp(log_d) >= 1e-9 and np.std(np.log(ratio)) < CONFOUNDED_SPREAD:
        notes.append(
            f"The fit points all have about the same tokens per parameter (D/N from {ratio.min():.3g} to "
            f"{ratio.max():.3g}), so the law cannot tell the effect of model size from that of data: "
            "A, B, alpha and beta are not identified. Add runs at other token budgets."
        )
    if law_class(family).needs_aspect_ratio and aspect_ratio is not None and np.ptp(aspect_ratio) == 0:
        notes.append("Every fit point has the same aspect ratio, so the shape factor cannot be determined.")
    return notes


#: R^2 on its own fit points below which a fit is reported as a poor local optimum.
POOR_FIT_R2 = 0.9


def _quality_warnings(family, variant, params, N, D, R, loss, method) -> list[str]:
    with np.errstate(all="ignore"):
        pred = law_class(family).from_values(params, check=False).predict(N, D, R)
    if not np.all(np.isfinite(pred)):
        return ["The fitted law predicts non-finite losses on its own fit points; do not use it."]
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.sum((loss - loss.mean()) ** 2))
        explained = 1.0 - float(np.sum((loss - pred) ** 2)) / total if total > 0 else float("nan")
    if np.isfinite(explained) and explained < POOR_FIT_R2:
        hint = " The robust method searches many starting points." if method == "paper" else ""
        return [
            f"The fit explains only {max(explained, 0) * 100:.0f}% of the variance of its own fit points "
            f"(R^2 = {explained:.3f}): the optimiser stopped at a poor optimum or the law does not suit "
            f"these data.{hint}"
        ]
    return []


def _parameter_warnings(params: dict[str, float], stderr: dict[str, float] | None) -> list[str]:
    notes = []
    for name, meaning in (("A", "model size"), ("B", "training tokens")):
        if params[name] < 0:
            notes.append(
                f"{name} = {params[name]:.4g} is negative: the law predicts loss rising with {meaning}, which is "
                "not physical (this usually means the data cannot separate N from D)."
            )
    if params["E"] < 0:
        notes.append(f"E = {params['E']:.4g} is negative: the irreducible loss cannot be below zero.")
    for name in ("alpha", "beta"):
        if params[name] <= 0:
            notes.append(f"{name} = {params[name]:.4g} is not positive: loss would not fall as the budget grows.")
    if stderr:
        for name, se in stderr.items():
            value = params[name]
            if np.isfinite(se) and value != 0 and se > abs(value):
                notes.append(
                    f"{name} is poorly determined: its standard error ({se:.3g}) exceeds its value ({value:.3g})."
                )
    return notes


@dataclass
class FitResult:
    """A fitted scaling law with its data, uncertainties and diagnostics.

    Attributes
    ----------
    law : ScalingLaw
        The fitted law (full parameter set).
    family, variant, method : str
        What was fitted and how.
    free_parameters : tuple of str
        Parameters the fit estimated (the rest are tied).
    stderr : dict or None
        Standard error of each free parameter (None when not estimable).
    conf_int : dict or None
        ``{name: (low, high)}`` bootstrap percentile interval at ``confidence``.
    confidence : float
        Level of ``conf_int``.
    bootstrap_params : ndarray or None
        One row per bootstrap replicate, columns in ``law.parameter_names()``.
    data : DataFrame
        Every row given (the evaluation set), canonical columns.
    fit_mask : ndarray of bool
        Rows the fit used.
    objective : float
        Final objective (sum of squares for ``paper``, Huber sum for ``robust``).
    success : bool
        Whether the optimiser converged.
    message : str
        The optimiser's own words.
    warnings : list of str
        What the user should know about this fit, in sentences.
    """

    law: ScalingLaw
    family: str
    variant: str
    method: str
    free_parameters: tuple[str, ...]
    stderr: dict[str, float] | None
    data: pd.DataFrame
    fit_mask: np.ndarray
    objective: float
    success: bool
    message: str
    warnings: list[str] = field(default_factory=list)
    conf_int: dict[str, tuple[float, float]] | None = None
    confidence: float = 0.95
    bootstrap_params: FloatArray | None = None
    covariance: FloatArray | None = None
    fit_set: str | None = None
    n_bootstrap_failed: int = 0

    # -- parameters ----------------------------------------------------------------

    @property
    def params(self) -> dict[str, float]:
        """Full parameter set ``{name: value}``."""
        return self.law.params

    @property
    def n_fit(self) -> int:
        """Points used by the fit."""
        return int(self.fit_mask.sum())

    # -- prediction ----------------------------------------------------------------

    def predict(self, N: ArrayLike, D: ArrayLike, aspect_ratio: ArrayLike | None = None) -> FloatArray:
        """Predicted loss for ``N`` parameters, ``D`` tokens and aspect ratio ``R``."""
        return self.law.predict(N, D, aspect_ratio)

    def predict_frame(self, frame: pd.DataFrame) -> FloatArray:
        """Predicted loss for each row of a table with ``N``, ``D`` (and ``aspect_ratio``)."""
        R = frame["aspect_ratio"].to_numpy(float) if "aspect_ratio" in frame else None
        return self.predict(frame["N"].to_numpy(float), frame["D"].to_numpy(float), R)

    @property
    def predictions(self) -> FloatArray:
        """Predicted loss for every row of :attr:`data`, in order."""
        return self.predict_frame(self.data)

    @property
    def residuals(self) -> FloatArray:
        """Observed minus predicted loss for every row of :attr:`data`."""
        return self.data["loss"].to_numpy(float) - self.predictions

    def parameter_samples(self, n_samples: int = 500, seed: int | None = 0) -> FloatArray:
        """Draws of the full parameter vector expressing the fit's uncertainty.

        Bootstrap replicates when the fit has them; otherwise draws from a
        normal distribution with the fit's covariance (free parameters, tied
        ones following). Columns are in ``law.parameter_names()`` order.
        """
        if self.bootstrap_params is not None:
            return self.bootstrap_params
        if self.covariance is None or not np.all(np.isfinite(self.covariance)):
            return np.array([[self.params[n] for n in self.law.parameter_names()]])
        rng = np.random.default_rng(seed)
        centre = np.array([self.params[n] for n in self.free_parameters])
        draws = rng.multivariate_normal(centre, self.covariance, size=n_samples, check_valid="ignore")
        columns = [
            [tie_parameters(self.family, self.variant, dict(zip(self.free_parameters, row)))[n]
             for n in self.law.parameter_names()]
            for row in draws
        ]
        return np.asarray(columns)

    def predict_interval(
        self, N: ArrayLike, D: ArrayLike, aspect_ratio: ArrayLike | None = None, level: float | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Band of predicted loss (low, high) at ``level`` from :meth:`parameter_samples`."""
        level = self.confidence if level is None else level
        samples = self.parameter_samples()
        names = self.law.parameter_names()
        cls = type(self.law)
        with np.errstate(all="ignore"):
            preds = np.stack(
                [cls.from_values(dict(zip(names, row)), check=False).predict(N, D, aspect_ratio) for row in samples]
            )
        tail = (1.0 - level) / 2.0 * 100.0
        low, high = np.nanpercentile(preds, [tail, 100.0 - tail], axis=0)
        return low, high

    # -- metrics -------------------------------------------------------------------

    def metrics(self, round_decimals: int | None = PAPER_DECIMALS) -> dict[str, Metrics | None]:
        """Metrics on all rows (the paper's "test"), on the fit rows and on the held-out rows.

        Parameters
        ----------
        round_decimals : int or None
            Round predictions first, as the paper does (4); None for raw.
        """
        return split_metrics(self.data["loss"].to_numpy(float), self.predictions, self.fit_mask, round_decimals)

    def evaluate(self, data: Source, round_decimals: int | None = PAPER_DECIMALS) -> Metrics:
        """Metrics of this fit's predictions on any table of runs."""
        frame = load_runs(data, require_aspect_ratio=self.law.needs_aspect_ratio)
        return evaluate(frame["loss"].to_numpy(float), self.predict_frame(frame), round_decimals)

    # -- reporting -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: parameters, uncertainties, metrics, predictions and warnings."""
        split = self.metrics()
        heldout = split["heldout"]
        return {
            "law": self.family,
            "variant": self.variant,
            "method": self.method,
            "fit_set": self.fit_set,
            "n_points": len(self.data),
            "n_fit": self.n_fit,
            "params": self.params,
            "free_parameters": list(self.free_parameters),
            "stderr": self.stderr,
            "conf_int": {k: list(v) for k, v in self.conf_int.items()} if self.conf_int else None,
            "confidence": self.confidence if self.conf_int else None,
            "metrics": {
                "mse": split["all"].mse,  # type: ignore[union-attr]
                "r2": split["all"].r2,  # type: ignore[union-attr]
                "heldout_mse": heldout.mse if heldout else None,
                "heldout_r2": heldout.r2 if heldout else None,
                "rounded_to_decimals": PAPER_DECIMALS,
                "all": split["all"].to_dict(),  # type: ignore[union-attr]
                "fit": split["fit"].to_dict(),  # type: ignore[union-attr]
                "heldout": heldout.to_dict() if heldout else None,
            },
            "predictions": self.predictions.tolist(),
            "objective": self.objective,
            "success": self.success,
            "warnings": list(self.warnings),
        }

    def report(self) -> str:
        """A readable, multi-line report (lmfit's ``fit_report`` style)."""
        ties = law_class(self.family).variants[self.variant]
        tie_text = ", ".join(f"{a} = {b}" for a, b in ties.items()) or "all parameters free"
        fit_set = f"{self.fit_set}: " if self.fit_set else ""
        lines = [
            "[[Fit]]",
            f"    law        {self.family} ({self.variant}: {tie_text})",
            f"    method     {self.method}",
            f"    fit set    {fit_set}{self.n_fit} of {len(self.data)} points",
            f"    converged  {'yes' if self.success else 'NO'} ({self.message})",
            f"    objective  {self.objective:.6g}",
            "[[Parameters]]",
        ]
        for name in self.law.parameter_names():
            value = self.params[name]
            if name not in self.free_parameters:
                lines.append(f"    {name:<6} = {value:<14.8g} (tied to {ties[name]})")
                continue
            text = f"    {name:<6} = {value:<14.8g}"
            se = (self.stderr or {}).get(name)
            if se is not None and np.isfinite(se):
                rel = f" ({abs(se / value) * 100:.2f}%)" if value else ""
                text += f" +/- {se:.4g}{rel}"
            if self.conf_int and name in self.conf_int:
                low, high = self.conf_int[name]
                text += f"  {self.confidence:.0%} CI [{low:.6g}, {high:.6g}]"
            lines.append(text)
        lines.append(f"[[Metrics]] (predictions rounded to {PAPER_DECIMALS} decimals, as the paper)")
        lines.append(f"    {'set':<22}{'n':>4}  {'MSE':>10}  {'R^2':>9}  {'mean rel err':>12}  {'Spearman':>8}")
        labels = {
            "all": "all points (paper test)",
            "fit": "fit points",
            "heldout": "held-out points",
        }
        for key, m in self.metrics().items():
            if m is None:
                continue
            lines.append(
                f"    {labels[key]:<22}{m.n:>4}  {m.mse:>10.6g}  {m.r2:>9.6f}  "
                f"{m.mean_relative_error * 100:>11.3f}%  {m.spearman:>8.3f}"
            )
        if self.warnings:
            lines.append("[[Warnings]]")
            lines.extend(f"    - {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def _repr_html_(self) -> str:  # shown by Jupyter
        import html

        return f"<pre>{html.escape(self.report())}</pre>"


# -- the two methods --------------------------------------------------------------------


#: Relative fall in the sum of squares that shows a ``curve_fit`` run stopped short of its optimum.
EARLY_STOP_GAIN = 1e-6


def _sum_of_squares(model, values, loss) -> float:
    with np.errstate(all="ignore"):
        return float(np.sum((model(None, *values) - loss) ** 2))


def _restart_if_stopped_early(model, loss, kwargs, values, cov, message, flag):
    """Run ``curve_fit`` once more from where it stopped; keep the rerun only if it fits clearly better.

    In a flat valley (fit set A, whose points cannot separate N from D) MINPACK
    sometimes stops on its step-size test far from the bottom: in about 2 of
    100 refits with the losses changed in their last bits, at a sum of squares
    21% above the optimum. A rerun from that point reaches the optimum. Where
    the first run did reach it, the rerun gains nothing (well under
    :data:`EARLY_STOP_GAIN`) and the first run's result is kept unchanged.
    """
    first = _sum_of_squares(model, values, loss)
    try:
        from scipy.optimize import curve_fit

        again = curve_fit(model, np.zeros_like(loss), loss, full_output=True, **{**kwargs, "p0": values})
    except (RuntimeError, ValueError):  # the first run's answer stands
        return values, cov, message, flag
    if _sum_of_squares(model, again[0], loss) < first * (1 - EARLY_STOP_GAIN):
        return again[0], again[1], again[3], again[4]
    return values, cov, message, flag


def _paper_fit(family: str, variant: str, N, D, R, loss, p0=None) -> tuple[dict[str, float], FloatArray | None, float, bool, str, list[str]]:
    # scipy.optimize is imported when a fit runs: a dashboard page that reads stored fits never loads it.
    from scipy.optimize import OptimizeWarning, curve_fit

    names = free_parameters(family, variant)
    cls = law_class(family)
    start, bounds = paper_start(family, variant)
    start = list(p0) if p0 is not None else start

    full = cls.parameter_names()
    ties = cls.variants[variant]
    source = [names.index(ties.get(name, name)) for name in full]

    def model(_x, *values):
        law = cls.from_values({name: values[i] for name, i in zip(full, source)}, check=False)
        return law.predict(N, D, R)

    notes: list[str] = []
    kwargs: dict[str, Any] = {"p0": start, "maxfev": 100000}
    if bounds is not None:
        kwargs["bounds"] = bounds
    with np.errstate(all="ignore"), _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always", OptimizeWarning)
        try:
            values, cov, _info, optimiser_message, flag = curve_fit(
                model, np.zeros_like(loss), loss, full_output=True, **kwargs
            )
            values, cov, optimiser_message, flag = _restart_if_stopped_early(
                model, loss, kwargs, values, cov, optimiser_message, flag
            )
        except RuntimeError as exc:
            raise FitError(
                f"the paper method did not converge ({exc}); try --method robust, which searches many starting points"
            ) from None
        except ValueError as exc:
            raise FitError(f"the paper method could not start: {exc}") from None
    if any(issubclass(w.category, OptimizeWarning) for w in caught):
        notes.append("The parameters' uncertainties could not be estimated: the fit is degenerate at its optimum.")
    if np.allclose(values, start, rtol=1e-12, atol=0):
        notes.append(
            "The optimiser did not move from its starting point: the loss does not respond to the parameters "
            "there. Try the robust method."
        )
    free = dict(zip(names, map(float, values)))
    params = tie_parameters(family, variant, free)
    with np.errstate(all="ignore"):
        pred = cls.from_values(params, check=False).predict(N, D, R)
    if not np.all(np.isfinite(pred)) or not all(map(math.isfinite, params.values())):
        raise FitError("the paper method ended at parameters that predict non-finite losses; try --method robust")
    with np.errstate(over="ignore"):
        sse = float(np.sum((pred - loss) ** 2))
    cov = cov if np.all(np.isfinite(cov)) else None
    # MINPACK (lm) reports 1-4 on success; the bounded solver (trf) reports 1-4 too, 0 and -1 on failure.
    converged = int(flag) in (1, 2, 3, 4)
    return params, cov, sse, converged, f"curve_fit: {str(optimiser_message).strip()}", notes


def _bootstrap_paper(family, variant, N, D, R, loss, start, n_samples, seed, bar) -> tuple[FloatArray, int]:
    # Refits start at the full-data optimum: the resampled problems are close
    # to the original, so this converges in a few evaluations and never
    # wanders off to the far-away solutions a cold start can find.
    rng = np.random.default_rng(seed)
    names = law_class(family).parameter_names()
    rows, failed = [], 0
    for _ in range(n_samples):
        idx = rng.integers(0, loss.size, loss.size)
        try:
            params, *_ = _paper_fit(
                family, variant, N[idx], D[idx], None if R is None else R[idx], loss[idx], p0=start
            )
            rows.append([params[n] for n in names])
        except FitError:
            failed += 1
        bar(1)
    return np.asarray(rows).reshape(-1, len(names)), failed


def _robust_stderr(model: LogSpaceModel, theta: FloatArray, params: dict[str, float]) -> tuple[dict[str, float] | None, FloatArray | None]:
    log_pred, jac = model.forward(theta[None, :])
    r = log_pred[0] - model.log_loss
    n, k = r.size, theta.size
    if n <= k:
        return None, None
    s2 = float(np.sum(r**2)) / (n - k)
    cov_internal = s2 * np.linalg.pinv(jac[0].T @ jac[0])  # type: ignore[index]
    scale = np.array([params[name] if model.is_log[i] else 1.0 for i, name in enumerate(model.free)])
    cov = cov_internal * np.outer(scale, scale)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    return dict(zip(model.free, map(float, se))), cov


def _progress_bar(total: int, enabled: bool, desc: str):
    if not enabled or total == 0:
        return lambda _n: None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the app extra; a core install counts on stderr
        return _progress_counter(total, desc)
    bar = tqdm(total=total, desc=desc, unit="fit")
    return bar.update, bar.close


def _progress_counter(total: int, desc: str):
    done = [0]

    def update(n: int) -> None:
        done[0] += n
        print(f"\r{desc}: {done[0]}/{total} fits", end="", file=sys.stderr, flush=True)

    return update, lambda: print(file=sys.stderr, flush=True)


def fit(
    data: Source | None = None,
    law: str = "inference-efficient",
    variant: str = "tied",
    *,
    method: Literal["paper", "robust"] = "paper",
    fit_set: str | Iterable[bool] | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int | None = 0,
    delta: float = DEFAULT_DELTA,
    progress: bool = False,
) -> FitResult:
    """Fit a scaling law to training runs.

    Parameters
    ----------
    data : path, bytes, file-like or DataFrame, optional
        Runs with ``N`` (parameters), ``D`` (tokens) and ``loss``, plus
        ``aspect_ratio`` or ``n_layers`` and ``d_model`` for shape-aware laws.
        Defaults to the paper's 76 runs.
    law : {"chinchilla", "inference-efficient", "u-shaped"}
        Law family.
    variant : {"tied", "nonequal", "untied"}
        Which exponents are tied (see :mod:`morph.laws`).
    method : {"paper", "robust"}
        ``paper``: curve_fit on raw loss as Bian et al.; ``robust``: Huber on
        log-loss from many starts.
    fit_set : str, boolean array or None
        Column of 0/1 flags (e.g. ``"in_fit_B"``) or mask choosing the rows to
        fit; every row is still evaluated. None fits every row.
    bootstrap : int
        Number of bootstrap refits for confidence intervals (0 for none).
    confidence : float
        Level of the bootstrap intervals.
    seed : int or None
        Seed of the bootstrap resampling.
    delta : float
        Huber threshold of the robust method (log-loss units).
    progress : bool
        Show a progress bar during the bootstrap.

    Returns
    -------
    FitResult

    Raises
    ------
    DataError
        If the table is malformed.
    FitError
        If there are fewer fit points than free parameters or the fit fails.
    """
    if method not in METHODS:
        raise FitError(f"unknown fit method {method!r}; choose one of {', '.join(METHODS)}")
    if bootstrap < 0 or not (0 < confidence < 1):
        raise FitError("bootstrap must be >= 0 and confidence between 0 and 1")
    cls = law_class(law)
    names = free_parameters(law, variant)
    frame = load_runs(data, require_aspect_ratio=cls.needs_aspect_ratio)
    mask = fit_mask(frame, fit_set)
    rows = frame[mask]
    if len(rows) < len(names):
        raise FitError(
            f"{len(rows)} fit point{'s' if len(rows) != 1 else ''} cannot determine the {len(names)} free "
            f"parameters of the {law} law "
            f"({variant}); give at least {len(names)} points"
        )
    N, D, loss = (rows[c].to_numpy(np.float64) for c in ("N", "D", "loss"))
    R = rows["aspect_ratio"].to_numpy(np.float64) if cls.needs_aspect_ratio else None
    notes = design_warnings(N, D, R, law)
    boot, n_failed, conf = None, 0, None
    update, close = _progress_bar(bootstrap, progress, f"bootstrap {law} ({variant})")
    try:
        if method == "paper":
            params, cov, objective, success, message, extra = _paper_fit(law, variant, N, D, R, loss)
            notes += extra
            stderr = dict(zip(names, map(float, np.sqrt(np.clip(np.diag(cov), 0, None))))) if cov is not None else None
            if bootstrap:
                start = [params[n] for n in names]
                boot, n_failed = _bootstrap_paper(law, variant, N, D, R, loss, start, bootstrap, seed, update)
        else:
            model = LogSpaceModel(law, variant, N, D, R, loss)
            with np.errstate(all="ignore"):
                optimum = fit_huber(model, delta=delta)
            params, objective = optimum.params, optimum.objective
            success, message = optimum.converged, optimum.message
            with np.errstate(all="ignore"):
                stderr, cov = _robust_stderr(model, optimum.theta, params)
            if bootstrap:
                with np.errstate(all="ignore"):
                    internal = bootstrap_huber(model, optimum, bootstrap, delta=delta, seed=seed, progress=update)
                boot = np.array([[model.to_params(t)[n] for n in cls.parameter_names()] for t in internal])
    finally:
        close()
    if not success:
        notes.append(f"The optimiser did not report convergence ({message}); treat the parameters with care.")
    notes += _quality_warnings(law, variant, params, N, D, R, loss, method)
    if boot is not None and len(boot):
        tail = (1 - confidence) / 2 * 100
        order = cls.parameter_names()
        conf = {
            n: tuple(map(float, np.percentile(boot[:, order.index(n)], [tail, 100 - tail]))) for n in names
        }
    if n_failed:
        notes.append(f"{n_failed} of {bootstrap} bootstrap refits did not converge and were left out.")
    notes += _parameter_warnings(params, stderr)
    return FitResult(
        law=cls.from_values(params),
        family=law,
        variant=variant,
        method=method,
        free_parameters=names,
        stderr=stderr,
        data=frame,
        fit_mask=mask,
        objective=objective,
        success=success,
        message=message,
        warnings=notes,
        conf_int=conf,  # type: ignore[arg-type]
        confidence=confidence,
        bootstrap_params=boot,
        covariance=cov,
        fit_set=fit_set if isinstance(fit_set, str) else None,
        n_bootstrap_failed=n_failed,
    )
