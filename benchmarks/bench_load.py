"""Load test: N dashboard sessions on loopback, each rendering and answering a slider.

One server with the command of ``morph serve`` (its guards, and a pool of
``--pool-size`` ready kernels, waited for before the first page), one
headless Chromium with N browser contexts, opened at the same moment
(``--scenario burst``) or one every 2 s (``--scenario class``); each gets its
own kernel, as a viewer does. For every session: the time from request to interactive
(sliders present, frontier drawn), then ``--moves`` latency-target key
presses, each timed in the page from the key press to the redrawn frontier.
While all N are open, the resident memory of every kernel and of the server is
read from /proc.

Prints percentiles of both times and the memory per kernel. The browser runs
on the same machine as the server, so on 2 cores these figures include its
cost too: an upper bound on what remote viewers would see.

Targets: one viewer interactive < 3 s; 8 at once all interactive, median < 15 s,
every slider move answered, p90 < 1 s; 24 arriving one every 2 s each
interactive within 8 s; every kernel < 160 MB. Exits 1 when one is missed.

Needs Debian's ``chromium``. Run: ``python benchmarks/bench_load.py --scenario all [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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
from bench_dashboard import CHROMIUM_ARGS, READY, TIMER, free_port, load_average, stop
from morph.cli.serve import dashboard_notebook, voila_command


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
    slider = page.locator(".widget-slider", has=page.locator("label", has_text="Latency target (s)"))
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


def start_pooled_server(pool_size: int, max_sessions: int, log: str | None = None) -> tuple:
    """``morph serve``'s command on a free port (pool, session limit, guards); the server and its URL."""
    port = free_port()
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


def report(r: dict) -> None:
    how = f"one every {r['arrival_s']:g} s" if r["arrival_s"] else "at once"
    print(f"{r['sessions']} viewers {how}, pool of {r['pool_size']}: interactive {r['interactive']}/{r['sessions']}, "
          f"slider moves answered within {MOVE_TIMEOUT_MS // 1000} s: {r['answered']}/{r['moves']}")
    print(f"  time to interactive (s): median {r['interactive_median_s']:.1f}, p90 {r['interactive_p90_s']:.1f}, "
          f"max {r['interactive_max_s']:.1f}")
    print(f"  slider to redrawn frontier (ms): median {r['slider_median_ms']:.0f}, p90 {r['slider_p90_ms']:.0f}, "
          f"max {r['slider_max_ms']:.0f}")
    print(f"  memory: {r['kernels']} kernels (pool included), {r['kernel_mean_mb']:.0f} MB each on average "
          f"(max {r['kernel_max_mb']:.0f} MB); the server {r['server_mb']:.0f} MB")


def misses(r: dict) -> list[str]:
    """The targets a run missed, in words (empty: all met)."""
    missed = []
    if r["interactive"] < r["sessions"]:
        missed.append(f"only {r['interactive']}/{r['sessions']} interactive")
    if r["answered"] < r["moves"]:
        missed.append(f"only {r['answered']}/{r['moves']} slider moves answered")
    if r["sessions"] == 1 and r["interactive_max_s"] >= TARGETS["single_s"]:
        missed.append(f"one viewer took {r['interactive_max_s']:.1f} s (target {TARGETS['single_s']} s)")
    elif r["arrival_s"] and r["interactive_max_s"] >= TARGETS["arrival_max_s"]:
        missed.append(f"slowest arriving viewer {r['interactive_max_s']:.1f} s (target {TARGETS['arrival_max_s']} s)")
    elif not r["arrival_s"] and r["sessions"] > 1 and r["interactive_median_s"] >= TARGETS["burst_median_s"]:
        missed.append(f"median {r['interactive_median_s']:.1f} s (target {TARGETS['burst_median_s']} s)")
    if r["slider_p90_ms"] >= TARGETS["slider_p90_ms"]:
        missed.append(f"slider p90 {r['slider_p90_ms']:.0f} ms (target {TARGETS['slider_p90_ms']:.0f} ms)")
    if r["kernel_max_mb"] >= TARGETS["kernel_mb"]:
        missed.append(f"a kernel of {r['kernel_max_mb']:.0f} MB (target {TARGETS['kernel_mb']} MB)")
    return missed


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
    machine = (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"python {platform.python_version()}, morph {morph.__version__}; load average before: {load_average()}")
    results = {}
    for name in (SCENARIOS if args.scenario == "all" else [args.scenario]):
        options = dict(SCENARIOS[name])
        if args.sessions:
            options["sessions"] = args.sessions
        results[name] = asyncio.run(run(moves=args.moves, pause_ms=args.pause_ms, pool_size=args.pool_size,
                                      log=args.server_log, **options))
        results[name]["missed"] = misses(results[name])
    if args.json:
        print(json.dumps({"machine": machine, "targets": TARGETS, "results": results}, indent=1))
    else:
        print(machine)
        for name, r in results.items():
            report(r)
            print("  " + ("meets every target" if not r["missed"] else "MISSED: " + "; ".join(r["missed"])))
    return 1 if any(r["missed"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
