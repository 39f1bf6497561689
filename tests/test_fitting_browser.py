"""The fitting notebook in a real browser: a bad upload shows its message and the page keeps working."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from morph import preset

pytestmark = pytest.mark.browser

# jupyterlab-plotly draws a static figure, then caches a PNG of it by writing
# to its output model (`setData`), which Voila keeps read-only. The figure is
# drawn; only that snapshot fails. The dashboard uses FigureWidgets only and
# shows no such error.
_PLOTLY_SNAPSHOT = "page error: r.setData is not a function"


def _good_csv() -> bytes:
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(3e7, 3e9, 6), 3)
    D = np.tile([1e9, 1e10, 1e11], 6)
    loss = preset("besiroglu2024").predict(N, D) * np.exp(rng.normal(0, 0.003, N.size))
    rows = "\n".join(f"{n:.6g},{d:.6g},{l:.5f}" for n, d, l in zip(N, D, loss))
    return f"N,D,loss\n{rows}\n".encode()


def _upload(page, name: str, content: bytes) -> None:
    # ipywidgets' FileUpload creates its file input on click, as for a user.
    with page.expect_file_chooser() as chooser:
        page.click(".widget-upload")
    chooser.value.set_files(files=[{"name": name, "mimeType": "text/csv", "buffer": content}])


def _open_the_fitting_lesson(page, url: str) -> None:
    """Open the lesson; reload once, with a warning, if ipywidgets' widget-model race lost the upload button."""
    page.goto(url)
    page.wait_for_selector("#loading", state="detached", timeout=120_000)  # the whole notebook has run
    try:
        page.wait_for_selector(".widget-upload", timeout=30_000)
    except PlaywrightTimeout:
        # A view rendered before its model arrived fails for good (jupyter-widgets/ipywidgets#4026).
        if not any("widget model not found" in e for e in page.console_errors):
            raise
        warnings.warn("03-fit-your-runs.ipynb: the upload button was lost to the widget-model race; reloaded")
        page.console_errors.clear()
        page.reload()
        page.wait_for_selector(".widget-upload", timeout=120_000)


def test_bad_upload_shows_an_error_and_a_good_one_then_fits(page, voila_url):
    _open_the_fitting_lesson(page, voila_url("03-fit-your-runs.ipynb"))
    page.wait_for_selector("text=[[Fit]]", timeout=120_000)  # the app opens on the paper's runs, fitted

    _upload(page, "broken.csv", b"N,D\n1e8,2e9\n")
    error = page.wait_for_selector(".morph-error", timeout=60_000)
    assert "missing the column(s) loss" in error.inner_text()
    assert page.locator(".jp-OutputArea-output pre:has-text('Traceback')").count() == 0

    _upload(page, "not-utf8.csv", b"N,D,loss\n1e8,2e9,3\xe9\n")
    page.wait_for_selector(".morph-error:has-text('not UTF-8 text')", timeout=60_000)

    # Fit now refits the table in use and says it is not the failed upload.
    page.click("button:has-text('Fit')")
    page.wait_for_selector(".morph-warning:has-text('not the last upload')", timeout=60_000)

    _upload(page, "mine.csv", _good_csv())
    page.wait_for_selector(".morph-warning", state="detached", timeout=60_000)
    # The upload button reads as its label, with no file count: "(0)" after every upload otherwise.
    label = page.evaluate("() => getComputedStyle(document.querySelector('.morph-upload'), '::after').content")
    assert label == '"Upload runs (.csv)"'
    assert page.evaluate("() => getComputedStyle(document.querySelector('.morph-upload')).fontSize") == "0px"
    page.wait_for_selector("text=18 of 18 points", timeout=60_000)
    drawn = page.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).filter(g => (g._fullData || []).length > 0).length"
    )
    assert drawn >= 2  # the app's figure and the notebook's static diagnostics figure
    assert [e for e in page.console_errors if e != _PLOTLY_SNAPSHOT] == []
