"""Load test: N dashboard sessions on loopback, each rendering and answering a slider.

One server with the command of ``morph serve`` (its guards, and a pool of
``--pool-size`` ready kernels, waited for before the first page), one
headless Chromium with N browser contexts, opened at the same moment
(``--scenario burst``) or one every 2 s (``--scenario class``); each gets its
own kernel, as a viewer does. For every session: the time from request to interactive
(sliders present, frontier drawn), then ``--moves`` latency-budget key
presses, each timed in the page from the key press to the redrawn frontier.
While all N are open, the resident memory of every kernel and of the server is
read from /proc.

Prints percentiles of both times and the memory per kernel. The browser runs
on the same machine as the server, so on 2 cores these figures include its
cost too: an upper bound on what remote viewers would see.

Targets: one viewer interactive < 3 s; 8 at once all interactive, median < 15 s,
every slider move answered, p90 < 1 s; 24 arriving one every 2 s each
interactive within 8 s; every kernel < 160 MB.

Needs Debian's ``chromium``. Run:
``python benchmarks/bench_load.py --scenario all [--json]``. Exits 1 when a
target is missed; ``--json`` prints the figures and targets as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import async_playwright

import morph
from _report import Report, machine
from bench_dashboard import CHROMIUM_ARGS, READY, TIMER, free_port, load_average, stop
from morph.cli.serve import dashboard_notebook, prepare_fits, voila_command


MOVE_TIMEOUT_MS = 30_000
INTERACTIVE_TIMEOUT_MS = 120_000


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
    try:
        await page.goto(url, wait_until="commit", timeout=INTERACTIVE_TIMEOUT_MS)
        await page.wait_for_function(READY, arg=1, polling=50, timeout=INTERACTIVE_TIMEOUT_MS)
        interactive_s = time.perf_counter() - start
    except PlaywrightTimeout:
        interactive_s = float("nan")  # counted as not interactive, not fatal: this is a load test
        status = await page.evaluate("() => document.title + ' | ' + document.body.innerText.slice(0, 200)")
        print(f"a session was not interactive after {INTERACTIVE_TIMEOUT_MS // 1000} s: {status!r}", file=sys.stderr)
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
    if state.get("unanswered"):
        print(f"a session left {state['unanswered']} of {state['moves']} moves unanswered within "
              f"{MOVE_TIMEOUT_MS // 1000} s", file=sys.stderr)
    return [float(t) for t in times]


def start_pooled_server(pool_size: int, max_sessions: int, log: str | None = None) -> tuple:
    """``morph serve``'s command on a free port (pool, session limit, guards); the server and its URL."""
    port = free_port()
    prepare_fits()
    command = voila_command(dashboard_notebook(), port=port, pool_size=pool_size, max_sessions=max_sessions)
    out = open(log, "a") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "voila/static/voila.js", timeout=2).close()
            break
        except OSError:
            time.sleep(0.2)
    # The pool is full once pool_size kernels have built their dashboard (then they wait for a page).
    while time.monotonic() < deadline and len(kernel_memory(process.pid)) < pool_size:
        time.sleep(0.5)
    time.sleep(min(30.0, 8.0 * pool_size))  # their notebooks run after the kernels start
    return process, url


async def run(sessions: int, moves: int, pause_ms: int, arrival_s: float, pool_size: int, log: str | None) -> dict:
    """Open ``sessions`` pages (all at once, or one every ``arrival_s``), then move a slider in each."""
    process, url = start_pooled_server(pool_size, max_sessions=sessions + 2, log=log)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            start_line = asyncio.Event()
            tasks = []
            for i in range(sessions):
                tasks.append(asyncio.create_task(session(browser, url, moves, pause_ms, start_line)))
                if arrival_s and i == 0:
                    start_line.set()
                if arrival_s:
                    await asyncio.sleep(arrival_s)
            await asyncio.sleep(0.5)
            start_line.set()
            states = await asyncio.gather(*tasks)
            kernels = kernel_memory(process.pid)
            server_mb = _rss_mb(process.pid)
            live = [s for s in states if s["interactive_s"] == s["interactive_s"]]  # not NaN
            slider_ms = [t for times in await asyncio.gather(*(move_slider(s) for s in live)) for t in times]
            await browser.close()
    finally:
        stop(process)
    every = np.array([s["interactive_s"] for s in states])
    interactive = every[np.isfinite(every)] if np.isfinite(every).any() else np.array([np.nan])
    slider = np.array(slider_ms) if slider_ms else np.array([np.nan])
    page_kernels = kernels  # pooled kernels have built the same dashboard: counted alike
    return {
        "sessions": sessions, "arrival_s": arrival_s, "pool_size": pool_size, "moves": sessions * moves,
        "interactive": int(np.isfinite(every).sum()), "answered": int(len(slider_ms)),
        "interactive_median_s": float(np.median(interactive)), "interactive_p90_s": float(np.percentile(interactive, 90)),
        "interactive_max_s": float(interactive.max()),
        "slider_median_ms": float(np.median(slider)), "slider_p90_ms": float(np.percentile(slider, 90)),
        "slider_max_ms": float(np.max(slider)),
        "kernels": len(kernels), "kernel_mean_mb": float(statistics.mean(page_kernels or [np.nan])),
        "kernel_max_mb": float(max(page_kernels or [np.nan])), "server_mb": float(server_mb),
    }


def record(report: Report, name: str, r: dict) -> None:
    """One scenario's figures and targets, each named after the scenario."""
    how = f"one every {r['arrival_s']:g} s" if r["arrival_s"] else "at once"
    report.say(f"{name}: {r['sessions']} viewers {how}, pool of {r['pool_size']}: interactive "
               f"{r['interactive']}/{r['sessions']}, slider moves answered within {MOVE_TIMEOUT_MS // 1000} s: "
               f"{r['answered']}/{r['moves']}")
    report.say(f"  time to interactive (s): median {r['interactive_median_s']:.1f}, p90 {r['interactive_p90_s']:.1f}, "
               f"max {r['interactive_max_s']:.1f}")
    report.say(f"  slider to redrawn frontier (ms): median {r['slider_median_ms']:.0f}, p90 {r['slider_p90_ms']:.0f}, "
               f"max {r['slider_max_ms']:.0f}")
    report.say(f"  memory: {r['kernels']} kernels (pool included), {r['kernel_mean_mb']:.0f} MB each on average "
               f"(max {r['kernel_max_mb']:.0f} MB); the server {r['server_mb']:.0f} MB")
    report.target(f"{name}: sessions interactive", r["interactive"], r["sessions"], "sessions", below=False)
    report.target(f"{name}: slider moves answered within 30 s", r["answered"], r["moves"], "moves", below=False)
    if r["sessions"] == 1:
        report.target(f"{name}: time to interactive", r["interactive_max_s"], TARGETS["single_s"], "s")
    elif r["arrival_s"]:
        report.target(f"{name}: time to interactive, max", r["interactive_max_s"], TARGETS["arrival_max_s"], "s")
    else:
        report.target(f"{name}: time to interactive, median", r["interactive_median_s"], TARGETS["burst_median_s"], "s")
    report.figure(f"{name}: time to interactive, p90", r["interactive_p90_s"], "s")
    report.figure(f"{name}: slider to redrawn frontier, median", r["slider_median_ms"], "ms")
    report.target(f"{name}: slider to redrawn frontier, p90", r["slider_p90_ms"], TARGETS["slider_p90_ms"], "ms")
    report.target(f"{name}: memory per kernel, max", r["kernel_max_mb"], TARGETS["kernel_mb"], "MB")
    report.figure(f"{name}: memory of the Voila server", r["server_mb"], "MB")


TARGETS = {"single_s": 3.0, "burst_median_s": 15.0, "arrival_max_s": 8.0, "slider_p90_ms": 1000.0, "kernel_mb": 160}

SCENARIOS = {
    "single": dict(sessions=1, arrival_s=0.0),
    "burst": dict(sessions=8, arrival_s=0.0),
    "class": dict(sessions=24, arrival_s=2.0),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="burst",
                        help="single: 1 viewer; burst: 8 at once; class: 24, one every 2 s; all: the three")
    parser.add_argument("--sessions", type=int, default=None, help="override the scenario's number of viewers")
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--pause-ms", type=int, default=300, help="between key presses in each session")
    parser.add_argument("--pool-size", type=int, default=2, help="ready kernels (morph serve's default: 2)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--server-log", default=None, metavar="PATH", help="append the server's output to this file")
    args = parser.parse_args()
    if not shutil.which("chromium"):
        print("chromium not found: install Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    report = Report("bench_load", args.json)
    report.say(f"machine: {machine()}, morph {morph.__version__}; load average before: {load_average()}")
    for name in (SCENARIOS if args.scenario == "all" else [args.scenario]):
        options = dict(SCENARIOS[name])
        if args.sessions:
            options["sessions"] = args.sessions
        result = asyncio.run(run(moves=args.moves, pause_ms=args.pause_ms, pool_size=args.pool_size,
                                 log=args.server_log, **options))
        record(report, name, result)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
