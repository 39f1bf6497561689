"""The dashboard in a browser: cold time to interactive, and slider to redrawn frontier.

Targets: a cold page (fresh server and kernel, empty browser cache) interactive
in under 6 s: sliders present and the frontier drawn (``_fullData`` not
empty); a move of the latency-target slider redrawn in under 80 ms (median
of 20 arrow-key presses; 90th percentile under 100 ms), timed in the page from
the key press to the ``plotly_afterplot`` event whose target rule has moved.
The kernel's share of a move is timed in process by ``bench_move.py``.

``--compare-layouts`` also times the design not taken: the same dashboard with
its two views in two FigureWidgets instead of one (each FigureWidget sends its
own ~5 MB of JavaScript to the page).

Needs Debian's ``chromium`` on the PATH. Run:
``python benchmarks/bench_dashboard.py [--cold 3] [--moves 20] [--compare-layouts] [--json]``.
Exits 1 when a target is missed, 2 without chromium; ``--json`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import morph
from _report import Report, chromium_path, machine
from morph.cli.serve import dashboard_notebook, voila_command

CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
READY = """(n) => {
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  return !!document.querySelector('.widget-slider .noUi-handle') && plots.length >= n
         && plots.every(gd => gd._fullData && gd._fullData.length && gd._fullData[0]._length > 0);
}"""
# Time each key press to the first redraw whose latency-target rule has moved.
TIMER = """() => {
  const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
  const bench = window.__morphBench = {start: null, rule: null, times: []};
  document.addEventListener('keydown', () => {
    bench.start = performance.now();
    bench.rule = gd._fullLayout.shapes[0].x0;
  }, true);
  gd.on('plotly_afterplot', () => {
    if (bench.start !== null && gd._fullLayout.shapes[0].x0 !== bench.rule) {
      bench.times.push(performance.now() - bench.start);
      bench.start = null;
    }
  });
}"""

# The design not taken: the dashboard's two views as two FigureWidgets.
SEPARATE_FIGURES = '''
import ipywidgets as widgets
import plotly.graph_objects as go
from morph.app.dashboard import Dashboard

board = Dashboard.from_query()
joint = board.figure


def panel(axis, suffix):
    traces = []
    for trace in joint.data:
        if (trace.xaxis or "x") == axis:
            spec = trace.to_plotly_json()
            spec.pop("type")
            traces.append(go.Scatter(spec).update(xaxis="x", yaxis="y"))
    layout = go.Layout(height=joint.layout.height, template=joint.layout.template, showlegend=False,
                       xaxis=joint.layout["xaxis" + suffix].to_plotly_json(),
                       yaxis=joint.layout["yaxis" + suffix].to_plotly_json())
    layout.xaxis.domain, layout.yaxis.domain, layout.xaxis.anchor, layout.yaxis.anchor = [0, 1], [0, 1], "y", "x"
    if axis == "x":
        layout.shapes = joint.layout.shapes
    return go.FigureWidget(data=traces, layout=layout)


left, right = panel("x", ""), panel("x2", "2")
children = list(board.widget.children)
children[children.index(joint)] = widgets.HBox([left, right])
# Never shown: keep their models (and the joint figure's 5 MB of JavaScript) out of the page.
board.widget.close()
joint.close()
widgets.VBox(children)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(target: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(voila_command(target, port=port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the server is up; its first page (and kernel) is what we time
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("Voila did not start within 60 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cold_load(browser, notebook: Path, figures: int = 1) -> float:
    """Seconds from the request of a fresh server's page to sliders and drawn plots (new browser context)."""
    process, url = start_server(notebook)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=120_000)
        page.wait_for_function(READY, arg=figures, polling=20, timeout=120_000)
        elapsed = time.perf_counter() - start
        context.close()
        return elapsed
    finally:
        stop(process)


def slider_moves(browser, notebook: Path, moves: int, pause_ms: int) -> list[float]:
    """Milliseconds from each latency-target key press to the redrawn frontier.

    ``pause_ms`` between presses lets each move finish before the next: one
    move at a time, as a person presses keys. With 0 the presses queue.
    """
    process, url = start_server(notebook)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url, timeout=120_000)
        page.wait_for_function(READY, arg=1, polling=50, timeout=120_000)
        page.evaluate(TIMER)
        handle = page.locator(".widget-slider", has=page.locator("label", has_text="Latency budget (s)"))
        handle.locator(".noUi-handle").focus()
        for i in range(moves):
            page.wait_for_timeout(pause_ms)
            # 2.0 s -> 1.95 s and back: Morph-1B (1.96 s) leaves and rejoins the selection each time.
            page.keyboard.press("ArrowLeft" if i % 2 == 0 else "ArrowRight")
            page.wait_for_function(f"() => window.__morphBench.times.length > {i}", polling=10, timeout=30_000)
        times = page.evaluate("() => window.__morphBench.times")
        context.close()
        return [float(t) for t in times]
    finally:
        stop(process)


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=3, help="cold loads, each on a fresh server (default 3)")
    parser.add_argument("--moves", type=int, default=20, help="slider moves to time (default 20)")
    parser.add_argument("--pause-ms", type=int, default=300, help="pause before each move (default 300)")
    parser.add_argument("--compare-layouts", action="store_true", help="also time two FigureWidgets instead of one")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    chromium = chromium_path()
    if not chromium:
        return 2
    from playwright.sync_api import sync_playwright

    report = Report("bench_dashboard", args.json)
    report.say(f"machine: {machine()}, morph {morph.__version__}; load average before: {load_average()}")
    notebook = dashboard_notebook()
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as scratch:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        cold = [cold_load(browser, notebook) for _ in range(args.cold)]
        report.target("cold load to interactive, median", statistics.median(cold), 6.0, "s")
        report.say(f"cold load to interactive: median {statistics.median(cold):.2f} s over {len(cold)} fresh servers "
                   f"({', '.join(f'{t:.2f}' for t in cold)}) (target < 6 s)")
        if args.compare_layouts:
            separate = Path(scratch) / "dashboard.ipynb"
            payload = json.loads(notebook.read_text())
            payload["cells"][-1]["source"] = SEPARATE_FIGURES
            separate.write_text(json.dumps(payload))
            layouts = {"one FigureWidget, two subplots": (notebook, 1), "two FigureWidgets": (separate, 2)}
            results: dict[str, list[float]] = {name: [] for name in layouts}
            for _ in range(args.cold):  # interleaved, so load from other processes hits both alike
                for name, (path, figures) in layouts.items():
                    results[name].append(cold_load(browser, path, figures))
            for name, times in results.items():
                report.figure(f"cold load, {name}, median", statistics.median(times), "s")
                report.say(f"  {name}: median {statistics.median(times):.2f} s "
                           f"({', '.join(f'{t:.2f}' for t in times)})")
        for pause, what in ((args.pause_ms, f"one at a time ({args.pause_ms} ms apart)"), (0, "back to back")):
            moves = sorted(slider_moves(browser, notebook, args.moves, pause))
            median, p90 = statistics.median(moves), moves[int(0.9 * (len(moves) - 1))]
            if pause:
                report.target("slider to redrawn frontier, one at a time, median", median, 80.0, "ms")
                report.target("slider to redrawn frontier, one at a time, p90", p90, 100.0, "ms")
            else:
                report.figure("slider to redrawn frontier, back to back, median", median, "ms")
                report.figure("slider to redrawn frontier, back to back, p90", p90, "ms")
            report.say(f"latency slider to redrawn frontier, {what}: median {median:.0f} ms, "
                       f"90th percentile {p90:.0f} ms, worst {moves[-1]:.0f} ms "
                       f"over {len(moves)} moves" + (" (targets: median < 80 ms, 90th percentile < 100 ms)" if pause else ""))
        browser.close()
    report.say(f"load average after: {load_average()}")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
