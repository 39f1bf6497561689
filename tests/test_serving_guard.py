"""The serving guards: frame validation by hand-built frames, and attacks on a real server over loopback."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

from morph.cli.serve import dashboard_notebook, voila_command
from morph.app.serving_guard import MAX_FRAME_PARTS, _is_loopback_peer, check_v1_frame, host_allowed, loopback_hosts
from morph.cli.serve import default_max_sessions

from conftest import free_port, run_async, stop, wait_for_http

V1 = "v1.kernel.websocket.jupyter.org"


def frame(parts: list[bytes], channel: str = "shell") -> bytes:
    """A v1 frame laid out by hand: count, offsets, channel, parts (all offsets little-endian, 8 bytes)."""
    count = len(parts) + 2
    offsets = [8 * (count + 1)]
    for piece in [channel.encode(), *parts]:
        offsets.append(offsets[-1] + len(piece))
    return b"".join([count.to_bytes(8, "little"), *(o.to_bytes(8, "little") for o in offsets), channel.encode(), *parts])


def test_well_formed_frames_pass_and_match_the_servers_own_layout():
    parts = [b'{"msg_type":"comm_msg"}', b"{}", b"{}", b'{"data":{}}', b"\x00\x01buffer"]
    assert frame(parts) == serialize_msg_to_ws_v1(parts, "shell")  # the layout the server itself writes
    assert check_v1_frame(frame(parts)) is None
    assert check_v1_frame(frame(parts[:4], "control")) is None


@pytest.mark.parametrize(
    "message, reason",
    [
        (b"\xff" * 8, "declaring"),  # the 8-byte attack: 2**64 - 1 offsets
        (b"\x05" + b"\x00" * 7, "declaring"),  # fewer offsets than channel + 4 parts need
        ((MAX_FRAME_PARTS + 1).to_bytes(8, "little"), "declaring"),
        (b"\xff" * 7, "fewer than 8"),
        ((6).to_bytes(8, "little") + b"\x00" * 16, "shorter than its offset table"),
        ("{}", "text message"),
    ],
)
def test_malformed_frames_are_named_without_decoding(message, reason):
    assert reason in check_v1_frame(message)


def test_offsets_outside_the_frame_or_backwards_and_unknown_channels_are_refused():
    good = bytearray(frame([b"{}"] * 4))
    past_end = bytearray(good)
    past_end[8 * 6: 8 * 7] = (len(good) + 1).to_bytes(8, "little")  # last offset beyond the frame
    assert "run past its end" in check_v1_frame(bytes(past_end))
    backwards = bytearray(good)
    backwards[8 * 3: 8 * 4] = (0).to_bytes(8, "little")
    assert "decrease" in check_v1_frame(bytes(backwards))
    moved = bytearray(good)
    moved[8:16] = (1000).to_bytes(8, "little")  # first part not right after the table
    assert "offset table" in check_v1_frame(bytes(moved))
    assert "unknown channel" in check_v1_frame(frame([b"{}"] * 4, channel="nope"))


def test_hosts_and_default_session_limit():
    allowed = loopback_hosts(8866)
    assert all(host_allowed(h, allowed) for h in ("localhost:8866", "127.0.0.1:8866", "[::1]:8866", "LOCALHOST:8866"))
    assert not any(host_allowed(h, allowed) for h in ("evil.example:8866", "localhost:80", "127.0.0.1", "", None))
    assert host_allowed("anything", frozenset())
    # Where ready kernels wait for their page's query string: reachable from this machine only.
    assert all(_is_loopback_peer(a) for a in ("127.0.0.1", "127.0.0.2", "::1"))
    assert not any(_is_loopback_peer(a) for a in ("10.0.0.1", "::ffff:8.8.8.8", "", None, "nonsense"))
    assert 2 <= default_max_sessions() <= 48
    # 160 MB per kernel: one session per 160 MB available beyond 1 GB, whatever the machine has.
    assert default_max_sessions(kernel_mb=1e9) == 2 and default_max_sessions(kernel_mb=1.0, cap=5) == 5


# --- against a real server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    """``morph serve``'s command with no pool, 2 sessions at most, and short grace and cull times."""
    port = free_port()
    log = tmp_path_factory.mktemp("guard") / "voila.log"
    command = voila_command(dashboard_notebook(), port=port, max_sessions=2, closed_grace_s=2,
                            cull_idle_timeout=6, cull_interval=2)
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/voila/static/voila.js", timeout=90, process=process)
        yield base, process, log
    finally:
        stop(process)


async def closed(ws, timeout_s: float = 5.0) -> int | None:
    """Wait until the server closes ``ws``; its close code.

    Messages the kernel sent before the server read the offending frame
    (a status broadcast, say) may still arrive first: they are skipped.
    Raises ``asyncio.TimeoutError`` when the connection is still open after
    ``timeout_s`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await asyncio.wait_for(ws.read_message(), max(0.0, deadline - loop.time())) is not None:
        pass
    return ws.close_code


def open_page(base: str) -> str:
    """Request the dashboard page; the id of the kernel it was given."""
    with urllib.request.urlopen(base + "/", timeout=120) as response:
        page = response.read().decode("utf-8")
    return re.search(r'"kernelId": *"([0-9a-f-]{36})"', page).group(1)


def kernel_alive(base: str, kernel_id: str) -> bool:
    try:
        urllib.request.urlopen(f"{base}/api/kernels/{kernel_id}", timeout=10).close()
        return True
    except urllib.error.HTTPError as error:
        assert error.code == 404
        return False


def static_answer_s(base: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(base + "/voila/static/voila.js", timeout=5) as response:
        assert response.status == 200 and len(response.read()) > 1000
    return time.perf_counter() - start


def kernel_info_request() -> bytes:
    header = {"msg_id": uuid.uuid4().hex, "msg_type": "kernel_info_request", "username": "test",
              "session": uuid.uuid4().hex, "date": "", "version": "5.3"}
    return serialize_msg_to_ws_v1([json.dumps(header).encode(), b"{}", b"{}", b"{}"], "shell")


async def connect(base: str, kernel_id: str, subprotocols: list[str] | None):
    from tornado.websocket import websocket_connect

    url = base.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    return await websocket_connect(url, subprotocols=subprotocols)


async def answers(connection, timeout: float = 20.0) -> bool:
    """Whether the kernel behind ``connection`` replies to a kernel_info_request within ``timeout``."""
    await connection.write_message(kernel_info_request(), binary=True)
    deadline = time.monotonic() + timeout
    for _ in range(200):  # bounded: status and other messages may come first
        message = await asyncio.wait_for(connection.read_message(), max(0.1, deadline - time.monotonic()))
        if message is None:
            return False
        if b"kernel_info_reply" in message:
            return True
    return False


@pytest.mark.slow
def test_attacks_on_the_kernel_websocket_leave_the_server_and_other_sessions_working(guarded_server):
    base, process, log = guarded_server

    async def scenario() -> None:
        viewer_kernel, attacker_kernel = open_page(base), open_page(base)
        viewer = await connect(base, viewer_kernel, [V1])
        assert viewer.selected_subprotocol == V1 and await answers(viewer)

        # 1. The 8-byte frame on a v1 connection: that connection is closed, nothing else notices.
        attacker = await connect(base, attacker_kernel, [V1])
        await attacker.write_message(b"\xff" * 8, binary=True)
        assert await closed(attacker) == 1008
        assert static_answer_s(base) < 1.0
        assert await answers(viewer)

        # 2. No subprotocol (the legacy path), then the widget manager's request_states: refused at once.
        legacy = await connect(base, attacker_kernel, None)
        assert await closed(legacy) == 1002
        # A refused client on the viewer's own kernel does not make the viewer look gone.
        intruder = await connect(base, viewer_kernel, None)
        assert await closed(intruder) == 1002
        comm = {"header": {"msg_id": "x", "msg_type": "comm_open", "username": "", "session": "", "date": "",
                           "version": "5.3"}, "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"comm_id": "c", "target_name": "jupyter.widget.control", "data": {}}}
        try:
            await legacy.write_message(json.dumps(comm))
            comm["content"] = {"comm_id": "c", "data": {"method": "request_states"}}
            await legacy.write_message(json.dumps(comm))
        except Exception:  # closed already: the attack cannot even be sent
            pass
        assert static_answer_s(base) < 1.0
        assert await answers(viewer)

        # 3. A closed tab's kernel is shut down within seconds (grace 2 s here); the viewer's stays
        #    (past its grace time after the intruder left).
        await asyncio.sleep(3)
        deadline = time.monotonic() + 20
        while kernel_alive(base, attacker_kernel) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert not kernel_alive(base, attacker_kernel)
        assert kernel_alive(base, viewer_kernel) and await answers(viewer)
        viewer.close()
        deadline = time.monotonic() + 20
        while kernel_alive(base, viewer_kernel) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert not kernel_alive(base, viewer_kernel)

    run_async(scenario())
    assert process.poll() is None
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_sessions_are_bounded_and_pages_never_connected_are_culled(guarded_server):
    base, process, log = guarded_server
    first, second = open_page(base), open_page(base)
    with pytest.raises(urllib.error.HTTPError) as full:
        urllib.request.urlopen(base + "/", timeout=30)
    assert full.value.code == 503 and full.value.headers["Retry-After"] == "30"
    body = full.value.read().decode("utf-8")
    assert "The dashboard is full" in body and "try again" in body
    assert static_answer_s(base) < 1.0  # everything but new pages is still served
    # Neither page connected: both are culled after 6 s idle (checked every 2 s), and a page is served again.
    deadline = time.monotonic() + 40
    while (kernel_alive(base, first) or kernel_alive(base, second)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not kernel_alive(base, first) and not kernel_alive(base, second)
    open_page(base)


@pytest.mark.slow
def test_foreign_host_headers_are_refused_on_loopback(guarded_server):
    base, _, _ = guarded_server
    port = base.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}", "127.0.0.1:1"):
        request = urllib.request.Request(base + "/voila/static/voila.js", headers={"Host": host})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 400, host
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        request = urllib.request.Request(base + "/voila/static/voila.js", headers={"Host": host})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


@pytest.mark.slow
def test_the_binder_recipe_serves_the_dashboard_with_the_guards(tmp_path):
    """deploy/jupyter_server_config.json (postBuild installs it) under a plain Jupyter server, as on Binder or a hub."""
    from conftest import ROOT, start_deploy_server

    assert "cp deploy/jupyter_server_config.json" in (ROOT / "postBuild").read_text()
    process, base = start_deploy_server(tmp_path)
    try:
        hostile = urllib.parse.quote('dark"><script>alert(5)</script>')
        with urllib.request.urlopen(f"{base}/voila/render/notebooks/dashboard.ipynb?theme={hostile}",
                                    timeout=120) as response:
            page = response.read().decode("utf-8")
        assert "Morph: choose a model shape under a latency budget" in page
        assert "alert(5)" not in page and "Dashboard.from_query" not in page  # no theme from the link, sources hidden
        kernel_id = re.search(r'"kernelId": *"([0-9a-f-]{36})"', page).group(1)

        async def attack() -> None:
            viewer = await connect(base, kernel_id, [V1])
            attacker = await connect(base, kernel_id, [V1])
            await attacker.write_message(b"\xff" * 8, binary=True)
            assert await closed(attacker) == 1008
            legacy = await connect(base, kernel_id, None)
            assert await closed(legacy) == 1002
            assert await answers(viewer)

        run_async(attack())
        start = time.perf_counter()
        urllib.request.urlopen(base + "/api/status", timeout=5).close()
        assert time.perf_counter() - start < 1.0
        # plotly's widget script, served by the extension (kernels import it instead of carrying it).
        from morph.app.bundle import bundle_file, bundle_path

        with urllib.request.urlopen(base + bundle_path("/"), timeout=10) as response:
            assert response.read() == bundle_file().read_bytes()
    finally:
        stop(process)
    log = (tmp_path / "server.log").read_text()
    assert "morph: kernel websocket guards installed; plotly's widget script served at /morph/static/plotly-widget-" in log


@pytest.mark.slow
def test_plotlys_widget_script_is_served_once_compressed_and_cacheable(guarded_server):
    import gzip

    from morph.app.bundle import bundle_file, bundle_path

    base, _, _ = guarded_server
    shipped = bundle_file().read_bytes()
    url = base + bundle_path("/")
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert "immutable" in response.headers["Cache-Control"]
    assert gzip.decompress(body) == shipped
    assert len(body) < len(shipped) / 2  # minified JavaScript compresses at least 2:1
    with urllib.request.urlopen(url, timeout=10) as response:  # no Accept-Encoding: the file as it is
        assert response.read() == shipped
    # Only that one path: a neighbour or a traversal is not a file the server hands out.
    for other in ("morph/static/widgetbundle.js", "morph/static/../../etc/passwd", "morph/static/plotly-widget-0.js"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/" + other, timeout=10)
        assert missing.value.code in (403, 404), other


@pytest.mark.slow
def test_binders_post_build_installs_the_config_and_stores_the_dashboards_fits(tmp_path):
    import os
    import sys
    from pathlib import Path

    from conftest import ROOT

    home = tmp_path / "home"
    home.mkdir()
    environ = {k: v for k, v in os.environ.items() if k not in ("MORPH_CACHE_HOME", "XDG_CACHE_HOME")}
    environ["HOME"] = str(home)
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"  # Binder's python
    subprocess.run(["bash", str(ROOT / "postBuild")], cwd=ROOT, env=environ, check=True, timeout=300)
    assert (home / ".jupyter" / "jupyter_server_config.json").read_bytes() == \
        (ROOT / "deploy" / "jupyter_server_config.json").read_bytes()
    stored = sorted((home / ".cache" / "morph" / "fits").glob("*.json"))
    assert len(stored) == 3  # one per Bian et al. preset: bian2025, -nonequal, -chinchilla
    assert {json.loads(p.read_text())["key"]["bootstrap"] for p in stored} == {200}
