"""The serving numbers people compare, each usable as the budget.

From one predicted ``generate`` call (batch ``b``, ``O`` output tokens per
sequence):

``latency_s``
    the whole call (seconds);
``ttft_s``
    time to first token: the prefill (seconds);
``ms_per_token``
    decode time per generated token after the first (milliseconds);
``tokens_per_s``
    throughput ``b * O / latency`` (generated tokens per second; a budget is a
    floor, the others are ceilings);
``cost_per_million_tokens``
    ``price_per_gpu_hour / 3600 * latency / (b * O) * 1e6``: what a million
    generated tokens cost on one GPU rented at that price (currency units).

Each is proportional to the call's latency or its inverse, so a latency band of
``x (1 + e)**(+-1)`` is the band of every metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import LatencyError

__all__ = ["SERVING_METRICS", "ServingMetric", "latency_at_budget", "serving_metric", "metric_meets"]


@dataclass(frozen=True)
class ServingMetric:
    """One serving number: its name, unit, which way is better and the budgets worth offering.

    ``budget_range`` (in ``unit``) spans what a person might ask of the shapes
    Morph enumerates, from a fast small model on a fast device to a slow large
    one at a large batch; the dashboard's budget slider covers it.
    """

    name: str
    label: str
    unit: str
    higher_is_better: bool = False
    budget_range: tuple[float, float] = (0.01, 1000.0)

    @property
    def bound(self) -> str:
        """How a budget on this metric bounds it: ``"at least"`` (a floor) or ``"at most"`` (a ceiling)."""
        return "at least" if self.higher_is_better else "at most"


SERVING_METRICS: Mapping[str, ServingMetric] = {
    m.name: m
    for m in (
        ServingMetric("latency_s", "latency of one generate call", "s"),
        ServingMetric("ttft_s", "time to first token", "s", budget_range=(0.001, 100.0)),
        ServingMetric("ms_per_token", "time per output token", "ms", budget_range=(0.1, 10_000.0)),
        ServingMetric("tokens_per_s", "throughput (generated tokens per second)", "tokens/s", higher_is_better=True,
                      budget_range=(0.1, 1e6)),
        ServingMetric("cost_per_million_tokens", "cost per million generated tokens", "per 1M tokens",
                      budget_range=(1e-4, 1e5)),
    )
}
"""The metrics a budget can be set on."""


def _check(name: str, price_per_gpu_hour: float | None) -> None:
    if name not in SERVING_METRICS:
        raise LatencyError(f"unknown budget metric {name!r}; choose one of {', '.join(SERVING_METRICS)}")
    if name == "cost_per_million_tokens" and (
        price_per_gpu_hour is None or not np.isfinite(price_per_gpu_hour) or price_per_gpu_hour <= 0
    ):
        raise LatencyError("the cost per million tokens needs a positive price per GPU-hour")


def serving_metric(
    name: str,
    *,
    latency_s: ArrayLike,
    prefill_s: ArrayLike,
    ms_per_token: ArrayLike,
    batch: int,
    output_tokens: int,
    price_per_gpu_hour: float | None = None,
) -> NDArray[np.float64]:
    """Values of metric ``name`` per shape.

    Raises
    ------
    LatencyError
        For an unknown metric, or a cost without a positive price per GPU-hour.
    """
    _check(name, price_per_gpu_hour)
    latency = np.asarray(latency_s, dtype=np.float64)
    if name == "latency_s":
        return latency
    if name == "ttft_s":
        return np.asarray(prefill_s, dtype=np.float64)
    if name == "ms_per_token":
        return np.asarray(ms_per_token, dtype=np.float64)
    generated = float(batch) * float(output_tokens)
    if name == "tokens_per_s":
        return generated / latency
    return price_per_gpu_hour / 3600.0 * latency / generated * 1e6


def metric_meets(name: str, values: ArrayLike, budget: float) -> NDArray[np.bool_]:
    """Whether each value meets the budget: at most it, or at least it for throughput."""
    array = np.asarray(values, dtype=np.float64)
    return array >= budget if SERVING_METRICS[name].higher_is_better else array <= budget


def latency_at_budget(
    name: str,
    budget: float,
    *,
    batch: int,
    output_tokens: int,
    price_per_gpu_hour: float | None = None,
) -> float | None:
    """The call latency (seconds) at which metric ``name`` equals ``budget``.

    Throughput and cost are functions of the call's latency alone, so a budget
    on either is a latency budget in disguise (``b * O / budget`` seconds for a
    throughput floor). Time to first token and time per output token depend on
    how the call splits into prefill and decode: returns ``None`` for them.

    Raises
    ------
    LatencyError
        For an unknown metric, or a cost without a positive price per GPU-hour.
    """
    _check(name, price_per_gpu_hour)
    generated = float(batch) * float(output_tokens)
    if name == "latency_s":
        return float(budget)
    if name == "tokens_per_s":
        return generated / float(budget)
    if name == "cost_per_million_tokens":
        return float(budget) / 1e6 * generated / (price_per_gpu_hour / 3600.0)
    return None
