"""Load test: N concurrent dashboard sessions on loopback, each rendering and answering a slider.

One Voila server with the flags of ``morph serve``, one headless Chromium with
N browser contexts opened at the same moment (each gets its own kernel, as a
viewer does). For every session: the time from request to interactive
(sliders present, frontier drawn), then ``--moves`` latency-target key
presses, each timed in the page from the key press to the redrawn frontier.
While all N are open, the resident memory of every kernel and of the server is
read from /proc.

Prints percentiles of both times and the memory per kernel. The browser runs
on the same machine as the server, so on 2 cores these figures include its
cost too: an upper bound on what remote viewers would see.

Needs Debian's ``chromium``. Run:
``python benchmarks/bench_load.py [--sessions 8] [--moves 10] [--json]``. Exits 1
unless every session becomes interactive and every slider move is answered
(within 30 s each); ``--json`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

import morph
from _report import Report, machine
from bench_dashboard import CHROMIUM_ARGS, READY, TIMER, load_average, start_server, stop
from morph.cli.serve import dashboard_notebook


MOVE_TIMEOUT_MS = 30_000


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kernel_memory(server_pid: int) -> list[float]:
    """Resident memory (MB) of every kernel the server started."""
    kernels = []
    for pid in _descendants(server_pid):
        try:
            if b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes():
                kernels.append(_rss_mb(pid))
        except OSError:
            continue
    return kernels


async def session(browser, url: str, moves: int, pause_ms: int, start_line: asyncio.Event) -> dict:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await start_line.wait()
    start = time.perf_counter()
    await page.goto(url, wait_until="commit", timeout=300_000)
    await page.wait_for_function(READY, arg=1, polling=50, timeout=300_000)
    interactive_s = time.perf_counter() - start
    return {"interactive_s": interactive_s, "page": page, "context": context, "moves": moves, "pause": pause_ms}


async def move_slider(state: dict) -> list[float]:
    page = state["page"]
    await page.evaluate(TIMER)
    slider = page.locator(".widget-slider", has=page.locator("label", has_text="Latency budget (s)"))
    await slider.locator(".noUi-handle").focus()
    for i in range(state["moves"]):
        await page.wait_for_timeout(state["pause"])
        answered = await page.evaluate("() => window.__morphBench.times.length")
        await page.keyboard.press("ArrowLeft" if answered % 2 == 0 else "ArrowRight")
        try:
            await page.wait_for_function(f"() => window.__morphBench.times.length > {answered}",
                                         polling=10, timeout=MOVE_TIMEOUT_MS)
        except PlaywrightTimeout:
            state["unanswered"] = state.get("unanswered", 0) + 1  # counted, not fatal: this is a load test
    times = await page.evaluate("() => window.__morphBench.times")
    await state["context"].close()
    return [float(t) for t in times]


async def run(report: Report, sessions: int, moves: int, pause_ms: int) -> None:
    process, url = start_server(dashboard_notebook())
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            start_line = asyncio.Event()
            tasks = [asyncio.create_task(session(browser, url, moves, pause_ms, start_line)) for _ in range(sessions)]
            await asyncio.sleep(0.5)
            start_line.set()
            states = await asyncio.gather(*tasks)
            kernels = kernel_memory(process.pid)
            server_mb = _rss_mb(process.pid)
            slider_ms = [t for times in await asyncio.gather(*(move_slider(s) for s in states)) for t in times]
            await browser.close()
    finally:
        stop(process)
    interactive = np.array([s["interactive_s"] for s in states])
    slider = np.array(slider_ms)
    kernels = kernels or [float("nan")]
    report.target("sessions interactive", len(states), sessions, "sessions", below=False)
    report.target("slider moves answered within 30 s", slider.size, sessions * moves, "moves", below=False)
    report.figure("time to interactive, median", float(np.median(interactive)), "s")
    report.figure("time to interactive, max", float(interactive.max()), "s")
    report.figure("slider to redrawn frontier, median", float(np.median(slider)) if slider.size else float("nan"), "ms")
    report.figure("slider to redrawn frontier, p90", float(np.percentile(slider, 90)) if slider.size else float("nan"),
                  "ms")
    report.figure("memory per kernel, mean", statistics.mean(kernels), "MB")
    report.figure("memory of the Voila server", server_mb, "MB")
    report.say(f"sessions: {sessions} concurrent, all interactive: {len(states)}/{sessions}; "
               f"slider moves answered within {MOVE_TIMEOUT_MS // 1000} s: {slider.size}/{sessions * moves}")
    report.say(f"time to interactive (s): median {np.median(interactive):.1f}, "
               f"p90 {np.percentile(interactive, 90):.1f}, max {interactive.max():.1f}")
    if slider.size:
        report.say(f"slider to redrawn frontier (ms), {pause_ms} ms between presses: median {np.median(slider):.0f}, "
                   f"p90 {np.percentile(slider, 90):.0f}, p99 {np.percentile(slider, 99):.0f}, max {slider.max():.0f}")
    report.say(f"memory: {len(kernels)} kernels, {statistics.mean(kernels):.0f} MB each on average "
               f"(max {max(kernels):.0f} MB); the Voila server {server_mb:.0f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--pause-ms", type=int, default=300, help="between key presses in each session")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    if not shutil.which("chromium"):
        print("chromium not found: install Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    report = Report("bench_load", args.json)
    report.say(f"machine: {machine()}, morph {morph.__version__}; load average before: {load_average()}")
    asyncio.run(run(report, args.sessions, args.moves, args.pause_ms))
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
