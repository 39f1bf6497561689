"""Goodness-of-fit metrics, as the paper computes them and per group.

The paper rounds predictions to 4 decimals before computing MSE and R^2, and
its "test set" is *all* 76 runs, the fit points included. :func:`evaluate`
does the same when asked (``round_decimals=4``); :func:`split_metrics`
reports the fit points, the held-out points and all points separately, so the
two readings are never confused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "Metrics",
    "mse",
    "r2",
    "relative_error",
    "spearman",
    "evaluate",
    "split_metrics",
    "grouped_metrics",
    "residuals_by_aspect_ratio",
    "PAPER_DECIMALS",
]

PAPER_DECIMALS = 4
"""The paper rounds predicted losses to this many decimals before scoring them."""


# A wildly wrong prediction has an infinite squared error: the honest score, not a warning.
_QUIET = dict(over="ignore", invalid="ignore")


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"true and predicted values differ in shape: {y.shape} vs {p.shape}")
    return y, p


def mse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean squared error (loss units squared)."""
    y, p = _pair(y_true, y_pred)
    with np.errstate(**_QUIET):
        return float(np.mean((y - p) ** 2)) if y.size else float("nan")


def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (NaN for fewer than 2 points or constant truth)."""
    y, p = _pair(y_true, y_pred)
    if y.size < 2:
        return float("nan")
    with np.errstate(**_QUIET):
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - p) ** 2)) / total if total > 0 else float("nan")


def relative_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """``|pred - true| / true`` per point (a fraction; multiply by 100 for percent)."""
    y, p = _pair(y_true, y_pred)
    return np.abs(p - y) / np.abs(y)


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman rank correlation of predicted vs true (NaN when undefined: < 2 points or ties everywhere)."""
    y, p = _pair(y_true, y_pred)
    if y.size < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return float("nan")
    # Imported here: scipy.stats takes ~0.5 s to import, which every page of
    # the dashboard would pay at start for a function it never calls.
    from scipy.stats import spearmanr

    return float(spearmanr(y, p).statistic)


@dataclass(frozen=True)
class Metrics:
    """Scores of one set of predictions.

    Attributes
    ----------
    n : int
        Points scored.
    mse, r2 : float
        Mean squared error and coefficient of determination.
    mean_relative_error, max_relative_error : float
        Mean and worst ``|pred - true| / true`` (fractions).
    spearman : float
        Rank correlation of predicted vs true.
    """

    n: int
    mse: float
    r2: float
    mean_relative_error: float
    max_relative_error: float
    spearman: float

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict, NaN as None (for JSON)."""
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(self).items()}


def evaluate(y_true: ArrayLike, y_pred: ArrayLike, round_decimals: int | None = None) -> Metrics:
    """All metrics at once.

    Parameters
    ----------
    y_true, y_pred : array_like
        Observed and predicted losses.
    round_decimals : int, optional
        Round predictions first, as the paper does (``4``).
    """
    y, p = _pair(y_true, y_pred)
    if round_decimals is not None:
        p = np.round(p, round_decimals)
    rel = relative_error(y, p) if y.size else np.array([np.nan])
    return Metrics(
        n=int(y.size),
        mse=mse(y, p),
        r2=r2(y, p),
        mean_relative_error=float(np.mean(rel)),
        max_relative_error=float(np.max(rel)),
        spearman=spearman(y, p),
    )


def split_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, fit_mask: ArrayLike, round_decimals: int | None = PAPER_DECIMALS
) -> dict[str, Metrics | None]:
    """Metrics on all points (the paper's "test"), the fit points and the held-out points.

    Returns
    -------
    dict
        ``{"all": ..., "fit": ..., "heldout": ...}``; ``heldout`` is None when
        every point was fitted.
    """
    y, p = _pair(y_true, y_pred)
    mask = np.asarray(fit_mask, dtype=bool)
    return {
        "all": evaluate(y, p, round_decimals),
        "fit": evaluate(y[mask], p[mask], round_decimals),
        "heldout": evaluate(y[~mask], p[~mask], round_decimals) if (~mask).any() else None,
    }


def grouped_metrics(
    frame: pd.DataFrame,
    y_pred: ArrayLike,
    by: Sequence[str],
    round_decimals: int | None = PAPER_DECIMALS,
) -> pd.DataFrame:
    """Metrics per group of runs (for example per ``size_label`` and ``budget_label``).

    Parameters
    ----------
    frame : DataFrame
        Runs with a ``loss`` column and the grouping columns.
    y_pred : array_like
        Predictions, one per row of ``frame``.
    by : sequence of str
        Grouping columns.

    Returns
    -------
    DataFrame
        One row per group with ``n``, ``mse``, ``r2``, relative errors and ``spearman``.
    """
    pred = np.asarray(y_pred, dtype=np.float64)
    rows = []
    for key, index in frame.groupby(list(by), sort=True).indices.items():
        m = evaluate(frame["loss"].to_numpy()[index], pred[index], round_decimals)
        keys = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, keys)), **asdict(m)})
    return pd.DataFrame(rows)


def residuals_by_aspect_ratio(
    runs: pd.DataFrame,
    residuals: dict[str, ArrayLike],
    edges: Sequence[float] = (64.0, 128.0),
    by: str = "budget_label",
) -> pd.DataFrame:
    """Mean residual (actual - predicted loss, nats/token) per band of aspect ratio and per group of runs.

    Where a law's shape factor is wrong, its residuals lean one way in one band of
    ``R = d_model / n_layers``: a monotone factor under-predicts the loss of deep,
    narrow runs (small R), for instance.

    Parameters
    ----------
    runs : DataFrame
        With ``aspect_ratio`` and the column ``by`` (default: the training budget, ``20N`` ...).
    residuals : dict of str to array
        One array per law, aligned with ``runs``.
    edges : sequence of float
        Band edges in R: bands ``R < e0``, ``e0 <= R < e1``, ..., ``R >= e_last``.
    by : str
        Column that splits the runs into the table's column groups.

    Returns
    -------
    DataFrame
        Rows: the bands (empty bands left out); columns: (law, group).
    """
    edges = [float(e) for e in edges]
    labels = [f"R < {edges[0]:g}"]
    labels += [f"{low:g} <= R < {high:g}" for low, high in zip(edges[:-1], edges[1:])]
    labels += [f"R >= {edges[-1]:g}"]
    band = pd.cut(runs["aspect_ratio"], [0.0, *edges, np.inf], right=False, labels=labels)
    frame = pd.DataFrame({name: np.asarray(values, dtype=np.float64) for name, values in residuals.items()},
                         index=runs.index)
    return frame.groupby([band, runs[by]], observed=True).mean().unstack(by)
