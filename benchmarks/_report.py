"""Figures and targets of a benchmark script: printed for a reader, as JSON for a script, and an exit status.

Every ``bench_*.py`` builds one :class:`Report`: :meth:`Report.say` prints a
line for a reader, :meth:`Report.figure` records a measured figure and
:meth:`Report.target` one with its target. :meth:`Report.finish` prints the
outcome (or, with ``--json``, one JSON object with every figure and target,
the reader's lines going to stderr instead) and returns the exit status:
0 when every target is met, 1 when one is missed.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Report", "machine", "median_ms"]


def chromium_path() -> str | None:
    """Debian's ``chromium`` on the PATH, or None after saying on stderr how to install it."""
    import shutil

    path = shutil.which("chromium")
    if not path:
        print("chromium not found: install Debian's chromium (apt-get install chromium)", file=sys.stderr)
    return path


def machine() -> str:
    """CPU model, cores, Python and numpy versions of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def median_ms(fn: Any, repeat: int) -> float:
    """Median wall time of ``repeat`` calls of ``fn()``, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Report:
    """What one benchmark run measured, and whether it met its targets.

    Parameters
    ----------
    script : str
        The benchmark's name, e.g. ``"bench_fit"``.
    as_json : bool
        Print one JSON object at the end instead of the reader's lines.
    """

    def __init__(self, script: str, as_json: bool = False) -> None:
        self.script = script
        self.as_json = as_json
        self.figures: dict[str, dict[str, Any]] = {}

    def say(self, text: str) -> None:
        """A line for the reader (to stderr with ``--json``, so stdout stays one JSON object)."""
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def figure(self, name: str, value: float, unit: str) -> None:
        """A measured figure without a target."""
        self.figures[name] = {"value": _plain(value), "unit": unit}

    def target(self, name: str, value: float, limit: float, unit: str, below: bool = True) -> bool:
        """A measured figure and its target: ``value < limit``, or ``value >= limit`` when ``below`` is False.

        Returns
        -------
        bool
            Whether the target is met (a NaN never meets it).
        """
        met = bool(value < limit) if below else bool(value >= limit)
        self.figures[name] = {"value": _plain(value), "unit": unit, "target": f"{'<' if below else '>='} {limit:g}",
                              "met": met}
        return met

    @property
    def missed(self) -> list[str]:
        """Names of the targets not met."""
        return [name for name, f in self.figures.items() if f.get("met") is False]

    def finish(self) -> int:
        """Print the outcome; the exit status: 0 when every target is met, 1 otherwise."""
        targets = [n for n, f in self.figures.items() if "met" in f]
        if self.as_json:
            print(json.dumps({"benchmark": self.script, "machine": machine(), "figures": self.figures,
                              "targets_met": not self.missed, "missed": self.missed}, allow_nan=False))
        elif self.missed:
            print(f"MISSED {len(self.missed)} of {len(targets)} targets: {', '.join(self.missed)}")
        else:
            print(f"all {len(targets)} targets met")
        return 1 if self.missed else 0
