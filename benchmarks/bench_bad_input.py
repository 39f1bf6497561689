"""Time every bad-input case through the command line: each must end, quickly, with a clear answer.

For each file of the corpus in tests/corpus/, and for a generated table of
100,000 runs, runs ``morph fit FILE --law chinchilla --json`` in a fresh
interpreter and prints its wall time, exit status and the first words of its
answer. The test suite asserts a bound of 30 s per case; this prints what
each actually takes.

Run: ``python benchmarks/bench_bad_input.py``
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import morph

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"


def _time_cli(path: Path, *extra: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "morph", "fit", str(path), "--law", "chinchilla", *extra, "--json"],
                         capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    answer = out.stderr.strip().replace("morph: error: ", "") if out.returncode else "fitted"
    return elapsed, out.returncode, answer


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"morph {morph.__version__}")
    times = []
    for path in sorted(CORPUS.iterdir()):
        elapsed, status, answer = _time_cli(path)
        times.append(elapsed)
        print(f"{path.name:<26} {elapsed:6.2f} s  exit {status}  {answer[:90]}")
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        N = 10 ** rng.uniform(7, 10, 100_000)
        D = N * 10 ** rng.uniform(0.5, 3, N.size)
        loss = morph.preset("besiroglu2024").predict(N, D) * np.exp(rng.normal(0, 0.01, N.size))
        big = Path(folder) / "100k-rows.csv"
        pd.DataFrame({"N": N, "D": D, "loss": loss}).to_csv(big, index=False)
        for method in ("paper", "robust"):
            elapsed, status, answer = _time_cli(big, "--variant", "untied", "--method", method)
            times.append(elapsed)
            print(f"{'100k-rows.csv (' + method + ')':<26} {elapsed:6.2f} s  exit {status}  {answer}")
        wide = Path(folder) / "100k-columns.csv"  # refused before parsing: the target is under 1 s
        columns = ["N", "D", "loss"] + [f"c{i}" for i in range(99_997)]
        wide.write_text(",".join(columns) + "\n" + ",".join(["1e9", "2e10", "2.5"] + ["0"] * 99_997) + "\n")
        elapsed, status, answer = _time_cli(wide)
        times.append(elapsed)
        print(f"{'100k-columns.csv':<26} {elapsed:6.2f} s  exit {status}  {answer[:90]}")
    print(f"slowest case {max(times):.2f} s, median {np.median(times):.2f} s (bound asserted in tests: 30 s)")


if __name__ == "__main__":
    main()
