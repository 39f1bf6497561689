"""Kernels forked from a template process that has imported their libraries once.

Every kernel ``morph serve`` starts used to be a new Python interpreter that
imported IPython, numpy, pandas, ipywidgets, plotly and Morph before it could
build a dashboard: about 1.2-1.6 CPU s per kernel on a 2-core machine, most of
what a page costs the server when no warm kernel is waiting, and again for
every kernel a class warms up. Under ``morph serve`` (Linux) the server starts
one *template* process that imports those libraries once and then waits; each
kernel is a ``fork()`` of it, which starts with them imported, shares their
memory pages with every other kernel until it writes to them, and then runs
ipykernel exactly as ``python -m ipykernel_launcher`` would.

The template imports only what does not depend on which notebook the kernel
will run (no :mod:`morph.app`, whose import chooses plotly's lean renderers for
the dashboard). Anything but the plain ``ipykernel_launcher`` command of the
interpreter the template runs, and any start when the template is not there,
starts the usual way. ``MORPH_KERNEL_FORK=0`` in the server's environment turns
forking off.

In the server, :func:`install` makes jupyter_client's local provisioner launch
through a :class:`Forker`; the kernel it gets back is a :class:`ForkedProcess`,
which answers what the provisioner asks of a ``subprocess.Popen`` (poll, wait,
signals). A forked kernel leads its own session and process group, as a
launched one does, so interrupts and shutdowns reach it the same way; it exits
when the template exits, and the template exits with the server.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import importlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["ENABLE_ENV", "PRELOAD", "Forker", "ForkedProcess", "kernel_arguments", "forked_kernel_arguments", "install",
           "template_main"]

ENABLE_ENV = "MORPH_KERNEL_FORK"
"""``0`` in the server's environment: every kernel starts as its own interpreter."""

PRELOAD = (
    "ipykernel.kernelapp", "ipykernel.ipkernel", "numpy", "pandas", "plotly.graph_objects", "ipywidgets",
    "morph.frontier", "morph.decision", "morph.draws", "morph.fitcache", "morph.latency",
    "morph.app.dashboard_view", "morph.app.dashboard_controls", "morph.app.sharebar", "morph.app.tour",
    "plotly.io._base_renderers",
)
"""Modules the template imports: every kernel's, and none that depends on the notebook it runs.

Not plotly's renderers (``plotly.io._renderers``; their base classes are
preloaded), whose import picks ``fig.show()``'s default renderer from the
process it runs in (the template is no kernel). Not
:mod:`morph.app.dashboard`, whose import would choose the lean renderers
(:func:`morph.app.kernel.lean_plotly`) for every kernel. ipywidgets
registers its comm targets with the kernel running when it is imported, and
none runs in the template: each kernel loads it as an IPython extension, which
registers them.
"""

PREPARE = "morph.app.dashboard_view"
"""Its ``prepare()`` fills the per-process caches every dashboard reads, once, in the template."""

_MAX_REQUEST = 2**20  # bytes: a command and an environment
_REGISTRY: str | None = None  # in the template: its folder, where each live kernel's arguments are written


def kernel_arguments(cmd: Sequence[str], executable: str = sys.executable) -> list[str] | None:
    """The arguments of ``python -m ipykernel_launcher ARGS`` for this interpreter; None for any other command."""
    if len(cmd) < 3 or list(cmd[1:3]) != ["-m", "ipykernel_launcher"]:
        return None
    first = shutil.which(cmd[0]) or cmd[0]
    try:
        same = os.path.samefile(first, executable)
    except OSError:
        return None
    return list(cmd[3:]) if same else None


# --- the template process -------------------------------------------------------------------------


def _preload(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a module that will not import here is imported by the kernel, or fails there
            print(f"morph kernel template: {name} not preloaded ({exc.__class__.__name__}: {exc})", file=sys.stderr)
    import plotly.graph_objects as go

    go.Scatter()  # loads plotly's validator table (a large JSON file), which every figure needs
    if PREPARE in sys.modules:
        try:
            sys.modules[PREPARE].prepare()
        except Exception as exc:  # each kernel then computes it itself
            print(f"morph kernel template: {PREPARE}.prepare() failed ({exc.__class__.__name__}: {exc})",
                  file=sys.stderr)
    gc.collect()
    gc.freeze()  # what is here now is never collected in a kernel: its pages stay shared


def _die_with_parent() -> None:
    # Linux: SIGTERM to this process when the server exits, however it exits.
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def template_main(socket_path: str, modules: Sequence[str] = PRELOAD) -> None:
    """Preload ``modules``, listen on ``socket_path`` and fork a kernel for each request; never returns.

    Each live kernel's arguments are in ``<pid>.argv`` next to the socket
    (:func:`forked_kernel_arguments`): a forked process keeps the template's
    command line, so nothing else tells which kernel it is.
    """
    global _REGISTRY
    _die_with_parent()
    _REGISTRY = os.path.dirname(socket_path)
    parent = os.getppid()
    _preload(modules)
    # Reaped here as they exit, so that their CPU time is counted in this process's children's (/proc).
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)  # from here a connection succeeds: the server knows the template is ready
    listener.settimeout(2.0)
    while os.getppid() == parent:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        with connection:
            connection.settimeout(10.0)
            try:
                request = _read_request(connection)
            except (OSError, ValueError) as exc:
                _reply(connection, {"error": f"{exc.__class__.__name__}: {exc}"})
                continue
            # Not reaped before it is registered: a kernel that exits at once leaves no stale record.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            pid = os.fork()
            if pid == 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                listener.close()
                connection.close()
                _run_kernel(request)  # never returns
            try:
                _register(pid, request["argv"])
            except OSError:
                pass  # only the benchmarks read the record
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _reply(connection, {"pid": pid})
    os._exit(0)


def _register(pid: int, argv: Sequence[str]) -> None:
    if _REGISTRY is not None:
        with open(os.path.join(_REGISTRY, f"{pid}.argv"), "w", encoding="utf-8") as file:
            json.dump(list(argv), file)


def _reap(signum: int, frame: Any) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if _REGISTRY is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(_REGISTRY, f"{pid}.argv"))


def forked_kernel_arguments(pid: int) -> list[str] | None:
    """The ipykernel arguments of a live kernel a template forked (``-f kernel-<id>.json`` ...); None otherwise.

    Linux (/proc): the template's command line names its socket, next to which it keeps them.
    """
    try:
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        command = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return None
    if command[1:3] != [b"-m", b"morph.app.kernel_fork"] or len(command) < 4:
        return None
    try:
        found = json.loads((Path(os.fsdecode(command[3])).parent / f"{pid}.argv").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [str(a) for a in found] if isinstance(found, list) else None


def _read_line(connection: socket.socket, limit: int = _MAX_REQUEST) -> bytes:
    """One newline-ended message (requests and replies are one JSON object per line)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError("message too large")
    return data


def _read_request(connection: socket.socket) -> dict[str, Any]:
    request = json.loads(_read_line(connection))
    if not (isinstance(request, dict) and isinstance(request.get("argv"), list)
            and all(isinstance(a, str) for a in request["argv"]) and isinstance(request.get("env"), dict)):
        raise ValueError("not a kernel request")
    return request


def _reply(connection: socket.socket, message: dict[str, Any]) -> None:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _run_kernel(request: Mapping[str, Any]) -> None:
    """In the forked child: become a kernel as ``python -m ipykernel_launcher ARGV`` would, then exit."""
    code = 1
    try:
        os.setsid()  # its own session and process group, as jupyter_client launches kernels
        for number in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL if number != signal.SIGINT else signal.default_int_handler)
        random.seed()  # the template's random state is every kernel's otherwise
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        environment = {str(k): str(v) for k, v in request["env"].items()}
        environment["JPY_PARENT_PID"] = str(os.getppid())  # the template: a kernel exits when it does
        os.environ.clear()
        os.environ.update(environment)
        if request.get("cwd"):
            os.chdir(request["cwd"])
        if sys.path:
            sys.path[0] = os.getcwd()  # as `python -m` started there sets it: the notebook's folder is importable
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        # The parent to watch, which ipykernel reads from the environment at import (the template's, empty).
        argv = [*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
        if "ipywidgets" in sys.modules:
            argv.append("--IPKernelApp.extensions=ipywidgets")  # its comm targets, which its import did not register
        sys.argv = ["ipykernel_launcher", *argv]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance(argv=argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# --- the server side --------------------------------------------------------------------------------


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), which tells a reused pid apart."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class ForkedProcess:
    """A forked kernel, seen as jupyter_client sees the ``subprocess.Popen`` of a launched one.

    Its parent is the template, so its exit status is not known here: a kernel
    that has gone reports 0.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = int(pid)
        self.started = _start_time(self.pid)
        self.returncode: int | None = None

    def _alive(self) -> bool:
        started = _start_time(self.pid)
        if started is None or started != self.started:
            return False
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")

    def poll(self) -> int | None:
        if self.returncode is None and not self._alive():
            self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.05)
        return int(self.returncode or 0)

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Forker:
    """The server's handle on the template process: start it, ask it for kernels, stop it.

    Parameters
    ----------
    modules : sequence of str
        What the template imports before its first kernel.
    ready_timeout_s : float
        Most seconds to wait for the template to be ready when first asked for a kernel.
    """

    def __init__(self, modules: Sequence[str] = PRELOAD, ready_timeout_s: float = 60.0) -> None:
        self.modules = tuple(modules)
        self.ready_timeout_s = float(ready_timeout_s)
        self.folder: str | None = None
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    @property
    def socket_path(self) -> str:
        if self.folder is None:
            raise RuntimeError("the kernel template is not started")
        return os.path.join(self.folder, "fork.sock")

    def start(self) -> None:
        """Start the template (it imports in the background; :meth:`fork` waits for it the first time)."""
        if self.process is not None:
            return
        self.folder = tempfile.mkdtemp(prefix="morph-kernels-")  # 0700: only this user may ask for a kernel
        command = [sys.executable, "-m", "morph.app.kernel_fork", self.socket_path, *self.modules]
        # Its output, and its kernels', goes where the server's goes.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        self.started = time.monotonic()
        atexit.register(self.stop)

    def _connect(self) -> socket.socket | None:
        """A connection to the template, waiting for it to listen the first time; None if it is not there."""
        deadline = self.started + self.ready_timeout_s
        while True:
            if self.process is None or self.process.poll() is not None:
                return None
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(10.0)
            try:
                connection.connect(self.socket_path)
                return connection
            except OSError:
                connection.close()
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.05)

    def fork(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | None) -> ForkedProcess | None:
        """A new kernel running ``ipykernel_launcher argv``; None when the template cannot give one.

        Blocks while the template is still importing (the first kernels of a server): call it off the event loop.
        """
        connection = self._connect()
        if connection is None:
            return None
        request = json.dumps({"argv": list(argv), "env": dict(env), "cwd": cwd}).encode() + b"\n"
        try:
            with connection:
                connection.sendall(request)
                pid = json.loads(_read_line(connection)).get("pid")
        except (OSError, ValueError, AttributeError):
            return None
        return ForkedProcess(pid) if isinstance(pid, int) and pid > 0 else None

    def stop(self) -> None:
        """Stop the template (forked kernels then exit too) and remove its socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        self.process = None


def install(forker: Forker) -> None:
    """Make jupyter_client's local provisioner start plain Python kernels through ``forker``; idempotent."""
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    launch = LocalProvisioner.launch_kernel
    if getattr(launch, "_morph_forker", None) is not None:
        return

    async def launch_kernel(self: Any, cmd: list[str], **kwargs: Any) -> Any:
        arguments = kernel_arguments(cmd)
        unusual = set(kwargs) - {"env", "cwd", "extra_arguments", "kernel_id"}
        process = None
        if arguments is not None and not unusual:
            env = dict(kwargs.get("env") or os.environ)
            cwd = kwargs.get("cwd")
            loop = asyncio.get_running_loop()
            process = await loop.run_in_executor(None, forker.fork, arguments, env, None if cwd is None else str(cwd))
        if process is None:
            return await launch(self, cmd, **kwargs)
        self.process = process
        self.pid = self.pgid = process.pid  # the kernel leads its own process group
        self.cwd = kwargs.get("cwd", Path.cwd())
        return self.connection_info

    launch_kernel._morph_forker = forker  # type: ignore[attr-defined]
    LocalProvisioner.launch_kernel = launch_kernel  # type: ignore[method-assign]


if __name__ == "__main__":
    template_main(sys.argv[1], sys.argv[2:] or PRELOAD)
