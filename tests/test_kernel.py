"""How a pooled dashboard kernel learns its page's settings, without Voila's server stack in the kernel."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading

import pytest

import websockets  # noqa: F401  (the app extra, which the test install includes)

from websockets.sync.server import serve  # noqa: E402

from morph.app.kernel import request_info_url, wait_for_page  # noqa: E402


def test_the_url_is_voilas_query_socket_for_this_kernel():
    environ = {"VOILA_APP_IP": "127.0.0.1", "VOILA_APP_PORT": "8123", "VOILA_SERVER_URL": "/dash/",
               "VOILA_KERNEL_ID": "abc-123"}
    assert request_info_url(environ) == "ws://127.0.0.1:8123/dash/voila/query/abc-123"
    assert request_info_url({**environ, "VOILA_WS_BASE_URL": "/proxy/", "VOILA_WS_PROTOCOL": "wss"}) == \
        "wss://127.0.0.1:8123/proxy/voila/query/abc-123"
    assert request_info_url({**environ, "VOILA_APP_IP": "::1"}).startswith("ws://[::1]:8123/")


@pytest.fixture
def page_server():
    """A stand-in for Voila's query socket: sends one request's variables to whoever connects."""
    sent: list[str] = []

    def handler(connection) -> None:
        connection.send(sent[0])

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        yield sent, f"ws://127.0.0.1:{port}/voila/query/k"
        server.shutdown()


def test_the_pages_request_lands_in_the_environment(page_server, monkeypatch):
    sent, url = page_server
    sent.append(json.dumps({"QUERY_STRING": "latency=3&top_k=5", "SERVER_NAME": "127.0.0.1", "junk": 5}))
    monkeypatch.delenv("QUERY_STRING", raising=False)
    found = wait_for_page(url)
    assert found == {"QUERY_STRING": "latency=3&top_k=5", "SERVER_NAME": "127.0.0.1"}  # strings only
    assert os.environ["QUERY_STRING"] == "latency=3&top_k=5"


@pytest.mark.parametrize("payload", ["not json", "[1, 2]", '"a string"'])
def test_a_malformed_message_leaves_the_defaults(page_server, monkeypatch, payload):
    sent, url = page_server
    sent.append(payload)
    monkeypatch.setenv("QUERY_STRING", "")
    with pytest.warns(UserWarning) if payload == "not json" else contextlib.nullcontext():
        assert wait_for_page(url) == {}
    assert os.environ["QUERY_STRING"] == ""


def test_an_unreachable_server_gives_the_defaults_with_a_warning():
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.warns(UserWarning, match="did not arrive"):
        assert wait_for_page(f"ws://127.0.0.1:{port}/voila/query/k") == {}


def test_the_dashboard_kernel_does_not_import_voila():
    # voila.utils pulls in jupyter_server, nbconvert and jinja2: about 46 MB per pooled kernel.
    code = ("import sys\nimport morph.app.kernel, morph.app.dashboard\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('voila', 'jupyter_server', 'nbconvert')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_served_dashboard_kernel_loads_plotly_without_nbformat_and_jsonschema():
    from morph.app.kernel import LEAN_ENV

    script = (
        "import sys; from morph.app.dashboard import Dashboard; board = Dashboard(); "
        "print(sorted(m for m in ('nbformat', 'jsonschema') if m in sys.modules), len(board.figure.data) > 0)"
    )
    lean = subprocess.run([sys.executable, "-c", script], env={**os.environ, LEAN_ENV: "1"},
                          capture_output=True, text=True, timeout=120, check=True)
    assert lean.stdout.split() == ["[]", "True"]  # the figure widget is built all the same


def test_a_lesson_under_the_same_server_keeps_fig_show_and_skips_jsonschemas_iri_grammars():
    # The served env is set for every kernel; only the dashboard goes lean. A lesson's figure is shown with
    # nbformat, and jsonschema's IRI checker (1.6 s of grammars) is never loaded, there or in a plain kernel.
    from morph.app.kernel import LEAN_ENV

    script = ("import sys; from morph.app import figures, widgets; import plotly.io._renderers as r; "
              "print(r.nbformat is not None, 'rfc3987_syntax' in sys.modules)")
    for env in ({**os.environ, LEAN_ENV: "1"}, {k: v for k, v in os.environ.items() if k != LEAN_ENV}):
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                             check=True)
        assert out.stdout.split() == ["True", "False"]

