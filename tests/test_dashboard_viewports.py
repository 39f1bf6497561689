"""The dashboard reads at every size: a desktop, a small laptop, a phone (real Chromium, under Voila).

At each viewport: no two text labels of the plot overlap (boxes read from the DOM), the page
does not scroll sideways, every visible control shows its whole label and value, and at
1024x768 the plot starts within the first screen. On a phone the essential controls stay
on screen while the page scrolls to the plot (and still work there); on a desktop they
scroll with it. A screenshot of each viewport is kept in ``$MORPH_ARTIFACTS``.
"""

from __future__ import annotations

import pytest

from conftest import artifacts_dir

pytestmark = pytest.mark.browser

VIEWPORTS = [(1400, 1000), (1024, 768), (390, 844)]

# Settled: the figure has been laid out for its box (the kernel heard the box's width and
# answered with a figure of that width), and the labels are drawn.
SETTLED = """() => {
  const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
  const box = document.querySelector('.morph-dashboard .morph-figure-box');
  if (!(gd && gd._fullLayout && gd._fullData && gd._fullData.length && box)) return false;
  return Math.abs(gd._fullLayout.width - box.clientWidth) <= 8
      && gd.querySelectorAll('.annotation-text').length >= 4;
}"""

# Every piece of text plotly drew: annotations (titles, labels, the budget), point text,
# axis titles, tick labels, the colour bar. Boxes in page pixels.
TEXT_BOXES = """() => {
  const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
  const selector = ['.annotation-text', '.textpoint text', '.xtitle', '.ytitle', '.x2title', '.y2title',
                    '.xtick text', '.ytick text', '.x2tick text', '.y2tick text', '.cbtitle text', '.cbaxis text'].join(',');
  return Array.from(gd.querySelectorAll(selector))
    .filter(e => e.textContent.trim() && getComputedStyle(e).display !== 'none' && e.getAttribute('opacity') !== '0')
    .map(e => { const r = e.getBoundingClientRect();
                return {text: e.textContent, x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; })
    .filter(b => b.x1 - b.x0 > 0 && b.y1 - b.y0 > 0);
}"""

# Every visible control's label and value: text that does not fit its box is cut off.
CLIPPED_CONTROLS = """() => {
  const visible = e => e.offsetParent !== null && e.getBoundingClientRect().width > 0;
  const canvas = document.createElement('canvas').getContext('2d');
  const out = [];
  const root = document.querySelector('.morph-dashboard .morph-controls');
  for (const e of root.querySelectorAll('.widget-label, .widget-readout, .morph-readout, .widget-toggle-button, .p-Accordion-title, .lm-AccordionPanel-title, .jupyter-widget-Collapse-header')) {
    if (!visible(e)) continue;
    if (e.scrollWidth > e.clientWidth + 1) out.push(`${e.className}: "${e.textContent}" ${e.scrollWidth} > ${e.clientWidth}`);
  }
  for (const s of root.querySelectorAll('select')) {
    if (!visible(s)) continue;
    const style = getComputedStyle(s);
    canvas.font = `${style.fontSize} ${style.fontFamily}`;
    const text = s.options[s.selectedIndex].text;
    const room = s.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (canvas.measureText(text).width > room) out.push(`select: "${text}" ${canvas.measureText(text).width} > ${room}`);
  }
  for (const e of root.querySelectorAll('.widget-label, .widget-readout, .morph-readout, select, .widget-toggle-button')) {
    if (!visible(e)) continue;
    const r = e.getBoundingClientRect();
    if (r.right > window.innerWidth + 1 || r.left < -1) out.push(`outside the screen: "${e.textContent.slice(0, 40)}"`);
  }
  return out;
}"""


# The widths of everything that could scroll the page sideways: the document and, in
# Voila's lab template, the panel that scrolls the notebook (an ancestor of the dashboard).
PAGE_WIDTHS = """() => {
  const out = [[document.scrollingElement.scrollWidth, window.innerWidth]];
  for (let e = document.querySelector('.morph-dashboard'); e; e = e.parentElement) {
    const overflow = getComputedStyle(e).overflowX;
    if (overflow === 'auto' || overflow === 'scroll') out.push([e.scrollWidth, e.clientWidth]);
  }
  return out;
}"""

# The visible parts of the controls (labels, values, menus, buttons), as boxes: none may cover another.
CONTROL_BOXES = """() => {
  const root = document.querySelector('.morph-dashboard .morph-controls');
  return Array.from(root.querySelectorAll('.widget-label, .widget-readout, .morph-readout, select, .widget-toggle-button, .noUi-target'))
    .filter(e => e.offsetParent !== null && e.getBoundingClientRect().width > 0 && e.textContent !== undefined)
    .map(e => { const r = e.getBoundingClientRect();
                return {text: (e.textContent || e.className).slice(0, 40), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; })
    .filter(b => b.x1 - b.x0 > 0 && b.y1 - b.y0 > 0);
}"""


def overlapping(boxes: list[dict], tolerance: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of boxes that overlap by more than ``tolerance`` pixels each way (a shared edge is not an overlap)."""
    pairs = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if (min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > tolerance
                    and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > tolerance):
                pairs.append((a["text"], b["text"]))
    return pairs


def test_overlap_helper_counts_only_real_overlaps():
    a = {"text": "a", "x0": 0, "y0": 0, "x1": 10, "y1": 10}
    assert overlapping([a, {"text": "b", "x0": 10, "y0": 0, "x1": 20, "y1": 10}]) == []
    assert overlapping([a, {"text": "c", "x0": 5, "y0": 5, "x1": 20, "y1": 20}]) == [("a", "c")]


def settled_page(browser, url: str, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(url)
    page.wait_for_function(SETTLED, polling=100)
    page.wait_for_timeout(300)  # plotly draws annotations after the relayout message
    return context, page


def settle_at(page, width: int, height: int) -> None:
    """Resize the window and wait until the kernel has answered with a figure of the new width."""
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function(SETTLED, polling=100)
    page.wait_for_timeout(300)  # plotly draws annotations after the relayout message


def check_reads(page, width: int, height: int) -> None:
    """At this size: the plot's text and the controls (folded and opened) neither overlap nor clip."""
    boxes = page.evaluate(TEXT_BOXES)
    texts = [b["text"] for b in boxes]
    assert any(t.startswith("1: ") for t in texts), texts  # the best shape is named on the plot
    assert overlapping(boxes) == [], (width, height)
    assert all(scroll <= client + 1 for scroll, client in page.evaluate(PAGE_WIDTHS)), page.evaluate(PAGE_WIDTHS)
    assert page.evaluate(CLIPPED_CONTROLS) == []
    assert overlapping(page.evaluate(CONTROL_BOXES)) == []
    # The advanced sections open without clipping either: the mode toggle, the menus, the readouts.
    # (An accordion shows one section at a time.)
    for title, shown in (("Advanced: candidates and training", ".widget-toggle-button"),
                         ("Advanced: serving", ".widget-dropdown select >> nth=-1")):
        page.click(f"text={title}")
        page.locator(f".morph-controls {shown}").first.wait_for(state="visible")
        assert page.evaluate(CLIPPED_CONTROLS) == []
        assert overlapping(page.evaluate(CONTROL_BOXES)) == []
        assert all(scroll <= client + 1 for scroll, client in page.evaluate(PAGE_WIDTHS))
    page.click("text=Advanced: serving")  # fold it again for the plot-position check
    page.locator(".morph-controls .widget-toggle-button").first.wait_for(state="hidden")
    if (width, height) == (1024, 768):
        top = page.evaluate("() => document.querySelector('.morph-dashboard .js-plotly-plot')"
                            ".getBoundingClientRect().top + window.scrollY")
        assert top < height


def screenshot(page, width: int, name: str) -> None:
    # The notebook scrolls inside Voila's panel, not the document: grow the window to the
    # page's height (same width, same layout) so the screenshot shows all of it.
    full = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll('.lm-BoxPanel-child, body'), e => e.scrollHeight))")
    page.set_viewport_size({"width": width, "height": min(int(full), 6000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("query", ["", "top_k=20&shapes=grid&params_min=5e8&params_max=3e9"])
def test_dashboard_reads_at_every_size(browser, voila_url, query):
    # One page, opened at the first size and resized to the others, as a window is: each size waits
    # for the kernel's figure of that width, so the labels are placed for it, not carried over.
    context, page = settled_page(browser, voila_url("dashboard.ipynb", query), *VIEWPORTS[0])
    try:
        for i, (width, height) in enumerate(VIEWPORTS):
            if i:
                settle_at(page, width, height)
            try:
                check_reads(page, width, height)
            finally:
                screenshot(page, width, f"dashboard-{width}x{height}" + ("-grid" if query else ""))
    finally:
        context.close()


def test_a_tour_link_opens_its_step(page, voila_url):
    page.goto(voila_url("dashboard.ipynb"))
    page.wait_for_function(SETTLED, polling=100)
    page.click("summary:has-text('Guided tour')")
    page.click("a.morph-tour-link:has-text('The aspect-ratio penalty')")
    page.wait_for_url("**/dashboard.ipynb?latency=1&top_k=5")
    page.wait_for_function(SETTLED, polling=100)
    labels = page.evaluate("() => document.querySelector('.morph-dashboard .js-plotly-plot')._fullData"
                           ".find(t => t.name === 'selected (top k)').text")
    assert labels[0] == "1: 4x4608"


# Where things are on the screen (viewport pixels): the essential controls, the latency
# budget's slider, the "Choose" heading just above them in the page, and the frontier's
# plot area (the upper plot's drag box when stacked).
SCREEN = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; };
  const root = document.querySelector('.morph-dashboard');
  const essentials = root.querySelector('.morph-essentials');
  const slider = Array.from(essentials.querySelectorAll('.widget-slider'))
    .find(s => s.querySelector('label').textContent.startsWith('Latency budget'));
  const s = box(slider), hit = document.elementFromPoint((s.x0 + s.x1) / 2, (s.y0 + s.y1) / 2);
  return {essentials: box(essentials), slider: s, heading: box(essentials.previousElementSibling),
          frontier: box(root.querySelector('.js-plotly-plot .draglayer .xy .nsewdrag')),
          position: getComputedStyle(essentials).position, controls: getComputedStyle(root.querySelector('.morph-controls')).position,
          covered: !(hit && hit.closest('.morph-essentials') === essentials)};  // off screen or under something else
}"""

# Scrolls the page (in Voila's lab template: the panel around the notebook, not the document) by dy pixels.
SCROLL_BY = """(dy) => {
  let e = document.querySelector('.morph-dashboard').parentElement;
  while (e && !(e.scrollHeight > e.clientHeight && ['auto', 'scroll'].includes(getComputedStyle(e).overflowY))) e = e.parentElement;
  (e || document.scrollingElement).scrollBy(0, dy);
}"""

# At most this share of a phone's screen may stay covered by the essentials (the rest is the plot's).
STICKY_SHARE = 0.4


def inside(box: dict, width: int, height: int) -> bool:
    return box["x0"] >= 0 and box["y0"] >= 0 and box["x1"] <= width and box["y1"] <= height


def test_essentials_stay_in_view_on_a_phone(browser, voila_url):
    width, height = 390, 844
    context, page = settled_page(browser, voila_url("dashboard.ipynb"), width, height)
    try:
        start = page.evaluate(SCREEN)
        assert start["position"] == "sticky"
        assert start["essentials"]["y1"] - start["essentials"]["y0"] < STICKY_SHARE * height
        # Scroll down until the frontier's plot sits just below the essentials' block.
        block = start["essentials"]["y1"] - start["essentials"]["y0"]
        page.evaluate(SCROLL_BY, start["frontier"]["y0"] - block - 16)
        page.wait_for_timeout(200)
        screen = page.evaluate(SCREEN)
        assert screen["heading"]["y1"] < 0  # the page did scroll past the controls...
        assert inside(screen["slider"], width, height), screen  # ...and the latency budget stayed on screen,
        assert not screen["covered"]  # on top of the plot,
        assert screen["essentials"]["y1"] - screen["essentials"]["y0"] < STICKY_SHARE * height
        assert screen["essentials"]["y1"] <= screen["frontier"]["y0"] + 1  # with the whole frontier in view below it.
        assert inside(screen["frontier"], width, height), screen
        page.screenshot(path=str(artifacts_dir() / f"dashboard-{width}x{height}-scrolled.png"))
        # Moving the budget from there redraws the frontier's plot without scrolling back.
        readout = page.locator(".morph-essentials .widget-slider", has=page.locator("label", has_text="Latency budget"))
        before = readout.locator(".widget-readout").inner_text()
        readout.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowLeft")  # 2.00 s -> 1.95 s: Morph-1B (1.96 s) leaves the selection
        page.wait_for_function("() => document.querySelector('.morph-dashboard .js-plotly-plot')._fullLayout.shapes[0].x0 < 2.0",
                               polling=50)
        assert readout.locator(".widget-readout").inner_text() != before
        page.wait_for_function(
            """() => !document.querySelector('.morph-dashboard .js-plotly-plot')._fullData
                      .find(t => t.name === 'selected (top k)').text.some(t => t.endsWith('12x3072'))""", polling=50)
        after = page.evaluate(SCREEN)
        assert inside(after["slider"], width, height) and inside(after["frontier"], width, height), after
        # All the way down at the table, the budget is still at hand.
        page.evaluate(SCROLL_BY, 100_000)
        page.wait_for_timeout(200)
        bottom = page.evaluate(SCREEN)
        assert inside(bottom["slider"], width, height) and not bottom["covered"], bottom
        assert page.locator(".morph-table").bounding_box()["y"] < height
    finally:
        context.close()


def test_controls_scroll_with_the_page_when_wide(browser, voila_url):
    context, page = settled_page(browser, voila_url("dashboard.ipynb"), 1400, 1000)
    try:
        start = page.evaluate(SCREEN)
        assert start["position"] != "sticky" and start["controls"] != "sticky"
        page.evaluate(SCROLL_BY, 300)
        page.wait_for_timeout(200)
        moved = page.evaluate(SCREEN)
        scrolled = start["frontier"]["y0"] - moved["frontier"]["y0"]
        assert scrolled > 100  # the page is long enough to scroll
        # The controls moved with the page, exactly as far as the plot did (0.5 px: sub-pixel layout).
        assert start["slider"]["y0"] - moved["slider"]["y0"] == pytest.approx(scrolled, abs=0.5)
    finally:
        context.close()


def test_the_ranked_table_reads_without_sideways_scrolling_at_1280(browser, voila_url):
    context, page = settled_page(browser, voila_url("dashboard.ipynb", ""), 1280, 800)
    try:
        widths = page.evaluate("() => Array.from(document.querySelectorAll('.morph-dashboard .morph-table'),"
                               " e => [e.scrollWidth, e.clientWidth])")
        assert widths and all(scroll <= client + 1 for scroll, client in widths), widths
    finally:
        context.close()
