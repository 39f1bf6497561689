"""``morph serve``: Voila on the dashboard notebook only, with safe defaults; started for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from morph.cli import main
from morph.cli import serve
from morph.cli.serve import dashboard_notebook, normalize_base_url, read_token, voila_command
from morph.errors import MorphError

from conftest import ROOT, free_port, run_async, stop, wait_for_http


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
    split = command.index("--")
    assert command[:3] == [sys.executable, "-m", "morph.app.serving_guard"]  # the guards, then Voila
    guard, voila = command[3:split], command[split + 1:]
    assert voila[0] == "notebooks/dashboard.ipynb"
    assert set(guard) == {"--closed-grace=5", "--allow-host=localhost:9999", "--allow-host=127.0.0.1:9999",
                          "--allow-host=[::1]:9999", "--base-url=/"}  # plotly's widget script is served under it
    for flag in (
        "--port=9999", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--template=morph", "--strip_sources=True",
        "--show_tracebacks=False", "--VoilaConfiguration.allow_template_override=NO",
        "--VoilaConfiguration.allow_theme_override=NO",
        # A page that never connected is shut down within a minute (cull after 60 s, checked every 10 s).
        "--MappingKernelManager.cull_idle_timeout=60", "--MappingKernelManager.cull_interval=10", "--no-browser",
    ):
        assert flag in voila
    allowed = [c.split("=", 1)[1] for c in voila if c.startswith("--VoilaConfiguration.extension_allowlist=")]
    assert allowed == ["@voila-dashboards/widgets-manager8", "@jupyter-widgets/jupyterlab-manager", "anywidget"]
    # A page whose outputs come late on a busy machine is still served whole (Voila's default: 4 s).
    assert "--VoilaExecutor.iopub_timeout=60" in voila
    # A folder of teaching notebooks keeps plotly's renderer for their static figures.
    assert not any("extension_allowlist" in c for c in voila_command("notebooks", port=1))
    assert not any("xsrf" in c.lower() or "preheat" in c.lower() for c in command)
    assert not any("token" in c for c in command)
    assert "--Voila.token=s3cret" in voila_command("x.ipynb", port=1, token="s3cret")
    pooled = voila_command("x.ipynb", port=1, pool_size=3, max_sessions=7)
    assert {"--preheat_kernel=True", "--pool_size=3", "--max-sessions=7"} <= set(pooled)
    # Served to the network, any Host is answered (the names are not known here).
    assert not any(c.startswith("--allow-host") for c in voila_command("x.ipynb", port=1, ip="0.0.0.0"))
    assert "--base-url=/dash/" in voila_command("x.ipynb", port=1, base_url="dash")
    assert [normalize_base_url(b) for b in ("/", "", "dash", "/dash", "/dash/")] == ["/", "/", "/dash/", "/dash/", "/dash/"]


def test_the_token_comes_from_the_option_a_file_or_the_environment(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-file\nignored\n")
    assert read_token("given", str(secret), {"MORPH_TOKEN": "env"}) == "given"
    assert read_token(None, str(secret), {"MORPH_TOKEN": "env"}) == "from-file"
    assert read_token(None, None, {"MORPH_TOKEN": "env"}) == "env"
    assert read_token(None, None, {}) is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(MorphError, match="is empty"):
        read_token(None, str(tmp_path / "empty"), {})
    with pytest.raises(MorphError, match="cannot read the token file"):
        read_token(None, str(tmp_path / "missing"), {})


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
    token = uuid.uuid4().hex  # unique: no other process on this machine may hold it
    morph = Path(sys.executable).with_name("morph")
    process = subprocess.Popen(
        [str(morph), "serve", "--port", str(port), "--pool-size", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env={**os.environ, "MORPH_TOKEN": token},
    )
    try:
        assert process.stdout.readline().strip() == f"Morph dashboard: http://127.0.0.1:{port}/  (Ctrl+C to stop)"
        assert "a token is required" in process.stdout.readline()
        wait_for_http(f"http://127.0.0.1:{port}/login", timeout=90, process=process)
        # The token is in no process's command line (ps shows those to every user).
        for pid in [process.pid, *(int(p) for p in os.listdir("/proc") if p.isdigit())]:
            try:
                assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as stranger:
            opener.open(f"http://127.0.0.1:{port}/", timeout=30)
        assert stranger.value.code == 302 and stranger.value.headers["Location"].startswith("/login")
        with opener.open(f"http://127.0.0.1:{port}/?token={token}", timeout=120) as response:
            assert response.status == 200 and response.headers["Set-Cookie"]
    finally:
        stop(process)


def test_class_mode_replaces_the_pool_and_is_passed_to_the_guards():
    command = voila_command("x.ipynb", port=1, pool_size=2, class_size=5, max_sessions=9)
    assert {"--preheat_kernel=True", "--pool_size=5", "--class-size=5", "--max-sessions=9"} <= set(command)
    assert not any(c.startswith("--class-size") for c in voila_command("x.ipynb", port=1, pool_size=2))


def test_a_class_size_is_checked_against_memory_and_the_session_limit():
    from morph.cli.serve import KERNEL_MB, MAX_CLASS, RESERVED_MB, check_class_size

    fits = 12
    free_mb = RESERVED_MB + fits * KERNEL_MB
    check_class_size(fits, None, free_mb)  # exactly what fits
    check_class_size(fits, fits, free_mb)
    check_class_size(MAX_CLASS, None, None)  # memory unknown: only the fixed bound applies
    with pytest.raises(MorphError, match=f"at most --class {fits} fits"):
        check_class_size(fits + 1, None, free_mb)
    with pytest.raises(MorphError, match="--max-sessions 4 is below --class 5"):
        check_class_size(5, 4, free_mb)
    with pytest.raises(MorphError, match=f"at most {MAX_CLASS}"):
        check_class_size(MAX_CLASS + 1, None, None)


@pytest.mark.parametrize("argv, message", [
    (["--class", "0"], "'0' must be > 0"),
    (["--class", "-3"], "'-3' must be > 0"),
    (["--class", "many"], "'many' is not a whole number"),
])
def test_a_class_size_that_is_not_a_positive_number_is_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--port", str(free_port()), *argv])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_class_and_pool_size_together_or_too_large_a_class_are_one_line_errors(capsys, monkeypatch):
    assert main(["serve", "--port", str(free_port()), "--class", "3", "--pool-size", "2"]) == 2
    assert capsys.readouterr().err.strip() == ("morph: error: give --class or --pool-size, not both "
                                               "(--class N keeps N kernels ready)")
    monkeypatch.setattr(serve, "available_mb", lambda: 2048.0)  # 1 GB beyond the reserve: 6 kernels of 160 MB
    assert main(["serve", "--port", str(free_port()), "--class", "30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("morph: error: --class 30 needs about 4.7 GB") and "at most --class 6 fits" in err
    assert "\n" not in err


@pytest.mark.slow
def test_class_mode_warms_up_n_kernels_and_replaces_a_taken_one_when_no_page_waits(tmp_path):
    import time

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _viewers import ProtocolViewer, kernel_command_line, kernel_memory_mb, process_tree

    def kernels(pid: int) -> set[int]:
        found = set()
        for member in process_tree(pid)[1:]:
            try:
                if b"ipykernel" in kernel_command_line(member):
                    found.add(member)
            except OSError:
                continue
        return found

    size = 2
    port = free_port()
    log = tmp_path / "serve.log"
    morph = Path(sys.executable).with_name("morph")
    with open(log, "w") as out:
        process = subprocess.Popen([str(morph), "serve", "--port", str(port), "--class", str(size)],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while f"class of {size} ready" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.5)
        assert f"morph: class of {size} ready: {size} kernels warm in" in log.read_text()
        warm = kernels(process.pid)
        assert len(warm) == size and len(kernel_memory_mb(process.pid)) == size  # started before any page
        for pid in warm:  # forked from the server's kernel template (morph.app.kernel_fork), which imported once
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            assert b"morph.app.kernel_fork" in Path(f"/proc/{parent}/cmdline").read_bytes()
        viewer = ProtocolViewer(base, query="latency=3", moves=1, pause_s=0.1)
        result = run_async(viewer.run())
        assert result.error is None and result.answered == 1
        # The page took a warm kernel built with the link's settings: no kernel started for it.
        budget = next(s["value"] for s in viewer.states.values() if s.get("description") == "Latency budget (s)")
        assert budget == pytest.approx(3.0)
        # Once no page waits, the taken kernel is replaced by a new one (the page's closed with its
        # connection): a full class again.
        deadline = time.monotonic() + 120
        while not (kernels(process.pid) - warm) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(kernels(process.pid) - warm) == 1
        while "a kernel taken by a page was replaced" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert f"a kernel taken by a page was replaced; {size} ready" in log.read_text()
        while len(kernels(process.pid)) != size and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(kernels(process.pid)) == size
    finally:
        stop(process)
    assert "Traceback" not in log.read_text()
