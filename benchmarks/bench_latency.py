"""Time to predict generation latency for 100,000 shapes (target: under 10 ms).

Run:  python benchmarks/bench_latency.py [--shapes N] [--repeats R]

Prints the median and fastest of R timed calls of ``predict_latency`` (after
one warm-up call), each reading ``latency_s``, and a line describing the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from morph.latency import predict_latency


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

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
    print(f"predict_latency, {args.shapes:,} shapes: median {1e3 * median:.2f} ms, fastest {1e3 * min(timings):.2f} ms "
          f"over {args.repeats} runs ({'meets' if median < 0.010 else 'MISSES'} the 10 ms target)")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
