"""The lessons under Voila, as a class sees them: results in place, answers hidden, reports aligned."""

from __future__ import annotations

import pytest

from conftest import artifacts_dir

pytestmark = pytest.mark.browser

LESSONS = ["01-scaling-laws.ipynb", "02-latency.ipynb", "03-fit-your-runs.ipynb", "04-reproduce-the-paper.ipynb",
           "05-speculative-decoding.ipynb"]

# For every "## " section heading: how many outputs the cells up to the next heading show.
SECTION_OUTPUTS = """() => {
  const cells = Array.from(document.querySelectorAll('.jp-Cell'));
  const out = [];
  let current = null;
  for (const cell of cells) {
    const heading = cell.querySelector('.jp-RenderedMarkdown h2');
    if (heading) { current = {title: heading.textContent.trim(), outputs: 0}; out.push(current); }
    if (current) current.outputs += Array.from(cell.querySelectorAll('.jp-OutputArea-output'))
      .filter(o => o.textContent.trim().length > 0 || o.querySelector('svg, canvas, .js-plotly-plot, table')).length;
  }
  return out;
}"""


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_renders_with_results_under_each_section(page, voila_url, name):
    page.set_default_timeout(240_000)
    page.goto(voila_url(name))
    page.wait_for_selector("text=Exercise 2.")  # the last cells: the whole notebook has run
    page.wait_for_timeout(500)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                          ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.all_inner_texts()
    assert "Traceback" not in page.inner_text("body")
    # Every numbered section shows something of its own (04 once put every result in one table at the end).
    sections = [s for s in page.evaluate(SECTION_OUTPUTS) if s["title"][:1].isdigit()]
    assert sections and all(s["outputs"] > 0 for s in sections), sections
    # Answers and solutions start hidden: predict first, then open.
    details = page.evaluate("() => Array.from(document.querySelectorAll('details')).map(d => d.open)")
    assert len(details) >= 3 and not any(details)
    # Fit reports keep their columns: a fixed-width font.
    for font in page.evaluate("() => Array.from(document.querySelectorAll('.morph-report'), e => getComputedStyle(e).fontFamily)"):
        assert "mono" in font.lower() or "consolas" in font.lower(), font
    page.screenshot(path=str(artifacts_dir() / f"voila-{name.removesuffix('.ipynb')}.png"), full_page=True)
