"""Time every bad-input case through the command line: each must end, quickly, with a clear answer.

For each file of the corpus in tests/corpus/, and for a generated table of
100,000 runs, runs ``morph fit FILE --law chinchilla --json`` in a fresh
interpreter and prints its wall time, exit status and the first words of its
answer. The test suite asserts a bound of 30 s per case; this prints what
each actually takes.

Run: ``python benchmarks/bench_bad_input.py [--json]``. Exits 1 when a case
takes 30 s or more, exits with a status other than 0 or 2, or answers with
more than one line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import morph
from _report import Report, machine

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"


def _time_cli(path: Path, *extra: str) -> tuple[float, int, str, bool]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "morph", "fit", str(path), "--law", "chinchilla", *extra, "--json"],
                         capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    answer = out.stderr.strip().replace("morph: error: ", "") if out.returncode else "fitted"
    # A clear answer: success, or one line on stderr with exit status 2.
    clear = out.returncode == 0 or (out.returncode == 2 and out.stderr.strip().count("\n") == 0)
    return elapsed, out.returncode, answer, clear


BOUND_S = 30.0
"""Longest a case may take (seconds), interpreter start included; the tests assert it too."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    report = Report("bench_bad_input", parser.parse_args().json)
    report.say(f"machine: {machine()}, morph {morph.__version__}")
    cases: list[tuple[str, float, int, str, bool]] = []
    for path in sorted(CORPUS.iterdir()):
        cases.append((path.name, *_time_cli(path)))
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        N = 10 ** rng.uniform(7, 10, 100_000)
        D = N * 10 ** rng.uniform(0.5, 3, N.size)
        loss = morph.preset("besiroglu2024").predict(N, D) * np.exp(rng.normal(0, 0.01, N.size))
        big = Path(folder) / "100k-rows.csv"
        pd.DataFrame({"N": N, "D": D, "loss": loss}).to_csv(big, index=False)
        for method in ("paper", "robust"):
            cases.append((f"100k-rows.csv ({method})", *_time_cli(big, "--variant", "untied", "--method", method)))
    unclear = [name for name, *_, clear in cases if not clear]
    for name, elapsed, status, answer, _ in cases:
        report.say(f"{name:<26} {elapsed:6.2f} s  exit {status}  {answer[:90]}")
    times = np.array([case[1] for case in cases])
    report.target("slowest case", times.max(), BOUND_S, "s")
    report.figure("median case", float(np.median(times)), "s")
    report.target("cases without a clear answer (exit 0, or exit 2 with one line)", len(unclear), 1, "cases")
    report.say(f"slowest case {times.max():.2f} s, median {np.median(times):.2f} s (bound {BOUND_S:.0f} s); "
               f"without a clear answer: {', '.join(unclear) or 'none'}")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
