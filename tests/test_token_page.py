"""A token-protected dashboard link: a friendly page asks for the token and keeps the link's settings."""

from __future__ import annotations

import subprocess
from typing import Iterator

import pytest

from conftest import NOTEBOOKS, ROOT, artifacts_dir, free_port, stop, wait_for_http
from morph.app.login import login_page
from morph.cli.serve import voila_command

TOKEN = "s3cret-token"


def test_the_page_escapes_the_link_and_lists_only_real_settings():
    page = login_page('/?latency=3&top_k=5&"><script>x()</script>=1', "/login", rejected=True)
    assert "<script>x()" not in page and "&lt;script&gt;" not in page.split("name=\"next\"")[0]
    assert "latency=3, top_k=5" in page and "not accepted" in page
    assert 'value="/?latency=3&amp;top_k=5&amp;&quot;&gt;&lt;script&gt;x()&lt;/script&gt;=1"' in page
    assert "jupyter server list" not in page


@pytest.fixture(scope="module")
def protected(browser) -> Iterator[str]:
    port = free_port()
    command = voila_command(NOTEBOOKS / "dashboard.ipynb", port=port, token=TOKEN, show_tracebacks=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/login", timeout=90, process=process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(process)


@pytest.mark.browser
def test_a_shared_link_without_the_token_asks_for_it_and_keeps_its_settings(browser, protected):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(protected + "?latency=3&top_k=5")
        assert "access token" in page.inner_text("body") and "latency=3, top_k=5" in page.inner_text("body")
        page.screenshot(path=str(artifacts_dir() / "token-page-390x844.png"))
        page.fill("input[name=password]", "wrong")
        page.click("button[type=submit]")
        page.wait_for_selector("text=not accepted")
        page.fill("input[name=password]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url("**/?latency=3&top_k=5")
        page.wait_for_function("""() => { const gd = document.querySelector('.morph-dashboard .js-plotly-plot');
            return gd && gd._fullData && gd._fullData.some(t => t.name === 'selected (top k)' && t.text && t.text.length === 5); }""")
    finally:
        context.close()
