"""Speed of the decision layer over 100,000+ candidate shapes (target: under 50 ms).

What a dashboard update adds after the selection (``morph.decision.assess``):
memory feasibility, fit-range checks, and one set of 200 joint draws (the
law's 200 bootstrap refits paired with the latency calibration's draws) over
every shape that can meet the budget in some draw plus the frontier, giving
latency and loss bands, the probability of meeting the budget and of being
best. The bootstrap itself is fitted once per process and not timed here.

Run: ``python benchmarks/bench_decision.py [--json]``; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time

import morph
from _report import Report, machine, median_ms
from morph.decision import assess, fit_range, preset_fit
from morph.frontier import candidates_from_range, evaluate_candidates, select

#: Milliseconds one ``assess`` call may take over the 100,000+ shapes.
TARGET_MS = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    report = Report("bench_decision", parser.parse_args().json)
    report.say(f"machine: {machine()}, morph {morph.__version__}")
    start = time.perf_counter()
    fit_b = preset_fit("bian2025", bootstrap=200)
    bootstrap_s = time.perf_counter() - start
    report.figure("bootstrap_once_s", bootstrap_s, "s")
    report.say(f"  bian2025 re-derived on fit set B with 200 bootstrap refits: {bootstrap_s:.2f} s (once)")
    runs = fit_range("bian2025")
    for params_max in (2e11, 1e12):
        candidates = candidates_from_range(1e8, params_max, 2e11, d_model_max=16384, n_layers_max=1024)
        selection = select(evaluate_candidates(candidates, "bian2025"), 5.0, 5)
        assess(selection, runs, fit_result=fit_b)
        ms = median_ms(lambda: assess(selection, runs, fit_result=fit_b), repeat=20)
        report.target(f"assess_{len(candidates)}_shapes_ms", ms, TARGET_MS, "ms")
        draws = assess(selection, runs, fit_result=fit_b).draws
        report.figure(f"draws_{len(candidates)}_shapes", draws["n"], "draws")
        report.figure(f"drawn_shapes_{len(candidates)}_shapes", draws["pool"], "shapes")
        report.say(f"  {len(candidates):,} shapes (1e+08 to {params_max:.0e} parameters): assess {ms:.1f} ms, median "
                   f"of 20 (target < {TARGET_MS:g} ms); {draws['n']} joint draws of {draws['pool']:,} shapes "
                   f"(those shown and those that can be best); frontier {selection.frontier_index.size}, "
                   f"{int((~selection.evaluation.feasible).sum()):,} infeasible")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
