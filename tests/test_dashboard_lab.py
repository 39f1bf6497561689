"""The dashboard inside a JupyterLab cell, 1024 px wide: the same reading checks as under Voila."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Iterator

import pytest

from conftest import NOTEBOOKS, ROOT, artifacts_dir, free_port, stop, wait_for_http
from test_dashboard_viewports import CLIPPED_CONTROLS, CONTROL_BOXES, SETTLED, TEXT_BOXES, overlapping

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory, browser) -> Iterator[str]:
    """A JupyterLab server (no token, loopback only) over a copy of the dashboard notebook."""
    home = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOKS / "dashboard.ipynb", home / "dashboard.ipynb")
    port = free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
        f"--ServerApp.root_dir={home}", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses to start as root without it
    with open(home / "lab.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(base + "api", process=process, timeout=120)
        yield base
    finally:
        stop(process)


def test_the_documented_lab_path_renders_the_dashboard(lab_server):
    # `make lab` serves notebooks/ as the lab's root, as this server does: the README's path.
    with urllib.request.urlopen(lab_server + "voila/render/dashboard.ipynb", timeout=120) as response:
        assert response.status == 200 and "morph" in response.read().decode().lower()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(lab_server + "voila/render/notebooks/dashboard.ipynb", timeout=60)
    assert missing.value.code == 404


def test_dashboard_reads_in_a_jupyterlab_cell(browser, lab_server):
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(int(os.environ.get('MORPH_LAB_TIMEOUT_MS', '120000')))
    try:
        page.goto(lab_server + "lab/tree/dashboard.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell")
        # Wait for the kernel, then run every cell from the keyboard, as a reader would.
        page.wait_for_function("() => /\\| Idle/.test(document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar')"
                               "?.innerText || '')", polling=200)
        page.click(".jp-Notebook .jp-Cell")
        page.keyboard.press("Escape")
        for _ in range(2):
            page.keyboard.press("Shift+Enter")
        page.wait_for_function(SETTLED, polling=200)
        page.wait_for_timeout(500)
        boxes = page.evaluate(TEXT_BOXES)
        assert any(b["text"].startswith("1: ") for b in boxes)
        assert overlapping(boxes) == []
        assert page.evaluate(CLIPPED_CONTROLS) == []
        assert overlapping(page.evaluate(CONTROL_BOXES)) == []
        # Nothing of the dashboard runs past the cell's right edge (the cell would scroll sideways).
        widths = page.evaluate("""() => { const d = document.querySelector('.morph-dashboard');
            const cell = d.closest('.jp-OutputArea-output');
            return [d.getBoundingClientRect().right, cell.getBoundingClientRect().right, cell.scrollWidth, cell.clientWidth]; }""")
        assert widths[0] <= widths[1] + 1 and widths[2] <= widths[3] + 1, widths
    finally:
        page.screenshot(path=str(artifacts_dir() / "dashboard-jupyterlab-1024x768.png"))
        context.close()
