"""The dashboard in a real browser: Voila renders notebooks/dashboard.ipynb, Chromium drives it."""

from __future__ import annotations

import urllib.parse

import pandas as pd
import pytest

from morph.app.dashboard import Dashboard

pytestmark = pytest.mark.browser

NOTEBOOK = "dashboard.ipynb"
READY = """() => {
  const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
  return !!(document.querySelector('.widget-slider .noUi-handle') && gd && gd._fullData
            && gd._fullData.length && gd._fullData[0]._length > 0);
}"""
PLOT = """() => {
  const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
  const traces = {};
  for (const t of gd._fullData) {
    traces[t.name] = {x: Array.from(t.x || []), y: Array.from(t.y || []),
                      text: Array.from(t.text || []), visible: t.visible};
  }
  return {traces, target: gd._fullLayout.shapes[0].x0};
}"""


def open_dashboard(page, url: str) -> dict:
    page.goto(url)
    page.wait_for_function(READY, polling=100)
    return page.evaluate(PLOT)


def selected(plot: dict) -> list[str]:
    return plot["traces"]["selected (top k)"]["text"]


def slider(page, description: str):
    return page.locator(".widget-slider", has=page.locator("label", has_text=description))


def wait_for_new_selection(page, before: list[str]) -> dict:
    page.wait_for_function(
        """(before) => {
          const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
          const t = gd._fullData.find(t => t.name === 'selected (top k)');
          return JSON.stringify(Array.from(t.text)) !== JSON.stringify(before);
        }""",
        arg=before, polling=50,
    )
    return page.evaluate(PLOT)


def assert_no_python_errors(page) -> None:
    errors = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], .jp-RenderedText[data-mime-type*='error']"
    )
    assert errors.count() == 0, errors.all_inner_texts()
    body = page.inner_text("body")
    assert "Traceback" not in body and "There was an error when executing cell" not in body
    assert page.console_errors == []


def test_dashboard_loads_with_the_paper_choice_and_no_errors(page, voila_url):
    plot = open_dashboard(page, voila_url(NOTEBOOK))
    assert_no_python_errors(page)
    # The defaults reproduce the paper: Morph-1B (12 x 3072) first, under the 2 s target.
    assert selected(plot)[0] == "1: 12x3072"
    assert plot["target"] == pytest.approx(2.0)
    morph_1b = plot["traces"]["selected (top k)"]
    assert morph_1b["x"][0] == pytest.approx(1.96, rel=0.01)
    # The published models sit at their measured latencies, Morph-1B at 1.96 s and Open-LM-1B at 3.61 s.
    published = plot["traces"]["published 1B models (measured latency, measured accuracy)"]
    assert published["visible"] is True
    assert {round(x, 2) for x in published["x"]} >= {1.96, 3.61}
    first_row = page.locator(".morph-table tbody tr").first.locator("td").all_inner_texts()
    assert first_row[:3] == ["1", "1B_v8", "12x3072"]
    assert page.locator(".morph-messages .morph-error, .morph-messages .morph-warning").count() == 0
    # Every drawn point of the frontier is also a candidate.
    cloud = plot["traces"]["candidates"]
    assert len(cloud["x"]) == 15 and set(plot["traces"]["Pareto frontier"]["x"]) <= set(cloud["x"])


def test_latency_slider_changes_the_selection_plot_and_address(page, voila_url):
    frames: list[bytes] = []  # what the page sends the kernel
    page.on("websocket", lambda socket: socket.on(
        "framesent", lambda payload: frames.append(payload.encode() if isinstance(payload, str) else payload)))
    before = open_dashboard(page, voila_url(NOTEBOOK))
    page.wait_for_timeout(300)  # what the first draw sent has gone
    first = len(frames)
    handle = slider(page, "Latency budget (s)").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowLeft")  # one step of 0.01 decade: 2.0 s -> 1.95 s, Morph-1B's 1.96 s no longer fits
    after = wait_for_new_selection(page, selected(before))
    # Morph's figure widget does not report plotly.js's computed defaults back after an edit
    # (tools/plotly-widget/README.md): what a move sends the kernel is the control's change.
    page.wait_for_timeout(300)  # plotly's view would report at once, right after the redraw
    assert any(b"comm_msg" in frame and b'"value"' in frame for frame in frames[first:])
    assert not any(b"Delta" in frame for frame in frames)  # no _js2py_traceDeltas, no layout delta
    assert after["target"] < 2.0
    assert "12x3072" not in " ".join(selected(after))
    assert all(x <= after["target"] for x in after["traces"]["selected (top k)"]["x"])
    # Typing a value in the readout works too, and the address follows the controls.
    readout = slider(page, "Latency budget (s)").locator(".widget-readout")
    readout.click()
    readout.fill("3")
    readout.press("Enter")
    third = wait_for_new_selection(page, selected(after))
    assert third["target"] == pytest.approx(3.0)
    page.wait_for_function("() => window.location.search.includes('latency=3')")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["latency"] == ["3"]
    expected = Dashboard.from_query("latency=3").selection.selected
    assert selected(third) == [f"{r}: {L}x{d}" for r, L, d in expected[["rank", "n_layers", "d_model"]].itertuples(index=False)]
    # An impossible target: one sentence at the top, the last good view stays, the control keeps 0.1.
    readout.click()
    readout.fill("0.1")
    readout.press("Enter")
    error = page.locator(".morph-messages .morph-error")
    error.wait_for()
    assert "no candidate meets the 0.1 s latency budget" in error.inner_text()
    assert page.evaluate(PLOT) == third
    assert readout.inner_text() == "0.100"
    page.wait_for_function("() => window.location.search.includes('latency=0.1')")
    assert_no_python_errors(page)


def test_the_budget_can_be_set_on_throughput_from_the_page(page, voila_url):
    before = open_dashboard(page, voila_url(NOTEBOOK))
    page.click("text=Advanced: serving")
    menu = page.locator(".widget-dropdown", has=page.locator("label", has_text="Budget on")).locator("select")
    menu.select_option(label="throughput (tokens/s), at least")
    # Morph-1B's 1.96 s for 256 tokens is 130.6 tokens/s: the floor becomes 130 and it stays first.
    floor = slider(page, "Throughput, at least (tokens/s)")
    floor.wait_for()
    page.wait_for_function("() => window.location.search.includes('metric=tokens_per_s')")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query) == {"latency": ["130"], "metric": ["tokens_per_s"]}
    page.wait_for_function(f"() => Math.abs(({PLOT})().target - 256 / 130) < 1e-9")
    retargeted = page.evaluate(PLOT)
    assert selected(retargeted)[0] == selected(before)[0]
    # A higher floor. The slider sits on a grid of 0.01 decade: 130 shows at 10**2.11, and one
    # arrow step up is 10**2.12 = 131.8, read as 132 tokens/s. Morph-1B (130.6) no longer meets it.
    # (The selection before the key is read before it is pressed: the answer can come back first.)
    floor.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    after = wait_for_new_selection(page, selected(retargeted))
    assert "12x3072" not in " ".join(selected(after))
    page.wait_for_function("() => window.location.search.includes('latency=132')")
    assert all(256 / x >= 132 for x in after["traces"]["selected (top k)"]["x"])
    assert_no_python_errors(page)


# The dashboard figure's draws: its width when the page first sees it (drawn, or null), then
# the width of every draw after that.
COUNT_DRAWS = """
window.__morphDraws = {first: undefined, after: []};
new MutationObserver((_, observer) => {
  const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
  if (!gd || !gd.on) return;
  observer.disconnect();
  window.__morphDraws.first = gd._fullLayout ? gd._fullLayout.width : null;
  gd.on('plotly_afterplot', () => window.__morphDraws.after.push(gd._fullLayout.width));
}).observe(document, {subtree: true, childList: true});
"""


def test_the_figure_is_drawn_once_at_its_box_width(page, voila_url):
    # The kernel builds the figure for an assumed 900 px and lays it out again once the page
    # reports its box's width; the page holds the first draw for that layout (figure_loader.js).
    page.add_init_script(COUNT_DRAWS)
    open_dashboard(page, voila_url(NOTEBOOK))
    page.wait_for_timeout(1000)  # a second draw would follow the first within a round trip
    box = page.evaluate("() => document.querySelector('.morph-dashboard .morph-figure-box').clientWidth")
    assert box != 900  # the test's viewport: a width other than the assumed one
    draws = page.evaluate("() => window.__morphDraws")
    # Seen before its first draw ended, or just after it: one draw either way, at the box's width.
    assert (draws["first"], draws["after"]) in ((None, [box]), (box, [box]), (box, []))
    assert_no_python_errors(page)


def test_a_link_restores_its_settings(page, voila_url):
    query = "latency=3.0&top_k=5&hardware=h100-sxm"
    plot = open_dashboard(page, voila_url(NOTEBOOK, query))
    assert_no_python_errors(page)
    assert plot["target"] == pytest.approx(3.0)
    assert len(selected(plot)) == 5
    chosen = page.evaluate(
        "() => Array.from(document.querySelectorAll('select')).map(s => s.options[s.selectedIndex].text)"
    )
    assert [c.replace("\xa0", " ") for c in chosen].count("NVIDIA H100 SXM5 80GB") == 1
    assert slider(page, "Shapes to keep (top k)").locator(".widget-readout").inner_text() == "5"
    # The published A100 timings are hidden on other hardware, with a note saying why.
    assert plot["traces"]["published 1B models (measured latency, measured accuracy)"]["visible"] is False
    assert "shown only for the setting they were measured in" in page.inner_text(".morph-dashboard")
    expected = Dashboard.from_query(query).selection.selected
    assert plot["traces"]["selected (top k)"]["x"] == pytest.approx(expected["latency_s"].tolist(), rel=1e-6)
    # The address keeps the settings (in canonical form), and the share field shows the same link.
    kept = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert kept == {"latency": ["3"], "top_k": ["5"], "hardware": ["h100-sxm"]}
    assert page.input_value(".morph-link") == page.url


def test_a_malicious_link_is_ignored_and_nothing_is_injected(page, voila_url):
    query = (
        "latency=abc&top_k=10**9&params_max=1e300&"
        + urllib.parse.urlencode({"<script>window.__pwned=1</script>": "1", "hardware": "<img src=x onerror=window.__pwned=2>"})
    )
    plot = open_dashboard(page, voila_url(NOTEBOOK, query))
    assert_no_python_errors(page)
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("() => Array.from(document.scripts).some(s => s.textContent.includes('__pwned'))") is False
    warning = page.locator(".morph-messages .morph-warning")
    assert warning.count() == 1
    text = warning.inner_text()
    assert "latency='abc' is not a number" in text and "top_k='10**9' is not a number" in text
    assert "<script>window.__pwned=1</script>" in text  # shown as text, escaped in the HTML
    assert "params_max=1e+300 is outside" in text
    # What was valid applies (the largest model, clamped to 1e12 parameters); the rest is the default view.
    expected = Dashboard.from_query(query).selection.selected
    assert plot["traces"]["selected (top k)"]["x"] == pytest.approx(expected["latency_s"].tolist(), rel=1e-6)
    assert selected(plot)[0] == "1: 12x3072"
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query) == {"params_max": ["1000000000000"]}


def test_copy_link_and_csv_downloads(page, voila_url):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_dashboard(page, voila_url(NOTEBOOK, "top_k=2"))
    page.click(".morph-copy-link")
    page.wait_for_function("() => document.querySelector('.morph-copy-status').textContent.length > 0")
    link = page.input_value(".morph-link")
    assert link == page.url and "top_k=2" in link
    if page.inner_text(".morph-copy-status") == "Link copied.":
        assert page.evaluate("() => navigator.clipboard.readText()") == link
    for anchor, rows in ((".morph-download-selection", 2), (".morph-download-frontier", None)):
        with page.expect_download() as download:  # the kernel writes the table when it is asked
            page.click(anchor)
        name = "morph-selection.csv" if rows is not None else "morph-frontier.csv"
        assert download.value.suggested_filename == name
        with open(download.value.path(), encoding="utf-8") as file:
            text = file.read()
        assert text.startswith("# source: Morph dashboard\n# settings: top_k=2\n")
        frame = pd.read_csv(pd.io.common.StringIO(text), comment="#")
        assert {"label", "n_layers", "d_model", "loss", "latency_s"} <= set(frame.columns)
        if rows is not None:
            assert len(frame) == rows and frame["n_layers"].iloc[0] == 12 and frame["d_model"].iloc[0] == 3072
        else:
            assert frame["latency_s"].is_monotonic_increasing and frame["loss"].is_monotonic_decreasing


SCRIPT_PAYLOADS = (
    '"><script>window.__pwned="s"</script>',
    "<img src=x onerror=\"window.__pwned='i'\">",
    "javascript:window.__pwned='j'",
    "'-alert(1)-'",
)


def test_hostile_links_run_no_script_and_the_copied_link_is_clean(page, voila_url):
    """Theme, template and every setting carrying markup: no dialog, no injected element, a clean link."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    settings = ["mode", "shapes", "params_min", "params_max", "tokens", "flops", "latency", "hardware",
                "calibration", "stack", "batch", "input", "output", "dtype", "law", "top_k"]
    for payload in SCRIPT_PAYLOADS:
        pairs = [("theme", 'dark"><script>alert(5)</script>'), ("template", "reveal"), ("voila-template", "x"),
                 ("top_k", "2"), *((key, payload) for key in settings), (payload, "1")]
        # top_k=2 is valid and comes first: the later hostile top_k is reported and ignored.
        open_dashboard(page, voila_url(NOTEBOOK, urllib.parse.urlencode(pairs)))
        assert_no_python_errors(page)
        assert dialogs == []
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("img[src='x'], .reveal").count() == 0
        assert page.evaluate(
            "() => Array.from(document.scripts).some(s => /__pwned|alert\\(/.test(s.textContent))"
        ) is False
        # Lab template, light theme: the link chose neither.
        assert page.evaluate("() => document.body.dataset.jpThemeName || ''") in ("", "JupyterLab Light")
        page.click(".morph-copy-link")
        page.wait_for_function("() => document.querySelector('.morph-copy-status').textContent.length > 0")
        link = page.input_value(".morph-link")
        query = urllib.parse.parse_qs(urllib.parse.urlparse(link).query, keep_blank_values=True)
        assert query == {"top_k": ["2"]}, link  # only the dashboard's own, validated settings
        assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query) == {"top_k": ["2"]}


DECISION = """() => {
  const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
  const t = gd._fullData.find(t => t.name === 'selected (top k)');
  const pub = gd._fullData.find(t => t.name.startsWith('published 1B models'));
  return {
    x: Array.from(t.x), y: Array.from(t.y),
    errorX: t.error_x ? {visible: t.error_x.visible, array: Array.from(t.error_x.array || []),
                         minus: Array.from(t.error_x.arrayminus || [])} : null,
    errorY: t.error_y ? {visible: t.error_y.visible, array: Array.from(t.error_y.array || [])} : null,
    symbols: Array.isArray(t.marker.symbol) ? Array.from(t.marker.symbol) : [t.marker.symbol],
    best: Array.from(t.customdata || []).map(row => row[0]),
    bars: document.querySelectorAll('.morph-dashboard .js-plotly-plot g.errorbar').length,
    shading: gd._fullLayout.shapes.filter(s => s.name === "outside the law's runs")
                .map(s => ({x0: s.x0, x1: s.x1, fill: s.fillcolor, xref: s.xref})),
    drawnShading: document.querySelectorAll('.morph-dashboard .js-plotly-plot .layer-below .shapelayer path').length,
    publishedAxis: pub ? pub.yaxis : null,
  };
}"""


def test_bands_plausibly_best_shapes_and_out_of_range_shading_are_drawn(page, voila_url):
    open_dashboard(page, voila_url(NOTEBOOK))
    drawn = page.evaluate(DECISION)
    # Error bars on the kept shapes: the eager band's upper edge reaches the farthest published 24x2048 timing
    # from the fitted 3.61 s (2.54 s), widened by at most a twentieth in log.
    assert drawn["errorX"]["visible"] is True and drawn["errorY"]["visible"] is True
    for x, up in zip(drawn["x"], drawn["errorX"]["array"]):
        assert 3.61 / 2.54 <= (x + up) / x <= (3.61 / 2.54) ** 1.05
    assert all(v > 0 for v in drawn["errorY"]["array"]) and drawn["bars"] > 0
    # Stars: a probability of being best of at least 0.05; the table says so for each shape, with P(best).
    assert drawn["symbols"] == ["star" if p >= 0.05 else "circle" for p in drawn["best"]]
    header = page.locator(".morph-table thead th").all_inner_texts()
    column = next(k for k, name in enumerate(header) if name.startswith("plausibly best"))
    assert "P(best)" in header
    rows = page.locator(".morph-table tbody tr")
    assert [rows.nth(r).locator("td").nth(column).inner_text() for r in range(rows.count())] == [
        "yes" if p >= 0.05 else "no" for p in drawn["best"]]
    # Aspect ratios outside fit set B's runs (below 384 / 22 and above 384) are shaded, with a warning line.
    shading = drawn["shading"]
    assert len(shading) == 2 and all(s["xref"] == "x2" for s in shading)
    assert shading[0]["x1"] == pytest.approx(384 / 22) and shading[1]["x0"] == pytest.approx(384.0)
    assert drawn["drawnShading"] >= 2
    warning = page.locator(".morph-validity", has_text="aspect ratio outside")
    assert warning.count() == 1 and "extrapolation" in warning.inner_text()
    # Published models stay apart from predictions: their own axis, not the loss axis.
    assert drawn["publishedAxis"] == "y3"
    assert_no_python_errors(page)


def test_a_graph_captured_stack_link_shows_the_transfer_and_hides_the_published_timings(page, voila_url):
    plot = open_dashboard(page, voila_url(NOTEBOOK, "stack=cuda-graphs&hardware=h200"))
    published = plot["traces"]["published 1B models (measured latency, measured accuracy)"]
    assert published["visible"] is False
    lines = page.locator(".morph-validity").all_inner_texts()
    assert sum(line.startswith("TRANSFERRED:") for line in lines) == 1
    assert any(line.startswith("Serving stack cuda-graphs:") and "basis transfer" in line for line in lines)
    # Under graph capture the wider 12x3072 is no faster than 24x2048: latency follows the weights.
    expected = Dashboard.from_query("stack=cuda-graphs&hardware=h200").selection.selected
    assert selected(plot)[0] == f"1: {expected['n_layers'].iloc[0]}x{expected['d_model'].iloc[0]}"
    assert_no_python_errors(page)



def test_a_prior_the_answer_depends_on_is_the_first_note(page, voila_url):
    open_dashboard(page, voila_url(NOTEBOOK, "stack=cuda-graphs&latency=0.5"))
    expected = Dashboard.from_query("stack=cuda-graphs&latency=0.5").result.assessment.prior_dependence
    assert expected is not None
    first = page.locator(".morph-validity").first
    assert first.inner_text() == expected and "per-layer device cost" in expected
    assert "morph-prior-dependence" in (first.get_attribute("class") or "")
    assert first.evaluate("e => getComputedStyle(e).fontWeight") in ("700", "bold")
    assert_no_python_errors(page)
