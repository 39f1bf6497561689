"""``morph serve``'s configuration in a browser: the pool of ready kernels, and a page that outlives an attack."""

from __future__ import annotations

import subprocess
import urllib.parse

import pytest

from morph.cli.serve import dashboard_notebook, voila_command
from morph.app.dashboard import Dashboard

from conftest import _chromium, free_port, start_deploy_server, stop, wait_for_http
from test_dashboard_browser import PLOT, READY, assert_no_python_errors, selected, slider, wait_for_new_selection
from test_serving_guard import V1, closed, connect, open_page, run_async, static_answer_s

pytestmark = pytest.mark.browser


def record_traffic(page) -> tuple[list[str], list[int]]:
    """The paths the page requests and the sizes of the websocket frames it receives, as they happen."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(urllib.parse.urlparse(request.url).path))
    frames: list[int] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(len(payload or b""))))
    return requested, frames


def off_server(page, server: str) -> list[str]:
    """Filled as the page runs: every URL it requests from anywhere but ``server`` (data: and blob: are local)."""
    origin = urllib.parse.urlparse(server)
    elsewhere: list[str] = []

    def check(request) -> None:
        url = urllib.parse.urlparse(request.url)
        if url.scheme not in ("data", "blob") and (url.scheme, url.netloc) != (origin.scheme, origin.netloc):
            elsewhere.append(request.url)

    page.on("request", check)
    return elsewhere


def morph_1b_leaves_at_a_lower_budget(page, before: dict) -> None:
    handle = slider(page, "Latency budget (s)").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowLeft")  # 2.0 s -> 1.95 s: Morph-1B (1.96 s) leaves the selection
    after = wait_for_new_selection(page, selected(before))
    assert "12x3072" not in " ".join(selected(after))


@pytest.fixture(scope="module")
def pooled_server(tmp_path_factory):
    """The dashboard alone with a pool of 2 pre-started kernels, as ``morph serve`` runs it."""
    _chromium()
    port = free_port()
    log = tmp_path_factory.mktemp("pool") / "voila.log"
    command = voila_command(dashboard_notebook(), port=port, pool_size=2, max_sessions=6, show_tracebacks=True)
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/voila/static/voila.js", timeout=90, process=process)
        yield base
    finally:
        stop(process)


def test_a_ready_kernel_applies_the_links_settings_and_follows_the_controls(page, pooled_server):
    # A pooled kernel built its dashboard before this request: the link's settings arrive afterwards.
    query = "latency=3&top_k=5&hardware=h100-sxm"
    page.goto(f"{pooled_server}/?{query}")
    page.wait_for_function(READY, polling=100)
    assert_no_python_errors(page)
    plot = page.evaluate(PLOT)
    assert plot["target"] == pytest.approx(3.0)
    expected = Dashboard.from_query(query).selection.selected
    assert plot["traces"]["selected (top k)"]["x"] == pytest.approx(expected["latency_s"].tolist(), rel=1e-6)
    assert len(selected(plot)) == 5
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query) == {
        "latency": ["3"], "top_k": ["5"], "hardware": ["h100-sxm"]}
    # Exactly one dashboard in the page: the warm-up's widgets were closed, not displayed.
    assert page.locator(".morph-dashboard").count() == 1
    handle = slider(page, "Shapes to keep (top k)").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowLeft")
    after = wait_for_new_selection(page, selected(plot))
    assert len(selected(after)) == 4


def test_an_open_page_keeps_redrawing_while_another_client_sends_a_malformed_frame(page, pooled_server):
    page.goto(f"{pooled_server}/")
    page.wait_for_function(READY, polling=100)
    before = page.evaluate(PLOT)

    async def attack() -> None:
        attacker = await connect(pooled_server, open_page(pooled_server), [V1])
        await attacker.write_message(b"\xff" * 8, binary=True)
        assert await closed(attacker) == 1008  # closed within 5 s: a policy violation

    run_async(attack(), timeout=60)
    assert static_answer_s(pooled_server) < 1.0
    morph_1b_leaves_at_a_lower_budget(page, before)
    assert_no_python_errors(page)


def test_a_page_loads_plotly_once_from_the_server_and_no_extension_it_does_not_need(page, pooled_server):
    from morph.app.bundle import bundle_path

    requested, frames = record_traffic(page)
    elsewhere = off_server(page, pooled_server)
    page.goto(f"{pooled_server}/")
    page.wait_for_function(READY, polling=100)
    assert_no_python_errors(page)
    assert requested.count(bundle_path("/")) == 1  # the figure's script, from the server
    # Nothing from a third party: Voila's lab template linked two icon stylesheets from a CDN
    # (requested from the page's head, long before it is interactive).
    assert elsewhere == []
    # plotly's JupyterLab renderer (jupyterlab-plotly, 4.8 MB) and every other extension not
    # named in morph serve's allowlist stay out of a served page.
    assert not [path for path in requested if "/labextensions/jupyterlab-plotly/" in path]
    assert not [path for path in requested if "/labextensions/jupyterlab_pygments/" in path]
    assert any("/labextensions/anywidget/" in path for path in requested)
    # The page's websocket carries the widgets' state, not plotly's 5 MB of script.
    assert sum(frames) < 1_000_000


def test_a_page_whose_plotly_script_arrives_late_still_applies_every_edit(page, pooled_server):
    # anywidget gives a widget's module 2 s to load and then drops every later message to
    # it; a busy page (a class opening the link at once) takes longer than that to get
    # plotly's 5 MB script. Holding the script back 3 s reproduces that page: the plot
    # must show the link's settings (edits sent while the script was on its way) and then
    # follow the controls.
    import time

    from morph.app.bundle import bundle_path

    def late(route) -> None:
        time.sleep(3.0)
        route.continue_()

    page.route(f"**{bundle_path('/')}", late)
    query = "latency=3&top_k=5"
    page.goto(f"{pooled_server}/?{query}")
    page.wait_for_function(READY, polling=100)
    plot = page.evaluate(PLOT)
    assert plot["target"] == pytest.approx(3.0)
    expected = Dashboard.from_query(query).selection.selected
    assert plot["traces"]["selected (top k)"]["x"] == pytest.approx(expected["latency_s"].tolist(), rel=1e-6)
    handle = slider(page, "Shapes to keep (top k)").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("ArrowLeft")
    after = wait_for_new_selection(page, selected(plot))
    assert len(selected(after)) == 4
    page.keyboard.press("ArrowLeft")
    assert len(selected(wait_for_new_selection(page, selected(after)))) == 3
    assert_no_python_errors(page)


@pytest.fixture(scope="module")
def hub_server(tmp_path_factory):
    """A plain Jupyter server with deploy/jupyter_server_config.json, as a Binder or JupyterHub user's server."""
    _chromium()
    process, base = start_deploy_server(tmp_path_factory.mktemp("hub"))
    try:
        yield base
    finally:
        stop(process)


def test_on_a_hub_the_dashboard_imports_plotly_from_its_server_and_follows_the_controls(page, hub_server):
    from morph.app.bundle import bundle_path

    requested, frames = record_traffic(page)
    elsewhere = off_server(page, hub_server)
    page.goto(f"{hub_server}/voila/render/notebooks/dashboard.ipynb")
    page.wait_for_function(READY, polling=100)
    assert requested.count(bundle_path("/")) == 1
    # The deployed configuration renders Morph's template too: no icon stylesheets from a CDN.
    assert not [url for url in elsewhere if "fontawesome" in url]
    assert sum(frames) < 1_000_000  # the widgets' state, without plotly's 5 MB script
    before = page.evaluate(PLOT)
    morph_1b_leaves_at_a_lower_budget(page, before)
    # Under a Jupyter server the page asks a CDN for MathJax (a hub or Binder is online); offline
    # here, that request fails: the one console error this page may show.
    page.console_errors[:] = [e for e in page.console_errors if "//cdnjs.cloudflare.com/ajax/libs/mathjax/" not in e]
    assert_no_python_errors(page)
