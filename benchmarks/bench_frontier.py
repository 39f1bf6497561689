"""Speed of one frontier evaluation over 100,000+ candidate shapes (target: under 20 ms).

One evaluation is what a dashboard slider triggers: predicted loss and latency
for every candidate, the (latency, loss) Pareto frontier, and the top-k under
the latency budget. The candidate enumeration is timed separately (it runs
only when the parameter range changes).

Run: ``python benchmarks/bench_frontier.py [--json]``. Exits 1 when the target
grid has fewer than 100,000 shapes or its evaluation misses 20 ms.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import morph
from _report import Report, machine, median_ms
from morph.frontier import candidates_from_range, evaluate_candidates, pareto_frontier, select


#: (label, params_min, params_max, enumeration options): the target case has at least 100,000 shapes.
GRIDS = [
    ("target", 1e8, 2e11, dict(d_model_max=16384, n_layers_max=1024)),
    ("larger", 1e8, 1e12, dict(d_model_max=32768, n_layers_max=1024)),
]


def time_grid(report: Report, label: str, params_min: float, params_max: float, options: dict) -> None:
    enumerate_ms = median_ms(lambda: candidates_from_range(params_min, params_max, 2e11, **options), repeat=10)
    candidates = candidates_from_range(params_min, params_max, 2e11, **options)

    def one_evaluation():
        evaluation = evaluate_candidates(candidates, "bian2025", hardware="a100-40gb")
        return select(evaluation, latency_budget_s=float(np.median(evaluation.latency_s)), top_k=5)

    one_evaluation()  # warm caches (hardware and calibration files)
    total_ms = median_ms(one_evaluation, repeat=30)
    evaluation = evaluate_candidates(candidates, "bian2025", hardware="a100-40gb")
    loss_ms = median_ms(lambda: morph.preset("bian2025").predict(
        candidates.N.astype(float), candidates.D, candidates.aspect_ratio), repeat=30)
    pareto_ms = median_ms(lambda: pareto_frontier(evaluation.latency_s, evaluation.loss), repeat=30)
    frontier_size = len(pareto_frontier(evaluation.latency_s, evaluation.loss))
    if label == "target":
        report.target(f"{label}: shapes", len(candidates), 100_000, "shapes", below=False)
        report.target(f"{label}: one evaluation", total_ms, 20.0, "ms")
    else:
        report.figure(f"{label}: shapes", len(candidates), "shapes")
        report.figure(f"{label}: one evaluation", total_ms, "ms")
    report.figure(f"{label}: enumeration", enumerate_ms, "ms")
    report.say(f"{label}: {len(candidates):,} shapes with {params_min:.0e} to {params_max:.0e} parameters "
               f"(enumeration {enumerate_ms:.1f} ms)")
    report.say(f"  one evaluation (loss + latency + frontier + top-5): {total_ms:.1f} ms, median of 30"
               + (" (target < 20 ms)" if label == "target" else ""))
    report.say(f"  of which loss {loss_ms:.1f} ms, Pareto frontier {pareto_ms:.1f} ms; frontier size {frontier_size}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    report = Report("bench_frontier", parser.parse_args().json)
    report.say(f"machine: {machine()}, morph {morph.__version__}")
    for grid in GRIDS:
        time_grid(report, *grid)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
