"""Selection and the accuracy-latency frontier.

The paper's decision (section 7): given a parameter budget ``N_C``, a token
budget ``D_C`` and a latency budget ``T_C``,

1. enumerate candidate shapes (``n_layers``, ``d_model``) near ``N_C``;
2. predict each candidate's loss with a fitted law at ``D_C`` and its latency
   on the target hardware;
3. drop the candidates slower than ``T_C``, rank the rest by predicted loss
   and keep the top ``k``;
4. train those ``k`` and keep the best downstream (the law ranks; it does not
   promise accuracy).

This module does steps 1-3 for any number of candidates in one vectorised
pass, and adds the (latency, loss) Pareto frontier and a compute view: at a
fixed FLOP budget, what a latency budget costs in loss against the
unconstrained best model.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .data import read_table, to_numeric
from .errors import SelectionError, ShapeError
from .laws import COMPUTE_SPAN, REFERENCE_ASPECT_RATIO, ScalingLaw, preset
from .latency import Workload, predict_latency
from .latency.memory import serving_memory
from .latency.serving import SERVING_METRICS, metric_meets, serving_metric
from .latency.workload import as_workload
from .shapes import aspect_ratio, default_n_heads, enumerate_shapes, parameter_count

if TYPE_CHECKING:  # fitting needs scipy.optimize, which a frontier of presets does not
    from .fitting import FitResult

__all__ = [
    "Candidates",
    "Evaluation",
    "Selection",
    "ComputeTradeoff",
    "candidates_from_range",
    "candidates_from_flops",
    "candidates_from_table",
    "evaluate_candidates",
    "pareto_frontier",
    "price_of_speed",
    "select",
    "speedup_reference",
    "BASELINE_ASPECT_RATIO",
    "compute_tradeoff",
    "resolve_law",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
LawLike = Union[str, ScalingLaw, "FitResult"]


def resolve_law(law: LawLike) -> tuple[ScalingLaw, FitResult | None]:
    """The law to predict with, and the fit behind it when there is one (for bands)."""
    if isinstance(law, ScalingLaw):
        return law, None
    if isinstance(law, str):
        return preset(law), None
    from .fitting import FitResult

    if isinstance(law, FitResult):
        return law.law, law
    return preset(law), None


@dataclass(frozen=True)
class Candidates:
    """Shapes to choose from, each with its training tokens.

    Attributes
    ----------
    n_layers, d_model, n_heads : ndarray of int64
        Depth (blocks), width (features), query heads.
    N : ndarray of int64
        Total parameters.
    D : ndarray of float64
        Training tokens for each candidate.
    names : ndarray of str or None
        Names given by a table (``1B_v8``); None to call each shape
        ``"<n_layers>x<d_model>"`` (see :attr:`label`).
    """

    n_layers: IntArray
    d_model: IntArray
    n_heads: IntArray
    N: IntArray
    D: FloatArray
    names: NDArray[np.str_] | None = None

    def __len__(self) -> int:
        return int(self.n_layers.size)

    @functools.cached_property
    def label(self) -> NDArray[np.str_]:
        """A name per candidate: the table's, or ``"12x3072"``.

        Formatted on first use: for 100,000 enumerated shapes the strings cost
        more than a whole evaluation, and most views need only a few of them
        (:meth:`labels`).
        """
        return self.labels(np.arange(len(self)))

    def labels(self, index: ArrayLike) -> NDArray[np.str_]:
        """Names of the candidates at ``index`` only."""
        i = np.asarray(index)
        if self.names is not None:
            return self.names[i]
        pairs = zip(np.atleast_1d(self.n_layers[i]).tolist(), np.atleast_1d(self.d_model[i]).tolist())
        return np.array([f"{layers}x{width}" for layers, width in pairs], dtype=str).reshape(np.shape(i))

    @property
    def aspect_ratio(self) -> FloatArray:
        """``d_model / n_layers``."""
        return aspect_ratio(self.n_layers, self.d_model)

    @property
    def training_flops(self) -> FloatArray:
        """``6 N D`` per candidate (FLOPs)."""
        return 6.0 * self.N.astype(np.float64) * self.D

    def take(self, index: ArrayLike) -> "Candidates":
        """The candidates at ``index`` (an integer or boolean array)."""
        i = np.asarray(index)
        names = None if self.names is None else self.names[i]
        return Candidates(self.n_layers[i], self.d_model[i], self.n_heads[i], self.N[i], self.D[i], names)

    def with_tokens(self, tokens: ArrayLike) -> "Candidates":
        """The same shapes trained on ``tokens`` (one number, or one per candidate)."""
        D = np.broadcast_to(np.asarray(tokens, dtype=np.float64), self.N.shape).copy()
        if np.any(~np.isfinite(D)) or np.any(D <= 0):
            raise SelectionError("the training tokens must be a positive, finite number")
        return Candidates(self.n_layers, self.d_model, self.n_heads, self.N, D, self.names)

    def with_training_flops(self, flops: float) -> "Candidates":
        """The same shapes at a fixed training budget: each trained on ``D = flops / (6 N)`` tokens."""
        if not np.isfinite(flops) or flops <= 0:
            raise SelectionError("the compute budget must be a positive, finite number of FLOPs")
        return self.with_tokens(flops / (6.0 * self.N.astype(np.float64)))

    @classmethod
    def from_arrays(
        cls,
        n_layers: ArrayLike,
        d_model: ArrayLike,
        tokens: ArrayLike,
        n_heads: ArrayLike | None = None,
        label: Sequence[str] | None = None,
    ) -> "Candidates":
        """Candidates from parallel arrays; ``N`` is computed with the paper's formula."""
        layers = np.atleast_1d(np.asarray(n_layers, dtype=np.int64))
        width = np.atleast_1d(np.asarray(d_model, dtype=np.int64))
        if np.any(layers < 1) or np.any(width < 1):
            raise ShapeError("n_layers and d_model must be positive whole numbers")
        heads = default_n_heads(width) if n_heads is None else np.atleast_1d(np.asarray(n_heads, dtype=np.int64))
        heads = np.broadcast_to(heads, layers.shape).astype(np.int64)
        if np.any(heads < 1) or np.any(width % heads):
            i = int(np.flatnonzero((heads < 1) | (width % np.maximum(heads, 1) != 0))[0])
            raise ShapeError(f"{heads[i]} heads do not divide d_model {width[i]} (candidate {i + 1})")
        D = np.broadcast_to(np.asarray(tokens, dtype=np.float64), layers.shape).copy()
        if np.any(~np.isfinite(D)) or np.any(D <= 0):
            raise SelectionError("the training tokens must be a positive, finite number")
        if label is not None and len(label) != layers.size:
            raise SelectionError(f"{len(label)} names for {layers.size} candidates")
        names = None if label is None else np.asarray(label, dtype=str)
        return cls(layers, width, heads, parameter_count(layers, width, heads), D, names)


def candidates_from_range(params_min: float, params_max: float, tokens: float, **enumerate_options: Any) -> Candidates:
    """Every valid shape with ``params_min <= N <= params_max``, all trained on ``tokens``.

    ``enumerate_options`` go to :func:`morph.shapes.enumerate_shapes` (width
    grid, depth limit, heads).
    """
    grid = enumerate_shapes(params_min, params_max, **enumerate_options)
    if len(grid) == 0:
        raise SelectionError(
            f"no shape has between {params_min:.3g} and {params_max:.3g} parameters on this width grid; "
            "widen the parameter range"
        )
    return Candidates.from_arrays(grid.n_layers, grid.d_model, tokens, grid.n_heads)


def candidates_from_flops(
    flops: float, params_min: float | None = None, params_max: float | None = None, *, law: LawLike = "bian2025",
    **enumerate_options: Any,
) -> Candidates:
    """Shapes for a training budget of ``flops``: each trained on ``D = flops / (6 N)`` tokens.

    Without a parameter range, the range spans :data:`COMPUTE_SPAN` either
    side of the law's compute-optimal ``N``.
    """
    if not np.isfinite(flops) or flops <= 0:
        raise SelectionError("the compute budget must be a positive, finite number of FLOPs")
    if params_min is None or params_max is None:
        optimum = resolve_law(law)[0].compute_optimal(flops, REFERENCE_ASPECT_RATIO)
        params_min = float(optimum.N) / COMPUTE_SPAN if params_min is None else params_min
        params_max = float(optimum.N) * COMPUTE_SPAN if params_max is None else params_max
    grid = enumerate_shapes(params_min, params_max, **enumerate_options)
    if len(grid) == 0:
        raise SelectionError(f"no shape fits between {params_min:.3g} and {params_max:.3g} parameters")
    return Candidates.from_arrays(grid.n_layers, grid.d_model, 1.0, grid.n_heads).with_training_flops(flops)


def candidates_from_table(source: str | os.PathLike | bytes | pd.DataFrame, tokens: float | None = None) -> Candidates:
    """Candidates from a table with ``n_layers`` and ``d_model`` (``n_heads``, ``D``, a name optional).

    Parameters
    ----------
    source : path, bytes or DataFrame
        E.g. ``data/morph_1b_candidates.csv``.
    tokens : float, optional
        Training tokens for every candidate; required unless the table has ``D``.
    """
    frame = read_table(source)
    label = "the candidates table"
    missing = [c for c in ("n_layers", "d_model") if c not in frame.columns]
    if missing:
        raise SelectionError(f"{label} is missing the column(s) {', '.join(missing)}")
    layers = to_numeric(frame["n_layers"], "n_layers", label)
    width = to_numeric(frame["d_model"], "d_model", label)
    if np.any(layers % 1) or np.any(width % 1):
        raise ShapeError("n_layers and d_model must be whole numbers")
    heads = to_numeric(frame["n_heads"], "n_heads", label).astype(np.int64) if "n_heads" in frame else None
    if tokens is None:
        if "D" not in frame.columns:
            raise SelectionError(f"{label} has no D column; give the training tokens")
        tokens_arr: ArrayLike = to_numeric(frame["D"], "D", label)
    else:
        tokens_arr = tokens
    names = next((frame[c].astype(str).tolist() for c in ("candidate", "name", "label", "model") if c in frame), None)
    return Candidates.from_arrays(layers.astype(np.int64), width.astype(np.int64), tokens_arr, heads, names)


@dataclass(frozen=True)
class Evaluation:
    """Predicted loss and latency of every candidate.

    Attributes
    ----------
    candidates : Candidates
    loss : ndarray
        Predicted loss at each candidate's ``N``, ``D`` and aspect ratio.
    latency_s : ndarray
        Predicted end-to-end generation time (seconds).
    ms_per_token : ndarray
        Predicted decode time per generated token (milliseconds).
    roofline_s : ndarray
        Roofline lower bound of the same call (seconds).
    workload : Workload
        Hardware, calibration, batch, tokens and dtype of the latency predictions.
    law : str
        The law used: a preset name, or a fitted or given law's family.
    fit : FitResult, optional
        The fit behind the law, which gives loss bands.
    memory_gb : ndarray, optional
        Weights plus key/value cache of each candidate under the workload (GB);
        None: not checked, every candidate counts as fitting.
    prefill_s : ndarray, optional
        Predicted time to first token (seconds).
    """

    candidates: Candidates
    loss: FloatArray
    latency_s: FloatArray
    ms_per_token: FloatArray
    roofline_s: FloatArray
    workload: Workload = field(default_factory=Workload)
    law: str = ""
    fit: FitResult | None = None
    memory_gb: FloatArray | None = None
    prefill_s: FloatArray | None = None

    def metric(self, name: str, price_per_gpu_hour: float | None = None) -> FloatArray:
        """Values of a serving metric per candidate (see :mod:`morph.latency.serving`)."""
        prefill = self.prefill_s if self.prefill_s is not None else np.full(len(self), np.nan)
        return serving_metric(name, latency_s=self.latency_s, prefill_s=prefill, ms_per_token=self.ms_per_token,
                              batch=self.workload.batch, output_tokens=self.workload.output_tokens,
                              price_per_gpu_hour=price_per_gpu_hour)

    @functools.cached_property
    def fits_memory(self) -> NDArray[np.bool_]:
        """Whether each candidate's weights and cache fit in the device's memory."""
        if self.memory_gb is None:
            return np.ones(len(self), dtype=bool)
        return self.memory_gb <= self.workload.device.memory_gb

    @functools.cached_property
    def loss_valid(self) -> NDArray[np.bool_]:
        """Whether the law predicts a finite, positive loss (one used far outside its data may not)."""
        return np.isfinite(self.loss) & (self.loss > 0)

    @functools.cached_property
    def feasible(self) -> NDArray[np.bool_]:
        """Whether each candidate can be chosen: it fits in memory and the law predicts a positive loss for it."""
        return self.fits_memory & self.loss_valid

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def settings(self) -> dict[str, Any]:
        """JSON-ready: the law and the workload's settings (hardware and calibration by name)."""
        return {"law": self.law, **self.workload.to_dict()}

    def loss_band(self, index: ArrayLike, level: float = 0.95) -> tuple[FloatArray, FloatArray] | None:
        """Confidence band of predicted loss for some candidates (None without a fit).

        Computed on demand for a subset: a band over bootstrap draws costs one
        prediction per draw.
        """
        if self.fit is None:
            return None
        c = self.candidates.take(index)
        return self.fit.predict_interval(c.N, c.D, c.aspect_ratio, level=level)

    def to_frame(self, index: ArrayLike | None = None) -> pd.DataFrame:
        """One row per candidate (or per ``index``), with shape, N, D, loss and latency columns."""
        i = np.arange(len(self)) if index is None else np.asarray(index)
        c = self.candidates.take(i)
        return pd.DataFrame(
            {
                "label": c.label,
                "n_layers": c.n_layers,
                "d_model": c.d_model,
                "n_heads": c.n_heads,
                "aspect_ratio": c.aspect_ratio,
                "N": c.N,
                "D": c.D,
                "loss": self.loss[i],
                "latency_s": self.latency_s[i],
                "ms_per_token": self.ms_per_token[i],
                "roofline_s": self.roofline_s[i],
            }
        )


def evaluate_candidates(
    candidates: Candidates,
    law: LawLike = "bian2025",
    *,
    workload: Workload | None = None,
    **overrides: Any,
) -> Evaluation:
    """Predicted loss and latency for all candidates in one vectorised pass.

    Parameters
    ----------
    candidates : Candidates
    law : preset name, ScalingLaw or FitResult
        The loss model (a fit also gives confidence bands).
    workload : Workload, optional
        Where and how the candidates generate (default :class:`~morph.latency.Workload`).
    **overrides
        ``hardware``, ``calibration``, ``batch``, ``input_tokens``, ``output_tokens``
        or ``dtype``: change one setting of ``workload``.
    """
    serving = as_workload(workload, **overrides)
    if len(candidates) == 0:
        raise SelectionError("there are no candidates to evaluate; widen the parameter range or the shape grid")
    scaling_law, fit = resolve_law(law)
    loss = scaling_law.predict(candidates.N.astype(np.float64), candidates.D, candidates.aspect_ratio)
    timing = predict_latency(candidates.n_layers, candidates.d_model, candidates.n_heads, workload=serving, band=False)
    memory = serving_memory(candidates.n_layers, candidates.d_model, candidates.n_heads, workload=serving)
    return Evaluation(
        candidates=candidates,
        loss=np.asarray(loss, dtype=np.float64),
        latency_s=np.asarray(timing.latency_s, dtype=np.float64),
        ms_per_token=np.asarray(timing.ms_per_token, dtype=np.float64),
        roofline_s=np.asarray(timing.roofline_s, dtype=np.float64),
        workload=serving,
        law=law if isinstance(law, str) else scaling_law.family,
        fit=fit,
        memory_gb=memory.memory_gb,
        prefill_s=np.asarray(timing.prefill_s, dtype=np.float64),
    )


def pareto_frontier(latency: ArrayLike, loss: ArrayLike) -> IntArray:
    """Indices of the non-dominated points of (latency, loss), in order of latency.

    A point is dominated when another is at least as fast and at least as
    good and strictly better in one of the two. Exact duplicates appear once.
    Sorting by latency (ties by loss) and keeping the points that beat the
    best loss of every faster point finds them all; above a few thousand
    points, a cheap exact pre-filter (:func:`_not_dominated_by_sample`)
    removes most of them before that sort.
    """
    t = np.asarray(latency, dtype=np.float64)
    y = np.asarray(loss, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError("latency and loss must be 1-D arrays of the same length")
    if t.size <= _PARETO_SAMPLE:
        return _sorted_frontier(t, y)
    survivors = np.flatnonzero(_not_dominated_by_sample(t, y))
    return survivors[_sorted_frontier(t[survivors], y[survivors])]


#: Points above which the frontier is pre-filtered with the frontier of a sample of this size.
_PARETO_SAMPLE = 2048


def _sorted_frontier(t: FloatArray, y: FloatArray) -> IntArray:
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((y, t))
    ys = y[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(ys)[:-1]])
    return order[ys < best_before].astype(np.int64)


def _not_dominated_by_sample(t: FloatArray, y: FloatArray) -> NDArray[np.bool_]:
    """False for points strictly dominated by the frontier of an evenly spaced sample.

    Every sample point is a real candidate, so a point it dominates is off the
    frontier: the filter is exact, never approximate. Along the sample's
    frontier loss falls as latency grows, so the only sample point that can
    dominate a candidate is the slowest one no slower than it (one
    ``searchsorted`` for all candidates).
    """
    sample = np.linspace(0, t.size - 1, _PARETO_SAMPLE).astype(np.int64)
    front = sample[_sorted_frontier(t[sample], y[sample])]
    front_t, front_y = t[front], y[front]
    j = np.searchsorted(front_t, t, side="right") - 1
    has = j >= 0
    j = np.where(has, j, 0)
    dominated = has & (front_y[j] <= y) & ((front_t[j] < t) | (front_y[j] < y))
    return ~dominated


@dataclass(frozen=True)
class Selection:
    """The paper's selection: candidates within the latency budget ranked by predicted loss.

    Attributes
    ----------
    selected : DataFrame
        The top ``k``, best first, with ``rank`` and ``speedup`` (latency of the
        baseline shape, :func:`speedup_reference`, divided by each one's).
    frontier : DataFrame
        The (latency, loss) Pareto frontier of all candidates, fastest first.
    evaluation : Evaluation
    latency_budget_s : float
        The budget ``T_C``: seconds of latency, or the unit of ``budget_metric``.
    top_k : int
    selected_index, frontier_index : ndarray
        Positions of the selected and frontier candidates in ``evaluation``.
    budget_metric : str
        The serving metric the budget is set on (:data:`morph.latency.serving.SERVING_METRICS`).
    price_per_gpu_hour : float, optional
        Price behind a cost budget.
    """

    selected: pd.DataFrame
    evaluation: Evaluation
    latency_budget_s: float
    top_k: int
    selected_index: IntArray
    frontier_index: IntArray
    budget_metric: str = "latency_s"
    price_per_gpu_hour: float | None = None

    @property
    def budget_values(self) -> FloatArray:
        """Each candidate's value of the budget metric."""
        return self.evaluation.metric(self.budget_metric, self.price_per_gpu_hour)

    def _miss(self, value: float) -> str:
        metric = SERVING_METRICS[self.budget_metric]
        name = "latency" if metric.name == "latency_s" else metric.label
        verb = "is below" if metric.higher_is_better else "exceeds"
        unit = f" {metric.unit}"
        return f"{name} {value:.3g}{unit} {verb} the {self.latency_budget_s:.3g}{unit} budget"

    @property
    def latency_target(self) -> float:
        """Former name of :attr:`latency_budget_s` (seconds); kept so existing code keeps working."""
        return self.latency_budget_s

    @functools.cached_property
    def frontier(self) -> pd.DataFrame:
        """The (latency, loss) Pareto frontier as a table, fastest first (built on first use)."""
        return self.evaluation.to_frame(self.frontier_index).reset_index(drop=True)

    @functools.cached_property
    def dropped(self) -> pd.DataFrame:
        """Every candidate not selected, with the ``reason`` it was dropped.

        Built on first use: with 100,000 candidates the table costs more than
        the whole selection, and a slider never needs it.
        """
        values, loss = self.budget_values, self.evaluation.loss
        feasible = self.evaluation.feasible
        fits = metric_meets(self.budget_metric, values, self.latency_budget_s) & feasible
        within = np.flatnonzero(fits)
        ranked = within[np.argsort(loss[within], kind="stable")]
        rank_of = np.zeros(len(self.evaluation), dtype=np.int64)
        rank_of[ranked] = np.arange(1, ranked.size + 1)
        index = np.setdiff1d(np.arange(len(self.evaluation)), self.selected_index)
        frame = self.evaluation.to_frame(index)
        capacity = self.evaluation.workload.device.memory_gb
        memory = self.evaluation.memory_gb
        valid = self.evaluation.loss_valid
        frame["reason"] = [
            f"the law predicts a non-positive loss ({loss[i]:.3g}): it is used outside the range it holds"
            if not valid[i]
            else f"needs {memory[i]:.3g} GB of memory (weights plus KV cache); the device has {capacity:g} GB"
            if not feasible[i]
            else self._miss(values[i])
            if not fits[i]
            else f"ranked {rank_of[i]} by predicted loss among {ranked.size} within budget; top {self.top_k} kept"
            for i in index
        ]
        return frame.reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``selected``, ``frontier`` and ``dropped`` as lists of records."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                for row in frame.to_dict(orient="records")
            ]

        return {
            "latency_budget_s": self.latency_budget_s if self.budget_metric == "latency_s" else None,  # seconds only
            "budget": self.latency_budget_s,
            "budget_metric": self.budget_metric,
            "budget_unit": SERVING_METRICS[self.budget_metric].unit,
            "top_k": self.top_k,
            "settings": self.evaluation.settings,
            "n_candidates": len(self.evaluation),
            "selected": records(self.selected),
            "frontier": records(self.frontier),
            "dropped": records(self.dropped),
        }


def select(
    evaluation: Evaluation,
    latency_budget_s: float | None = None,
    top_k: int = 3,
    band_level: float = 0.95,
    *,
    latency_target: float | None = None,
    budget_metric: str = "latency_s",
    price_per_gpu_hour: float | None = None,
) -> Selection:
    """Drop candidates over the latency budget, rank the rest by predicted loss, keep the top ``k``.

    Parameters
    ----------
    evaluation : Evaluation
    latency_budget_s : float
        Latency budget ``T_C`` (seconds) for the whole generation call.
    latency_target : float, optional
        Former name of ``latency_budget_s``, still accepted.
    top_k : int
        How many candidates to keep.
    band_level : float
        Level of the loss band shown for the kept candidates (when the law is a fit).
    budget_metric : str
        What the budget limits: ``latency_s`` (default), ``ttft_s``,
        ``ms_per_token``, ``cost_per_million_tokens`` (ceilings) or
        ``tokens_per_s`` (a floor); see :mod:`morph.latency.serving`.
    price_per_gpu_hour : float, optional
        Price of one GPU-hour, for a cost budget.

    Raises
    ------
    SelectionError
        If the budget is not a positive number, no candidate fits in memory
        or none meets the budget; the message says how far the closest is.
    """
    if latency_budget_s is None:
        latency_budget_s = latency_target
    elif latency_target is not None:
        raise SelectionError("give the latency budget once (latency_budget_s; latency_target is its former name)")
    if latency_budget_s is None or not np.isfinite(latency_budget_s) or latency_budget_s <= 0:
        raise SelectionError("the latency budget must be a positive number of seconds")
    if top_k < 1:
        raise SelectionError("top-k must be at least 1")
    latency, loss = evaluation.latency_s, evaluation.loss
    values = evaluation.metric(budget_metric, price_per_gpu_hour)
    if not evaluation.loss_valid.any():
        raise SelectionError(
            f"the law predicts a non-positive loss for every candidate (at best {np.nanmax(loss):.3g}): it is used "
            "far outside the range of its fit; choose another law or candidates nearer its runs"
        )
    if not evaluation.fits_memory.any():
        needs = float(np.min(evaluation.memory_gb))
        raise SelectionError(
            f"no candidate fits in the {evaluation.workload.hardware_name}'s {evaluation.workload.device.memory_gb:g} "
            f"GB: the smallest needs {needs:.3g} GB for its weights and KV cache. Lower the batch or the prompt and "
            "output tokens, or choose a device with more memory"
        )
    within = np.flatnonzero(metric_meets(budget_metric, values, latency_budget_s) & evaluation.feasible)
    if within.size == 0 and budget_metric != "latency_s":
        metric = SERVING_METRICS[budget_metric]
        closest = int(np.argmax(values) if metric.higher_is_better else np.argmin(values))
        raise SelectionError(
            f"no candidate meets the {latency_budget_s:.3g} {metric.unit} budget on {metric.label}: the closest, "
            f"{evaluation.candidates.labels(closest)}, reaches {values[closest]:.3g} {metric.unit}"
        )
    if within.size == 0:
        fastest = int(np.argmin(latency))
        raise SelectionError(
            f"no candidate meets the {latency_budget_s:.3g} s latency budget: the fastest, "
            f"{evaluation.candidates.labels(fastest)}, takes {latency[fastest]:.3g} s. Relax the budget to at "
            f"least {latency[fastest]:.3g} s, or allow smaller or shallower models, fewer output tokens or "
            "faster hardware"
        )
    # Only the k best are needed in order: a partial sort keeps this O(n).
    k = min(top_k, within.size)
    best = within[np.argpartition(loss[within], k - 1)[:k]] if within.size > k else within
    chosen = best[np.lexsort((best, loss[best]))]
    frontier = pareto_frontier(latency, np.where(evaluation.feasible, loss, np.inf))  # of shapes one can choose
    reference = speedup_reference(evaluation, int(chosen[0]))
    selected = evaluation.to_frame(chosen)
    selected.insert(0, "rank", np.arange(1, len(chosen) + 1))
    selected["speedup"] = latency[reference] / latency[chosen]
    band = evaluation.loss_band(chosen, band_level)
    if band is not None:
        selected["loss_low"], selected["loss_high"] = band
    return Selection(
        selected=selected.reset_index(drop=True),
        evaluation=evaluation,
        latency_budget_s=float(latency_budget_s),
        top_k=int(top_k),
        selected_index=chosen.astype(np.int64),
        frontier_index=frontier,
        budget_metric=budget_metric,
        price_per_gpu_hour=price_per_gpu_hour,
    )


BASELINE_ASPECT_RATIO = 2048 / 24
"""Aspect ratio of the conventional 1B shape the paper compares against (24 layers x 2048, Open-LM-1B)."""


def speedup_reference(evaluation: Evaluation, index: int, size_ratio: float = 1.5) -> int:
    """The baseline a speed-up is measured against: a conventional shape of the same size.

    Among the candidates within a factor ``size_ratio`` of candidate ``index``'s
    parameter count, the one whose aspect ratio is nearest (in log scale) to
    :data:`BASELINE_ASPECT_RATIO`, the 24 x 2048 shape of the open 1B models; the
    slower one on a tie. Against the deepest candidate instead, a grid of every
    shape would measure speed-ups against a 256-layer model.

    Parameters
    ----------
    evaluation : Evaluation
    index : int
        The candidate being compared (usually the top pick).
    size_ratio : float
        How far in parameters a shape may be from it and still count as the same size.

    Returns
    -------
    int
        Index of the reference candidate (``index`` itself when it is the only one of its size).
    """
    N = evaluation.candidates.N.astype(np.float64)
    near = np.flatnonzero((N >= N[index] / size_ratio) & (N <= N[index] * size_ratio))
    distance = np.abs(np.log(evaluation.candidates.aspect_ratio[near] / BASELINE_ASPECT_RATIO))
    # lexsort: last key first; nearest aspect ratio, then the slowest.
    order = np.lexsort((-evaluation.latency_s[near], distance))
    return int(near[order[0]])


def price_of_speed(evaluation: Evaluation, speedups: Sequence[float] = (2.0,)) -> pd.DataFrame:
    """What faster models cost in loss, among evaluated candidates.

    For each speed-up factor ``s``: the candidate of least predicted loss
    among those at least ``s`` times faster than the best candidate (the one
    of least predicted loss), and its loss penalty against it.

    Parameters
    ----------
    evaluation : Evaluation
    speedups : sequence of float
        Factors (1 is the best candidate itself).

    Returns
    -------
    DataFrame
        One row per factor: ``speedup``, ``index`` (of the candidate), ``label``, ``N``, ``D``, ``loss``,
        ``latency_s``, ``loss_penalty`` (absolute) and ``relative_penalty``
        (fraction of the best loss); NaN (label None) where no candidate is
        that much faster.
    """
    best = int(np.argmin(evaluation.loss))
    rows = []
    for s in speedups:
        allowed = np.flatnonzero(evaluation.latency_s <= evaluation.latency_s[best] / s)
        if allowed.size == 0:
            rows.append({"speedup": s, "index": -1, "label": None, "loss": np.nan, "latency_s": np.nan,
                         "loss_penalty": np.nan, "relative_penalty": np.nan})
            continue
        pick = allowed[np.argmin(evaluation.loss[allowed])]
        rows.append({
            "speedup": s,
            "index": int(pick),
            "label": str(evaluation.candidates.labels(pick)),
            "N": int(evaluation.candidates.N[pick]),
            "D": float(evaluation.candidates.D[pick]),
            "loss": float(evaluation.loss[pick]),
            "latency_s": float(evaluation.latency_s[pick]),
            "loss_penalty": float(evaluation.loss[pick] - evaluation.loss[best]),
            "relative_penalty": float(evaluation.loss[pick] / evaluation.loss[best] - 1),
        })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ComputeTradeoff:
    """What faster models cost in loss at a fixed training budget.

    Attributes
    ----------
    flops : float
        Training budget (FLOPs).
    best : Series
        The candidate of least predicted loss (the unconstrained optimum on the shape grid).
    table : DataFrame
        Per speed-up factor: the best candidate at least that much faster than
        ``best``, its loss and the loss penalty (absolute and relative).
    evaluation : Evaluation
    frontier_index : ndarray
    """

    flops: float
    best: pd.Series
    table: pd.DataFrame
    evaluation: Evaluation
    frontier_index: IntArray

    def sentence(self, speedup: float = 2.0) -> str:
        """E.g. "a 2x faster model costs +0.012 in loss (+0.41%) at 1e+21 FLOPs"."""
        row = self.table.loc[np.isclose(self.table["speedup"], speedup)]
        if row.empty or not np.isfinite(row["loss_penalty"].iloc[0]):
            return f"no candidate is {speedup:g}x faster than the best model at {self.flops:.3g} FLOPs"
        r = row.iloc[0]
        return (
            f"a {speedup:g}x faster model ({r['label']}) costs {r['loss_penalty']:+.4f} in loss "
            f"({r['relative_penalty'] * 100:+.2f}%) at {self.flops:.3g} training FLOPs"
        )


def compute_tradeoff(
    flops: float,
    law: LawLike = "bian2025",
    speedups: Sequence[float] = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0),
    *,
    params_min: float | None = None,
    params_max: float | None = None,
    enumerate_options: dict[str, Any] | None = None,
    workload: Workload | None = None,
    **overrides: Any,
) -> ComputeTradeoff:
    """The compute view: at ``flops``, the frontier over (N, D = flops / 6N, shape) and the price of speed.

    Parameters
    ----------
    flops : float
        Training budget (FLOPs).
    law : preset name, ScalingLaw or FitResult
    speedups : sequence of float
        Speed-up factors over the unconstrained best model to price.
    params_min, params_max : float, optional
        Parameter range (default: a factor of 8 around the compute-optimal N).
    enumerate_options : dict, optional
        Width grid and depth limits for the shape enumeration.
    workload : Workload, optional
        Where and how the candidates generate (default :class:`~morph.latency.Workload`).
    **overrides
        Change one setting of ``workload`` (``hardware``, ``batch``, ...).
    """
    candidates = candidates_from_flops(flops, params_min, params_max, law=law, **(enumerate_options or {}))
    evaluation = evaluate_candidates(candidates, law, workload=workload, **overrides)
    best = int(np.argmin(evaluation.loss))
    return ComputeTradeoff(
        flops=float(flops),
        best=evaluation.to_frame([best]).iloc[0],
        table=price_of_speed(evaluation, speedups),
        evaluation=evaluation,
        frontier_index=pareto_frontier(evaluation.latency_s, evaluation.loss),
    )
