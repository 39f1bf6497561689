"""Load test: a class of dashboard viewers on loopback, measured from the server's side.

Protocol scenarios (the server's load, as a class puts it on a server):
``class30`` opens 30 viewers at once against ``morph serve --class 30``;
``arrive60`` brings 60, one every 2 s, to the default server (a pool of 2).
Each viewer speaks what a page speaks (``_viewers.ProtocolViewer``): it
requests the page, opens its kernel's websocket with the v1 subprotocol, gets
every widget's state as the widget manager does, then moves the
latency-budget slider ``--moves`` times (its state update, as a page sends
it) and times each move until the figure's update arrives. These viewers cost
the client almost nothing, so the figures are the server's. Alongside them
ONE real Chromium page (the canary) measures what a person sees: time to
interactive (sliders present, frontier drawn), and the browser's CPU for that
page (utime + stime from /proc over this script's Chromium processes, from
the request to 3 s after it is interactive, the page still open).

Per server: CPU seconds per viewer (utime + stime from /proc over the server's
process tree, kernels that exited included, from the first request to the last
move, divided by the viewers and the canary; kernels started before the first
request, the pool's or the class's warm-up, are not in it and are reported
apart) and memory per kernel: its PSS from ``/proc/PID/smaps_rollup`` (private pages plus
its share of the pages all kernels map, so the kernels' PSS adds up to what they take from
the machine), with RSS (which counts the shared libraries in every kernel) beside it.

Targets: class30: all 30 get their state, median < 5 s, max < 10 s, every
move answered, p90 < 500 ms, the canary interactive < 6 s; arrive60: each
state within 2 s, every move answered, p90 < 250 ms; both: server CPU per
viewer < 1.5 s, memory per kernel < 120 MB.

Browser scenarios (``single``, ``burst``, ``class``): N real Chromium pages on
the server's machine, an UPPER BOUND that includes the browsers' cost (on 2
cores the browsers take most of the CPU; in a class they run on the students'
laptops). Targets: one viewer interactive < 3 s; 8 at once all interactive,
median < 15 s, every slider move answered, p90 < 1 s; 24 arriving one every
2 s each interactive within 8 s; every kernel < 160 MB.

Needs Debian's ``chromium``. Run:
``python benchmarks/bench_load.py --scenario class30|arrive60|single|burst|class|all [--json]``.
Exits 1 when a target is missed; ``--json`` prints one JSON object with
``"targets_met"`` and every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
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
from _report import Report, chromium_path, machine
from _viewers import (kernel_cpu_by_id, kernel_memory_mb, memory_mb, own_cpu_s, process_tree, run_viewers,
                      tree_cpu_s, tree_pss_mb)
from bench_dashboard import CHROMIUM_ARGS, READY, TIMER, free_port, load_average, stop
from morph.cli.serve import dashboard_notebook, default_max_sessions, prepare_fits, voila_command


MOVE_TIMEOUT_MS = 30_000
INTERACTIVE_TIMEOUT_MS = 120_000


def kernel_memory(server_pid: int) -> list[float]:
    """Resident memory (MB) of every kernel the server started (the browser scenarios' figure)."""
    return [m["rss"] for m in kernel_memory_mb(server_pid)]


async def seconds_to_interactive(page, url: str) -> float:
    """Request ``url`` and wait until the dashboard is interactive; NaN after the timeout (a load test goes on)."""
    start = time.perf_counter()
    try:
        await page.goto(url, wait_until="commit", timeout=INTERACTIVE_TIMEOUT_MS)
        await page.wait_for_function(READY, arg=1, polling=50, timeout=INTERACTIVE_TIMEOUT_MS)
        return time.perf_counter() - start
    except PlaywrightTimeout:
        return float("nan")


async def session(browser, url: str, moves: int, pause_ms: int, start_line: asyncio.Event) -> dict:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await start_line.wait()
    interactive_s = await seconds_to_interactive(page, url)
    if math.isnan(interactive_s):  # counted as not interactive, not fatal: this is a load test
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


def wait_until_quiet(pid: int, kernels: int, deadline: float, quiet_cores: float = 0.15) -> None:
    """Wait until ``kernels`` kernels run below ``pid`` and its tree has been nearly idle for 3 s (warm-up over)."""
    while time.monotonic() < deadline and len(kernel_memory(pid)) < kernels:
        time.sleep(0.5)
    last = tree_cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(3.0)
        now = tree_cpu_s(pid)
        if now - last < 3.0 * quiet_cores:
            return
        last = now


def start_pooled_server(pool_size: int, max_sessions: int, log: str | None = None, **options) -> tuple:
    """``morph serve``'s command on a free port (pool, session limit, guards), warmed up; the server and its URL."""
    port = free_port()
    prepare_fits()
    if max_sessions is None:
        max_sessions = max(options.get("class_size", 0), default_max_sessions())
    command = voila_command(dashboard_notebook(), port=port, pool_size=pool_size, max_sessions=max_sessions, **options)
    out = open(log, "a") if log else subprocess.DEVNULL
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "voila/static/voila.js", timeout=2).close()
            break
        except OSError:
            time.sleep(0.2)
    # The pool is ready once pool_size kernels have built their dashboard (then they wait for a page).
    wait_until_quiet(process.pid, pool_size, deadline)
    process.warm_up_s = time.perf_counter() - started
    process.warm_up_cpu_s = tree_cpu_s(process.pid)
    return process, url


def chromium_cpu_s() -> float:
    """CPU seconds of this script's Chromium processes (other users' browsers on the machine left out)."""
    total = 0.0
    for pid in process_tree(os.getpid())[1:]:
        try:
            if b"chrom" in Path(f"/proc/{pid}/cmdline").read_bytes():
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


async def canary(url: str, start_line: asyncio.Event) -> dict:
    """One real Chromium page: its time to interactive and its browser CPU (request to 3 s after interactive)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1400, "height": 1000})
        page = await context.new_page()
        await asyncio.sleep(1.0)
        await start_line.wait()
        before = chromium_cpu_s()
        interactive_s = await seconds_to_interactive(page, url)
        await asyncio.sleep(3.0)
        cpu_s = chromium_cpu_s() - before
        await browser.close()
    return {"interactive_s": interactive_s, "browser_cpu_s": cpu_s}


async def run_protocol(sessions: int, arrival_s: float, moves: int, pause_ms: int, log: str | None,
                       server: dict) -> dict:
    """``sessions`` protocol viewers and one Chromium canary against a fresh server."""
    process, url = start_pooled_server(log=log, **server)
    try:
        before_load = load_average()
        start_line = asyncio.Event()
        watch = asyncio.create_task(canary(url, start_line))
        await asyncio.sleep(3.0)  # the canary's browser is started (its start is not the server's cost)
        cpu_before, own_before = tree_cpu_s(process.pid), own_cpu_s(process.pid)
        kernels_before = kernel_cpu_by_id(process.pid)  # warm kernels: what they spent before the lesson
        start_line.set()
        memory: list[dict[str, float]] = []
        whole: list[float] = []

        async def sample_memory() -> None:  # while the viewers are open: the most kernels at one time
            while True:
                found = kernel_memory_mb(process.pid)
                if len(found) >= len(memory):
                    memory[:] = found
                    # Everything the server holds then: Voila, its helpers and every kernel, shared pages once.
                    whole[:] = [tree_pss_mb(process.pid)]
                await asyncio.sleep(2.0)

        sampler = asyncio.create_task(sample_memory())
        results = await run_viewers(url, sessions, arrival_s, moves=moves, pause_s=pause_ms / 1e3,
                                    probe=lambda kernel: kernel_cpu_by_id(process.pid).get(kernel))
        seen = await watch
        sampler.cancel()
        kernels = memory
        cpu_s = tree_cpu_s(process.pid) - cpu_before
        own_s = own_cpu_s(process.pid) - own_before
        server_mb = memory_mb(process.pid)["rss"]
    finally:
        stop(process)
    states = np.array([r.state_s if r.state_s is not None else np.nan for r in results])
    got = states[np.isfinite(states)] if np.isfinite(states).any() else np.array([np.nan])
    moves_ms = np.array([t for r in results for t in r.moves_ms] or [np.nan])
    errors = sorted({r.error for r in results if r.error})
    # Per viewer, from its own kernel: CPU to open the page (from the first request, so a warm kernel's
    # warm-up is not counted), and per move; plus the Voila process's CPU shared out over the viewers.
    opened = [r.kernel_cpu_at_state_s - kernels_before.get(r.kernel_id, 0.0) for r in results
              if r.kernel_cpu_at_state_s is not None]
    per_move = [(r.kernel_cpu_at_end_s - r.kernel_cpu_at_state_s) / r.answered for r in results
                if r.kernel_cpu_at_end_s is not None and r.kernel_cpu_at_state_s is not None and r.answered]
    voila_per_viewer = own_s / (sessions + 1)
    for error in errors:
        print(f"a viewer stopped: {error}", file=sys.stderr)
    return {
        "sessions": sessions, "arrival_s": arrival_s, "server": server, "load_before": before_load,
        "warm_up_s": process.warm_up_s, "warm_up_cpu_s": process.warm_up_cpu_s,
        "with_state": int(np.isfinite(states).sum()),
        "state_median_s": float(np.median(got)), "state_p90_s": float(np.percentile(got, 90)),
        "state_max_s": float(np.max(got)),
        "moves": sum(r.moves_sent for r in results), "moves_planned": sessions * moves,
        "answered": sum(r.answered for r in results),
        "move_median_ms": float(np.median(moves_ms)), "move_p90_ms": float(np.percentile(moves_ms, 90)),
        "move_max_ms": float(np.max(moves_ms)),
        "canary_interactive_s": seen["interactive_s"], "canary_browser_cpu_s": seen["browser_cpu_s"],
        "server_cpu_s": cpu_s, "cpu_per_viewer_s": cpu_s / (sessions + 1), "server_process_cpu_s": own_s,
        "kernel_open_cpu_s": float(np.median(opened or [np.nan])),
        "kernel_move_cpu_ms": 1e3 * float(np.median(per_move or [np.nan])),
        "voila_cpu_per_viewer_s": voila_per_viewer,
        "open_cpu_per_viewer_s": float(np.median(opened or [np.nan])) + voila_per_viewer,
        "kernels": len(kernels),
        "kernel_median_mb": float(np.median([m["pss"] for m in kernels] or [np.nan])),
        "kernel_max_mb": float(max([m["pss"] for m in kernels] or [np.nan])),
        "kernel_rss_median_mb": float(np.median([m["rss"] for m in kernels] or [np.nan])),
        "server_tree_mb": float(whole[0]) if whole else float("nan"), "server_mb": float(server_mb),
        "load_after": load_average(), "errors": errors,
    }


def record_protocol(report: Report, name: str, r: dict) -> None:
    how = f"one every {r['arrival_s']:g} s" if r["arrival_s"] else "at once"
    report.say(f"{name}: {r['sessions']} protocol viewers {how} + 1 Chromium canary; server {r['server']}; "
               f"load average before {r['load_before']}, after {r['load_after']}")
    report.say(f"  warm-up before the first page: {r['warm_up_s']:.1f} s, {r['warm_up_cpu_s']:.1f} CPU s")
    report.say(f"  widget state: {r['with_state']}/{r['sessions']} viewers; median {r['state_median_s']:.2f} s, "
               f"p90 {r['state_p90_s']:.2f} s, max {r['state_max_s']:.2f} s")
    report.say(f"  slider move to the figure's update: {r['answered']}/{r['moves']} answered "
               f"({r['moves_planned']} planned); median {r['move_median_ms']:.0f} ms, p90 {r['move_p90_ms']:.0f} ms, "
               f"max {r['move_max_ms']:.0f} ms")
    report.say(f"  canary page interactive in {r['canary_interactive_s']:.2f} s; its browser CPU "
               f"{r['canary_browser_cpu_s']:.2f} s")
    report.say(f"  server CPU: {r['server_cpu_s']:.1f} s for {r['sessions'] + 1} viewers = "
               f"{r['cpu_per_viewer_s']:.2f} s per viewer ({r['server_process_cpu_s']:.1f} s of it in the Voila "
               f"process, the rest in kernels)")
    report.say(f"  memory: {r['kernels']} kernels, each {r['kernel_median_mb']:.0f} MB proportional (PSS, median; "
               f"max {r['kernel_max_mb']:.0f} MB) and {r['kernel_rss_median_mb']:.0f} MB resident (RSS, counting the "
               f"libraries every kernel shares); the whole server {r['server_tree_mb']:.0f} MB (PSS summed), the "
               f"Voila process {r['server_mb']:.0f} MB resident")
    t = PROTOCOL_TARGETS[name]
    report.target(f"{name}: viewers with widget state", r["with_state"], r["sessions"], "viewers", below=False)
    if "state_median_s" in t:
        report.target(f"{name}: time to widget state, median", r["state_median_s"], t["state_median_s"], "s")
    else:
        report.figure(f"{name}: time to widget state, median", r["state_median_s"], "s")
    report.figure(f"{name}: time to widget state, p90", r["state_p90_s"], "s")
    report.target(f"{name}: time to widget state, max", r["state_max_s"], t["state_max_s"], "s")
    report.target(f"{name}: slider moves answered", r["answered"], r["moves_planned"], "moves", below=False)
    report.figure(f"{name}: slider move to figure update, median", r["move_median_ms"], "ms")
    report.target(f"{name}: slider move to figure update, p90", r["move_p90_ms"], t["move_p90_ms"], "ms")
    report.figure(f"{name}: slider move to figure update, max", r["move_max_ms"], "ms")
    if "canary_s" in t:
        report.target(f"{name}: canary page interactive", r["canary_interactive_s"], t["canary_s"], "s")
    else:
        report.figure(f"{name}: canary page interactive", r["canary_interactive_s"], "s")
    report.figure(f"{name}: canary page, browser CPU", r["canary_browser_cpu_s"], "s")
    report.say(f"  per viewer: its kernel {r['kernel_open_cpu_s']:.2f} CPU s to open the page (median), "
               f"{r['kernel_move_cpu_ms']:.0f} CPU ms per move; the Voila process {r['voila_cpu_per_viewer_s']:.2f} "
               f"CPU s (page and moves)")
    report.target(f"{name}: server CPU per viewer to open the page (its kernel + a share of Voila's)",
                  r["open_cpu_per_viewer_s"], 1.5, "s")
    report.figure(f"{name}: server CPU per viewer, page and {r['moves_planned'] // max(1, r['sessions'])} moves",
                  r["cpu_per_viewer_s"], "s")
    report.figure(f"{name}: kernel CPU per move, median", r["kernel_move_cpu_ms"], "ms")
    report.target(f"{name}: memory per kernel (PSS: private pages and a share of the shared ones), median",
                  r["kernel_median_mb"], 120.0, "MB")
    report.figure(f"{name}: memory per kernel (PSS), max", r["kernel_max_mb"], "MB")
    report.figure(f"{name}: memory per kernel (RSS, shared libraries counted in every kernel), median",
                  r["kernel_rss_median_mb"], "MB")
    report.figure(f"{name}: memory of the whole server with every kernel (PSS summed)", r["server_tree_mb"], "MB")
    report.figure(f"{name}: server CPU, Voila process alone", r["server_process_cpu_s"], "s")
    report.figure(f"{name}: warm-up before the first page", r["warm_up_s"], "s")
    report.figure(f"{name}: warm-up CPU", r["warm_up_cpu_s"], "s")
    report.figure(f"{name}: memory of the Voila server", r["server_mb"], "MB")


PROTOCOL_TARGETS = {
    "class30": {"state_median_s": 5.0, "state_max_s": 10.0, "move_p90_ms": 500.0, "canary_s": 6.0},
    "arrive60": {"state_max_s": 2.0, "move_p90_ms": 250.0},
}

PROTOCOL_SCENARIOS = {
    # morph serve --class 30: its session limit is max(30, the memory-derived default).
    "class30": dict(sessions=30, arrival_s=0.0, server=dict(pool_size=30, class_size=30, max_sessions=None)),
    # 60 viewers stay open: the session limit must admit them (the default server's, sized for the test).
    "arrive60": dict(sessions=60, arrival_s=2.0, server=dict(pool_size=2, max_sessions=62)),
}


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
            server_mb = memory_mb(process.pid)["rss"]
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
    parser.add_argument("--scenario", choices=[*PROTOCOL_SCENARIOS, *SCENARIOS, "all"], default="arrive60",
                        help="class30: 30 protocol viewers at once against --class 30; arrive60: 60, one every 2 s, "
                             "against the default server; browser pages (an upper bound including the browsers' "
                             "cost): single: 1; burst: 8 at once; class: 24, one every 2 s; all: every scenario")
    parser.add_argument("--sessions", type=int, default=None, help="override the scenario's number of viewers")
    parser.add_argument("--moves", type=int, default=10, help="slider moves per viewer")
    parser.add_argument("--pause-ms", type=int, default=300, help="between key presses in each session")
    parser.add_argument("--pool-size", type=int, default=2, help="ready kernels (morph serve's default: 2)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--server-log", default=None, metavar="PATH", help="append the server's output to this file")
    args = parser.parse_args()
    if not chromium_path():
        return 2
    report = Report("bench_load", args.json)
    report.say(f"machine: {machine()}, morph {morph.__version__}; load average before: {load_average()}")
    for name in ([*PROTOCOL_SCENARIOS, *SCENARIOS] if args.scenario == "all" else [args.scenario]):
        if name in PROTOCOL_SCENARIOS:
            options = dict(PROTOCOL_SCENARIOS[name])
            if args.sessions:
                options["sessions"] = args.sessions
            result = asyncio.run(run_protocol(moves=args.moves, pause_ms=args.pause_ms, log=args.server_log,
                                              **options))
            record_protocol(report, name, result)
            continue
        report.say(f"{name}: browser pages on the server's machine: an upper bound, the browsers' cost included")
        options = dict(SCENARIOS[name])
        if args.sessions:
            options["sessions"] = args.sessions
        result = asyncio.run(run(moves=args.moves, pause_ms=args.pause_ms, pool_size=args.pool_size,
                                 log=args.server_log, **options))
        record(report, name, result)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
