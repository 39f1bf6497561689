"""``morph serve``: Voila on the dashboard notebook only, with safe defaults; started for real."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from morph.cli import main
from morph.cli import serve
from morph.cli.serve import dashboard_notebook, normalize_base_url, voila_command

from conftest import ROOT, free_port, stop, wait_for_http


def test_the_dashboard_notebook_is_found_and_committed_without_outputs():
    path = dashboard_notebook()
    assert path == ROOT / "notebooks" / "dashboard.ipynb"
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert 1 <= len(code) <= 2
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "widgets" not in notebook["metadata"]  # no saved widget state (megabytes with a FigureWidget)
    assert "Dashboard.from_query()" in "".join(code[-1]["source"])


def test_voila_command_keeps_the_safe_defaults():
    command = voila_command("notebooks/dashboard.ipynb", port=9999)
    assert command[:4] == [sys.executable, "-m", "voila", "notebooks/dashboard.ipynb"]
    for flag in (
        "--port=9999", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--template=lab", "--strip_sources=True",
        "--show_tracebacks=False", "--VoilaConfiguration.allow_template_override=NO",
        "--MappingKernelManager.cull_idle_timeout=600", "--MappingKernelManager.cull_interval=60", "--no-browser",
    ):
        assert flag in command
    assert not any("xsrf" in c.lower() or "preheat" in c.lower() for c in command)
    assert not any("token" in c for c in command)
    assert "--Voila.token=s3cret" in voila_command("x.ipynb", port=1, token="s3cret")
    assert [normalize_base_url(b) for b in ("/", "", "dash", "/dash", "/dash/")] == ["/", "/", "/dash/", "/dash/", "/dash/"]


def test_a_taken_port_is_one_line_and_exit_status_2(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"morph: error: port {port} on 127.0.0.1 is already in use; choose another with --port"


def test_a_missing_notebook_is_one_line_and_exit_status_2(capsys, monkeypatch):
    monkeypatch.setattr(serve, "NOTEBOOK", "missing.ipynb")
    assert main(["serve", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("morph: error: the dashboard notebook missing.ipynb is missing") and "\n" not in err


@pytest.mark.slow
def test_morph_serve_answers_with_the_dashboard_and_stops(tmp_path):
    port = free_port()
    morph = Path(sys.executable).with_name("morph")
    process = subprocess.Popen(
        [str(morph), "serve", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=tmp_path,  # not the repository: the notebook is found from the package
    )
    try:
        first_line = process.stdout.readline().strip()
        assert first_line == f"Morph dashboard: http://127.0.0.1:{port}/  (Ctrl+C to stop)"
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=90, process=process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?latency=3", timeout=120) as response:
            page = response.read().decode("utf-8")
        assert response.status == 200
        assert "Morph: choose a model shape under a latency budget" in page
        assert "Dashboard.from_query" not in page  # sources stripped
        assert "Traceback" not in page
        # Only the dashboard: every other path (a file tree, another notebook, the kernels API)
        # is sent to Voila's file handler, which serves no notebook.
        for path in ("voila/tree", "voila/render/other.ipynb", "tree", "api/contents", "api/kernels"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=30)
            assert refused.value.code == 403, path
        # XSRF protection is on: a state-changing request without the token is refused.
        post = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as forged:
            urllib.request.urlopen(post, timeout=30)
        assert forged.value.code == 403
    finally:
        stop(process)
    assert process.returncode is not None
    with socket.socket() as again:  # the port is free once the server has stopped
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


@pytest.mark.slow
def test_morph_serve_with_a_token_turns_strangers_away(tmp_path):
    port = free_port()
    morph = Path(sys.executable).with_name("morph")
    process = subprocess.Popen(
        [str(morph), "serve", "--port", str(port), "--token", "s3cret"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    try:
        assert process.stdout.readline().strip() == f"Morph dashboard: http://127.0.0.1:{port}/?token=s3cret  (Ctrl+C to stop)"
        wait_for_http(f"http://127.0.0.1:{port}/login", timeout=90, process=process)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as stranger:
            opener.open(f"http://127.0.0.1:{port}/", timeout=30)
        assert stranger.value.code == 302 and stranger.value.headers["Location"].startswith("/login")
        with opener.open(f"http://127.0.0.1:{port}/?token=s3cret", timeout=120) as response:
            assert response.status == 200 and response.headers["Set-Cookie"]
    finally:
        stop(process)
