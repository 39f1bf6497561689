"""CPU one dashboard page costs the browser (and the server), from /proc.

Method: one Voila server with Morph's serving defaults (the figure widget's
script served once, as ``morph serve`` does), one headless Chromium; per page a
fresh browser context (empty cache, as a first visit). The CPU of the browser's
processes (utime + stime of every Chromium process under this script, the
server's excluded) and of the server's process tree is read from
``/proc/PID/stat`` just before the page is requested and ``--settle`` seconds
after it is interactive (sliders present, frontier drawn), with the page still
open: a closed renderer's CPU leaves /proc with it.

``--bundle full`` measures with plotly's own script (all of plotly.js, as
before Morph's partial build), ``--bundle partial`` with Morph's build (the
trace types Morph draws), ``--bundle both`` (default) alternates the two on one
server each, so load from other processes hits both alike. Target: under 2.0
CPU s of browser per page with the partial build.

Needs Debian's ``chromium`` on the PATH. Run:
``python benchmarks/bench_page.py [--pages 3] [--bundle both|full|partial] [--blank] [--without-plotly] [--floor] [--json]``.
Exits 1 when a target is missed, 2 without chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import morph
from _report import Report, chromium_path, machine
from bench_dashboard import CHROMIUM_ARGS, READY, load_average, start_server, stop
from morph.app.bundle import BUNDLE_ENV
from morph.cli.serve import dashboard_notebook

TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2:].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _descendants(root: int, tree: dict[int, list[int]]) -> set[int]:
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in tree.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _cpu(pids: set[int], only_chromium: bool = False) -> float:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if only_chromium and "chrom" not in Path(f"/proc/{pid}/comm").read_text().lower():
                continue
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of the line
    return total / TICKS


def _kind(pid: int) -> str:
    """What a Chromium process does: its ``--type`` (renderer, gpu-process, utility: network...), else the browser."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
    except OSError:
        return "gone"
    kind = next((a.split("=", 1)[1] for a in arguments if a.startswith("--type=")), "browser")
    sub = next((a.split("=", 1)[1].split(".")[0] for a in arguments if a.startswith("--utility-sub-type=")), "")
    return f"{kind} ({sub})" if sub else kind


def cpu_by_process(server_pid: int) -> dict[int, tuple[str, float]]:
    """Each Chromium process under this script (the server's excluded): (what it does, CPU s so far)."""
    tree = _children()
    pids = _descendants(os.getpid(), tree) - _descendants(server_pid, tree) - {server_pid}
    return {pid: (_kind(pid), _cpu({pid}, only_chromium=True)) for pid in pids}


def by_kind(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU s spent between two readings, summed by what each process does (a new process counts from 0)."""
    spent: dict[str, float] = {}
    for pid, (kind, cpu) in after.items():
        delta = cpu - before.get(pid, (kind, 0.0))[1]
        if delta > 0:
            spent[kind] = spent.get(kind, 0.0) + delta
    return dict(sorted(spent.items(), key=lambda item: -item[1]))


def cpu_now(server_pid: int) -> tuple[float, float]:
    """(browser, server) CPU seconds so far: Chromium under this script, and the server's tree."""
    tree = _children()
    server = _descendants(server_pid, tree) | {server_pid}
    browser = _descendants(os.getpid(), tree) - server
    return _cpu(browser, only_chromium=True), _cpu(server)


# Stands in for the figure widget's script when the page is read without plotly (``--without-plotly``).
NO_PLOTLY = "export default () => ({initialize() {}, render({el}) { el.textContent = 'figure'; return () => {}; }});"
CONTROLS_READY = ("() => !!document.querySelector('.widget-slider .noUi-handle')"
                  " && !!document.querySelector('.morph-table table')")

# The least a Voila page with widgets can be: one slider and one HTML table, served as the dashboard is (``--floor``).
FLOOR_SOURCE = ("import ipywidgets as widgets\n"
                "widgets.VBox([widgets.IntSlider(description='x'),\n"
                "              widgets.HTML('<div class=\"morph-table\"><table><tr><td>1</td></tr></table></div>')])")


def floor_notebook(folder: Path) -> Path:
    """Write the one-cell notebook of ``--floor`` into ``folder``; its path."""
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FLOOR_SOURCE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "one-slider.ipynb"
    nbformat.write(notebook, path)
    return path


def page_cpu(browser, notebook: Path, bundle: str, settle: float, kind: str = "dashboard", hold: float = 0.0) -> tuple:
    """(browser CPU s, server CPU s, seconds to interactive, browser CPU s by process kind) of one page.

    Each page on a fresh server, in a fresh browser context. ``kind``:

    - ``"dashboard"``: the dashboard, read ``settle`` s after it is interactive;
    - ``"blank"``: ``about:blank`` instead, read after ``hold`` s (a dashboard page's time to
      interactive) and ``settle`` s more: what Chromium spends on an empty page, the floor
      under every page measured this way;
    - ``"no-plotly"``: the dashboard with the figure widget's script replaced by a stub that
      draws nothing, read ``settle`` s after its controls and table are there: the page
      without plotly.js, what Voila's page and the widgets cost alone;
    - ``"floor"``: ``notebook`` is :func:`floor_notebook`'s, one slider and one table, read
      like ``"no-plotly"``: what Voila's page costs before any dashboard is on it.
    """
    previous = os.environ.get(BUNDLE_ENV)
    os.environ[BUNDLE_ENV] = bundle  # the server reads it, and passes it to its kernels
    try:
        process, url = start_server(notebook)
    finally:
        if previous is None:
            os.environ.pop(BUNDLE_ENV, None)
        else:
            os.environ[BUNDLE_ENV] = previous
    try:
        time.sleep(3.0)  # the server's own start is not the page's cost
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        if kind == "no-plotly":
            page.route("**/plotly-widget-*.js", lambda route: route.fulfill(
                status=200, content_type="text/javascript", body=NO_PLOTLY))
        browser_before, server_before = cpu_now(process.pid)
        processes_before = cpu_by_process(process.pid)
        start = time.perf_counter()
        if kind == "blank":
            page.goto("about:blank")
            page.wait_for_timeout(hold * 1000)
        else:
            page.goto(url, wait_until="commit", timeout=120_000)
            ready = CONTROLS_READY if kind in ("no-plotly", "floor") else READY
            page.wait_for_function(ready, arg=1, polling=50, timeout=120_000)
        interactive = time.perf_counter() - start
        page.wait_for_timeout(settle * 1000)
        browser_after, server_after = cpu_now(process.pid)
        kinds = by_kind(processes_before, cpu_by_process(process.pid))
        context.close()
        return browser_after - browser_before, server_after - server_before, interactive, kinds
    finally:
        stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3, help="pages per script, each on a fresh server (default 3)")
    parser.add_argument("--bundle", choices=("both", "full", "partial"), default="both")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after interactive before reading (3)")
    parser.add_argument("--blank", action="store_true",
                        help="also read an empty page (about:blank) opened the same way, as long as a dashboard page")
    parser.add_argument("--without-plotly", action="store_true",
                        help="also read the dashboard with a stub for the figure widget's script (no plotly.js)")
    parser.add_argument("--floor", action="store_true",
                        help="also read a Voila page holding one slider and one table, served the same way")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    chromium = chromium_path()
    if not chromium:
        return 2
    from playwright.sync_api import sync_playwright

    report = Report("bench_page", args.json)
    report.say(f"machine: {machine()}, morph {morph.__version__}; load average before: {load_average()}")
    bundles = ["full", "partial"] if args.bundle == "both" else [args.bundle]
    results: dict[str, list[tuple]] = {name: [] for name in bundles}
    blanks: list[tuple] = []
    stubbed: list[tuple] = []
    floors: list[tuple] = []
    notebook = dashboard_notebook()
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        floor = floor_notebook(Path(folder)) if args.floor else None
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for _ in range(args.pages):  # interleaved
            for name in bundles:
                results[name].append(page_cpu(browser, notebook, name, args.settle))
            if args.blank:  # as long as the page before it took to become interactive
                blanks.append(page_cpu(browser, notebook, bundles[-1], args.settle, "blank",
                                       hold=results[bundles[-1]][-1][2]))
            if args.without_plotly:
                stubbed.append(page_cpu(browser, notebook, bundles[-1], args.settle, "no-plotly"))
            if floor is not None:
                floors.append(page_cpu(browser, floor, bundles[-1], args.settle, "floor"))
        browser.close()
    for name, runs in results.items():
        browser_cpu = statistics.median(r[0] for r in runs)
        server_cpu = statistics.median(r[1] for r in runs)
        interactive = statistics.median(r[2] for r in runs)
        label = "plotly's full script" if name == "full" else "Morph's partial build"
        if name == "partial":
            report.target("browser CPU per page, partial build, median", browser_cpu, 2.0, "s")
        else:
            report.figure("browser CPU per page, full plotly.js, median", browser_cpu, "s")
        report.figure(f"server CPU per page, {name}, median", server_cpu, "s")
        report.figure(f"page to interactive, {name}, median", interactive, "s")
        report.say(f"{label}: browser {browser_cpu:.2f} CPU s per page "
                   f"({', '.join(f'{r[0]:.2f}' for r in runs)}), server {server_cpu:.2f} CPU s "
                   f"({', '.join(f'{r[1]:.2f}' for r in runs)}), interactive after {interactive:.2f} s"
                   + (" (target < 2.0 CPU s in the browser)" if name == "partial" else ""))
        report.say("  by process, median: " + ", ".join(
            f"{kind} {statistics.median(r[3].get(kind, 0.0) for r in runs):.2f} s" for kind in runs[-1][3]))
    comparisons = (("browser CPU per page without plotly.js, median",
                    "the same page with a stub for the figure's script (no plotly.js)", stubbed),
                   ("browser CPU of a Voila page with one slider and one table, median",
                    "a Voila page with one slider and one table, served the same way", floors),
                   ("browser CPU of an empty page opened the same way, median",
                    "an empty page (about:blank) in a fresh context, read after as long", blanks))
    for figure, description, pages in comparisons:
        if pages:
            cpu = statistics.median(b[0] for b in pages)
            report.figure(figure, cpu, "s")
            report.say(f"{description}: {cpu:.2f} CPU s ({', '.join(f'{b[0]:.2f}' for b in pages)}); by process: "
                       + ", ".join(f"{kind} {spent:.2f} s" for kind, spent in pages[-1][3].items()))
    report.say(f"load average after: {load_average()}")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
