"""Fixtures for the browser tests: a Voila server for notebooks/ and a headless Chromium page.

Browser tests (marker ``browser``) need Debian's ``chromium`` on the PATH
(Playwright's own browser download is not used). Without it they are
skipped, unless ``MORPH_REQUIRE_BROWSER=1`` (CI), where they fail instead.
Screenshots go to ``$MORPH_ARTIFACTS`` (default ``build/artifacts``).
"""

from __future__ import annotations

from dataclasses import dataclass

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from morph.cli.serve import voila_command

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def _temporary_folder(factory: pytest.TempPathFactory, variable: str) -> Iterator[Path]:
    """Point ``variable`` at a fresh temporary folder for the session; restore it afterwards.

    Set in the environment, so subprocesses and notebook kernels inherit it.
    """
    folder = factory.mktemp(variable.lower().replace("_", "-"))
    previous = os.environ.get(variable)
    os.environ[variable] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous


@pytest.fixture(autouse=True, scope="session")
def user_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The per-user data folder (``MORPH_DATA_HOME``) is a temporary one: tests never touch the real one."""
    yield from _temporary_folder(tmp_path_factory, "MORPH_DATA_HOME")


@pytest.fixture(autouse=True, scope="session")
def user_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cache folder (``MORPH_CACHE_HOME``, stored fits) is a temporary one, empty at the start of a run."""
    yield from _temporary_folder(tmp_path_factory, "MORPH_CACHE_HOME")


@dataclass(frozen=True)
class CliResult:
    """What one in-process ``morph`` command gave: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[..., CliResult]:
    """Run ``morph ARGS`` in this process (argparse's own errors included), as the command line would."""
    from morph.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse rejects bad options with exit status 2
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def run_async(coroutine: Any, timeout: float = 300.0) -> Any:
    """Run ``coroutine`` to its end on a thread of its own (the browser tests' Playwright owns the main loop)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result(timeout=timeout)


def free_port() -> int:
    """A TCP port nothing listens on now (never assume 8866 is free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """Terminate a server we started, then kill it if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_deploy_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """A plain Jupyter server with ``deploy/jupyter_server_config.json``, as a Binder or hub user's server.

    Its log is ``folder / "server.log"``; returns the process (``stop`` it) and its base URL.
    """
    import sys

    port = free_port()
    command = [sys.executable, "-m", "jupyter", "server", f"--config={ROOT / 'deploy' / 'jupyter_server_config.json'}",
               "--no-browser", f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
               f"--ServerApp.root_dir={ROOT}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    environ = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder)}  # no user configuration mixed in
    with open(folder / "server.log", "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/api/status", timeout=90, process=process)
    except BaseException:
        stop(process)
        raise
    return process, base


def artifacts_dir() -> Path:
    path = Path(os.environ.get("MORPH_ARTIFACTS", ROOT / "build" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    reason = "Debian's chromium is not installed (apt-get install chromium); browser tests need it"
    if os.environ.get("MORPH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and MORPH_REQUIRE_BROWSER=1 requires them", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def voila_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a Voila server rendering any notebook under notebooks/ (same flags as ``morph serve``)."""
    _chromium()  # no server without a browser to look at it
    port = free_port()
    log = tmp_path_factory.mktemp("voila") / "voila.log"
    # Tracebacks shown here (not in `morph serve`): a failing test then shows the cause in its screenshot.
    command = voila_command(NOTEBOOKS, port=port, show_tracebacks=True)
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(base, process=process)
        yield base
    finally:
        stop(process)


@pytest.fixture(scope="session")
def voila_url(voila_server: str) -> Callable[..., str]:
    """``voila_url("dashboard.ipynb", "latency=3")``: the page rendering that notebook with that query."""

    def url(notebook: str, query: str = "") -> str:
        if not (NOTEBOOKS / notebook).is_file():
            raise FileNotFoundError(f"notebooks/{notebook} does not exist")
        return f"{voila_server}voila/render/{notebook}" + (f"?{query.lstrip('?')}" if query else "")

    return url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request) -> Iterator[object]:
    """A fresh page (1400 x 1000) collecting console errors in ``page.console_errors``; screenshot kept."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.console_errors = []  # type: ignore[attr-defined]

    def on_console(message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        page.console_errors.append(f"{message.text} ({url})")  # type: ignore[attr-defined]

    page.on("console", on_console)
    page.on("pageerror", lambda error: page.console_errors.append(f"page error: {error}"))  # type: ignore[attr-defined]
    yield page
    try:
        page.screenshot(path=str(artifacts_dir() / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
