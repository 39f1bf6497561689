"""Lifetime cost: training plus serving (after Sardana and Frankle, 2024).

A model that will serve many tokens is worth training smaller and longer, or
shaped for speed. Counting only training compute (Chinchilla) misses that.

- In FLOPs: ``6 N D`` to train plus ``2 N`` per inference token
  (Sardana and Frankle's accounting). FLOPs see model size but not shape.
- In GPU-hours: training FLOPs at a model FLOP utilisation of the hardware's
  peak, plus serving time from the latency model: ``inference_tokens /
  tokens_per_s``. This is where wider, shallower models pay off, because at
  small batch their decode is faster at equal size.

:func:`lifetime_optimal` answers Sardana and Frankle's question for a law: at
a target loss and an expected inference demand, which ``(N, D)`` minimise
total FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from .errors import SelectionError
from .frontier import Evaluation, LawLike, resolve_law

__all__ = ["lifetime_flops", "lifetime_cost", "lifetime_optimal", "LifetimeOptimum"]

FloatArray = NDArray[np.float64]

SECONDS_PER_HOUR = 3600.0


def lifetime_flops(N: ArrayLike, D: ArrayLike, inference_tokens: ArrayLike) -> dict[str, FloatArray]:
    """Training, inference and total FLOPs: ``6 N D``, ``2 N T`` and their sum.

    Parameters
    ----------
    N : array_like
        Parameters.
    D : array_like
        Training tokens.
    inference_tokens : array_like
        Tokens the model will generate or read over its life.
    """
    n = np.asarray(N, dtype=np.float64)
    training = 6.0 * n * np.asarray(D, dtype=np.float64)
    inference = 2.0 * n * np.asarray(inference_tokens, dtype=np.float64)
    return {"training_flops": training, "inference_flops": inference, "total_flops": training + inference}


def lifetime_cost(evaluation: Evaluation, inference_tokens: float, training_mfu: float = 0.4) -> pd.DataFrame:
    """FLOPs and GPU-hours to train and then serve each evaluated candidate.

    Parameters
    ----------
    evaluation : Evaluation
        Candidates with predicted latency (its hardware, batch and output
        length define the serving throughput).
    inference_tokens : float
        Tokens to generate over the model's life.
    training_mfu : float
        Model FLOP utilisation during training (fraction of the hardware's
        dense bf16 peak).

    Returns
    -------
    DataFrame
        The evaluation's columns plus FLOPs, ``tokens_per_s``,
        ``training_gpu_hours``, ``serving_gpu_hours`` and ``total_gpu_hours``.
    """
    if not np.isfinite(inference_tokens) or inference_tokens < 0:
        raise SelectionError("the number of inference tokens must be zero or more")
    if not 0 < training_mfu <= 1:
        raise SelectionError("the training model FLOP utilisation must be in (0, 1]")
    workload = evaluation.workload
    hardware = workload.device
    frame = evaluation.to_frame()
    flops = lifetime_flops(frame["N"], frame["D"], inference_tokens)
    for key, value in flops.items():
        frame[key] = value
    frame["tokens_per_s"] = workload.batch * workload.output_tokens / evaluation.latency_s
    peak = hardware.bf16_tflops * 1e12
    frame["training_gpu_hours"] = flops["training_flops"] / (training_mfu * peak) / SECONDS_PER_HOUR
    frame["serving_gpu_hours"] = inference_tokens / frame["tokens_per_s"] / SECONDS_PER_HOUR
    frame["total_gpu_hours"] = frame["training_gpu_hours"] + frame["serving_gpu_hours"]
    return frame


@dataclass(frozen=True)
class LifetimeOptimum:
    """The ``(N, D)`` reaching a target loss at least lifetime FLOPs.

    Attributes
    ----------
    loss_target : float
    inference_tokens : float
    N, D : float
        Parameters and training tokens at the optimum.
    total_flops, training_flops, inference_flops : float
    chinchilla_N, chinchilla_D, chinchilla_total_flops : float
        The same loss reached at least *training* FLOPs (no inference counted),
        with its lifetime FLOPs for comparison.
    curve : DataFrame
        ``N``, ``D`` and FLOPs along the iso-loss curve, for plotting.
    """

    loss_target: float
    inference_tokens: float
    N: float
    D: float
    training_flops: float
    inference_flops: float
    total_flops: float
    chinchilla_N: float
    chinchilla_D: float
    chinchilla_total_flops: float
    curve: pd.DataFrame

    @property
    def savings(self) -> float:
        """Fraction of lifetime FLOPs saved against the Chinchilla-optimal model of the same loss."""
        return 1.0 - self.total_flops / self.chinchilla_total_flops


def lifetime_optimal(
    law: LawLike,
    loss_target: float,
    inference_tokens: float,
    aspect_ratio: float | None = None,
    n_grid: int = 4001,
) -> LifetimeOptimum:
    """Sardana and Frankle's optimum: least ``6 N D + 2 N T`` subject to ``L(N, D) = loss_target``.

    Along the iso-loss curve ``D(N) = (B / (L / f(R) - E - A / N^alpha))^(1/beta)``
    (``f`` the law's shape factor at ``aspect_ratio``), evaluated on a dense
    logarithmic grid of ``N``.

    Raises
    ------
    SelectionError
        If the target loss is not reachable (at or below the law's floor).
    """
    scaling_law, _ = resolve_law(law)
    factor = float(scaling_law.shape_factor(aspect_ratio if aspect_ratio is not None else 1.0))
    if scaling_law.needs_aspect_ratio and aspect_ratio is None:
        raise SelectionError(f"the {scaling_law.family} law needs an aspect ratio for the lifetime optimum")
    reducible = loss_target / factor - scaling_law.E
    if not np.isfinite(loss_target) or reducible <= 0:
        raise SelectionError(
            f"a loss of {loss_target:.4g} is at or below what this law can reach "
            f"({scaling_law.E * factor:.4g} with unlimited parameters and data); choose a higher target"
        )
    if inference_tokens < 0 or not np.isfinite(inference_tokens):
        raise SelectionError("the number of inference tokens must be zero or more")
    # N must leave room for the data term: A / N^alpha < reducible.
    n_min = (scaling_law.A / reducible) ** (1.0 / scaling_law.alpha) * 1.0001
    N = n_min * np.geomspace(1.0, 1e4, n_grid)
    data_term = reducible - scaling_law.A / N**scaling_law.alpha
    D = (scaling_law.B / data_term) ** (1.0 / scaling_law.beta)
    flops = lifetime_flops(N, D, inference_tokens)
    best = int(np.argmin(flops["total_flops"]))
    chinchilla = int(np.argmin(flops["training_flops"]))
    curve = pd.DataFrame({"N": N, "D": D, **flops})
    return LifetimeOptimum(
        loss_target=float(loss_target),
        inference_tokens=float(inference_tokens),
        N=float(N[best]),
        D=float(D[best]),
        training_flops=float(flops["training_flops"][best]),
        inference_flops=float(flops["inference_flops"][best]),
        total_flops=float(flops["total_flops"][best]),
        chinchilla_N=float(N[chinchilla]),
        chinchilla_D=float(D[chinchilla]),
        chinchilla_total_flops=float(flops["total_flops"][chinchilla]),
        curve=curve,
    )

