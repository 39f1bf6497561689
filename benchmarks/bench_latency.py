"""Time to predict generation latency for 100,000 shapes (target: under 10 ms).

Run:  python benchmarks/bench_latency.py [--shapes N] [--repeats R] [--json]

Prints the median and fastest of R timed calls of ``predict_latency`` (after
one warm-up call), each reading ``latency_s``, and a line describing the machine.
Exits 1 when the median misses the target; ``--json`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from _report import Report, machine
from morph.latency import predict_latency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    report = Report("bench_latency", args.json)

    rng = np.random.default_rng(0)
    n_layers = rng.integers(1, 97, args.shapes)
    d_model = 64 * rng.integers(1, 129, args.shapes)
    predict_latency(n_layers, d_model)  # warm-up: loads presets and calibration

    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        prediction = predict_latency(n_layers, d_model, hardware="a100-40gb", batch=1, input_tokens=128,
                                     output_tokens=256)
        prediction.latency_s.sum()
        timings.append(time.perf_counter() - start)
    median = statistics.median(timings)
    met = report.target(f"predict_latency median, {args.shapes} shapes", 1e3 * median, 10.0, "ms")
    report.figure(f"predict_latency fastest, {args.shapes} shapes", 1e3 * min(timings), "ms")
    report.say(f"predict_latency, {args.shapes:,} shapes: median {1e3 * median:.2f} ms, fastest "
               f"{1e3 * min(timings):.2f} ms over {args.repeats} runs ({'meets' if met else 'MISSES'} the 10 ms target)")
    report.say(f"machine: {machine()}")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
