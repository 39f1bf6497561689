"""Speed of the decision layer over 100,000+ candidate shapes (target: under 50 ms).

What a dashboard update adds after the selection (``morph.decision.assess``):
latency bands and the probability of meeting the budget for every candidate,
memory feasibility, fit-range checks, and the loss draws (200 bootstrap
refits) for the 200 best within the budget plus the frontier, giving loss
bands, ties and the probability of being best. The bootstrap itself is fitted
once per process and not timed here.

Run: ``python benchmarks/bench_decision.py``
"""

from __future__ import annotations

import platform
import statistics
import time

import numpy as np

import morph
from morph.decision import assess, fit_range, preset_fit
from morph.frontier import candidates_from_range, evaluate_candidates, select


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    print(f"machine: {platform.machine()}, python {platform.python_version()}, numpy {np.__version__}, "
          f"morph {morph.__version__}")
    start = time.perf_counter()
    fit_b = preset_fit("bian2025", bootstrap=200)
    print(f"  bian2025 re-derived on fit set B with 200 bootstrap refits: {time.perf_counter() - start:.2f} s (once)")
    runs = fit_range("bian2025")
    for params_max in (2e11, 1e12):
        candidates = candidates_from_range(1e8, params_max, 2e11, d_model_max=16384, n_layers_max=1024)
        selection = select(evaluate_candidates(candidates, "bian2025"), 5.0, 5)
        assess(selection, runs, fit_result=fit_b)
        ms = _median_ms(lambda: assess(selection, runs, fit_result=fit_b), repeat=20)
        print(f"  {len(candidates):,} shapes (1e+08 to {params_max:.0e} parameters): assess {ms:.1f} ms, median of 20 "
              f"(target < 50 ms); frontier {selection.frontier_index.size}, "
              f"{int((~selection.evaluation.feasible).sum()):,} infeasible")


if __name__ == "__main__":
    main()
