"""The kernel's share of a slider move: Python time per latency-budget move, and what it sends to the page.

Builds the dashboard in this process (no browser, no server), moves the
latency-budget control between 2.0 s and 1.95 s (Morph-1B, 1.96 s, leaves and
rejoins the selection each time) as the page does, and reports the wall time of
each update (median and 90th percentile over ``--moves``, after four warm-up
moves), the comm messages one move sends (count, bytes, and which widget and
trait), and with ``--profile`` the functions that take the time (cProfile,
cumulative). What the browser then does with the update is timed by
``bench_dashboard.py`` (key press to redrawn frontier).

Run: ``python benchmarks/bench_move.py [--moves 40] [--profile] [--json]``.
Figures only (no target: the target is the page's, in ``bench_dashboard.py``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time

import morph
from _report import Report, machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=40, help="moves to time (default 40)")
    parser.add_argument("--profile", action="store_true", help="also print the top functions under cProfile")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    import ipywidgets as widgets

    from morph.app.dashboard import Dashboard

    sent: list[tuple[str, list[str], int]] = []
    send = widgets.Widget._send

    def recording(self, msg, buffers=None):
        size = len(json.dumps(msg, default=str)) + sum(len(b) for b in (buffers or []))
        sent.append((type(self).__name__, sorted(msg.get("state", {})), size))
        return send(self, msg, buffers)

    widgets.Widget._send = recording
    report = Report("bench_move", args.json)
    report.say(f"machine: {machine()}, morph {morph.__version__}; load average before: "
               f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    board = Dashboard()
    slider = board.controls["latency_budget_s"]
    budgets = (1.95, 2.0)
    for k in range(4):
        slider.value = budgets[k % 2]
    times = []
    for k in range(args.moves):
        sent.clear()
        start = time.perf_counter()
        slider.value = budgets[k % 2]
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    median, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
    report.figure("kernel update per move, median", median, "ms")
    report.figure("kernel update per move, p90", p90, "ms")
    report.figure("bytes sent per move", sum(size for _, _, size in sent), "B")
    report.say(f"kernel update per latency-budget move: median {median:.1f} ms, 90th percentile {p90:.1f} ms, "
               f"fastest {times[0]:.1f} ms over {len(times)} moves")
    report.say(f"one move sends {len(sent)} messages, {sum(size for _, _, size in sent):,} bytes:")
    for name, keys, size in sent:
        report.say(f"  {name:14s} {size:6d} B  {', '.join(keys)}")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for k in range(20):
            slider.value = budgets[k % 2]
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats("morph/", 25)
        report.say(out.getvalue())
    report.say(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
