"""``morph serve``: the dashboard in the browser, served by Voila.

Voila runs the dashboard notebook and only that notebook (no file browser,
so no other notebook can be executed from a browser), with the lab
template, cell sources stripped and tracebacks kept out of the page, through
the guards of :mod:`morph.app.serving_guard` (malformed kernel messages, foreign
Host headers, a session limit, kernels of closed tabs shut down within
seconds). It listens on the loopback interface unless told otherwise, keeps
the Jupyter server's XSRF and origin checks, and keeps ``--pool-size``
kernels started with the dashboard already built, so a page is quick.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import MorphError
from .common import positive_int

__all__ = [
    "add_parser", "run", "dashboard_notebook", "voila_command", "check_port_free", "normalize_base_url", "read_token",
    "default_max_sessions", "prepare_fits", "available_mb", "check_class_size", "MAX_CLASS",
]

NOTEBOOK = "dashboard.ipynb"

KERNEL_MB = 160
"""Resident memory budgeted per dashboard kernel (MB), to derive the default session limit."""

PAGE_EXTENSIONS = ("@voila-dashboards/widgets-manager8", "@jupyter-widgets/jupyterlab-manager", "anywidget")
"""JupyterLab extensions a served page loads: Voila's widget manager, ipywidgets, and anywidget
(plotly's FigureWidget, the share bar)."""

PAGE_TEMPLATE = "morph"
"""The Voila template pages render with: lab's without its links to a CDN (``morph.app.page_template``,
which the server's process puts where Voila finds it; named here, since the command line never imports the app)."""

IOPUB_TIMEOUT_S = 60
"""Seconds Voila waits for the dashboard cell's outputs (see :func:`voila_command`)."""

MAX_DEFAULT_SESSIONS = 48
"""Most viewers at once when ``--max-sessions`` is not given, however much memory is free."""

MAX_CLASS = 200
"""Most kernels ``--class`` warms up, however much memory is free (one server process relays them all)."""

RESERVED_MB = 1024
"""Memory left to the server and the system when sizing sessions and classes (MB)."""



def dashboard_notebook() -> Path:
    """Path of the dashboard notebook: inside an installed wheel, else in the repository.

    Raises
    ------
    MorphError
        If neither ``morph/notebooks`` nor the repository's ``notebooks/`` holds it.
    """
    package = Path(__file__).resolve().parents[1]
    places = (package / "notebooks", package.parent / "notebooks")
    for folder in places:
        if (folder / NOTEBOOK).is_file():
            return folder / NOTEBOOK
    raise MorphError(
        f"the dashboard notebook {NOTEBOOK} is missing (looked in {' and '.join(map(str, places))}); reinstall morph"
    )


def voila_command(
    target: str | os.PathLike,
    *,
    port: int,
    ip: str = "127.0.0.1",
    base_url: str = "/",
    cull_idle_timeout: int = 60,
    cull_interval: int = 10,
    token: str | None = None,
    show_tracebacks: bool = False,
    pool_size: int = 0,
    max_sessions: int | None = None,
    closed_grace_s: float = 5.0,
    class_size: int = 0,
) -> list[str]:
    """The command that runs Voila with Morph's serving defaults and guards (:mod:`morph.app.serving_guard`).

    Parameters
    ----------
    target : path
        A notebook (serves it alone) or a folder (serves the notebooks in it,
        which the tests use; ``morph serve`` always passes the dashboard notebook).
    port, ip, base_url
        Where to listen, and the URL prefix (behind a reverse proxy).
    cull_idle_timeout, cull_interval : int
        Seconds a kernel with no page connected may idle before it is shut
        down (a page that never connected), and how often that is checked.
    token : str, optional
        Require this token (``?token=...`` once; a cookie afterwards). Passed
        on the command line: only for tests; ``morph serve`` passes it in the
        environment (``MORPH_TOKEN``), which ``ps`` does not show.
    show_tracebacks : bool
        Show Python tracebacks in the page (never for users; the dashboard
        turns its own errors into messages anyway).
    pool_size : int
        Kernels kept started with the dashboard built (Voila's preheated
        kernels); 0: start a kernel per page. Only with a single notebook.
    max_sessions : int, optional
        Most kernels serving pages at once; beyond it a page says the
        dashboard is full (HTTP 503).
    closed_grace_s : float
        Seconds after a page's last connection closes before its kernel is shut down.
    class_size : int
        Class mode (:mod:`morph.app.class_pool`): this many kernels warmed up
        before the first page (it replaces ``pool_size``), refilled only when
        no page is waiting. 0: off.
    """
    if class_size > 0:
        pool_size = class_size
    guard = [sys.executable, "-m", "morph.app.serving_guard", f"--closed-grace={closed_grace_s:g}",
             f"--base-url={normalize_base_url(base_url)}"]
    if max_sessions is not None:
        guard.append(f"--max-sessions={max_sessions}")
    if class_size > 0:
        guard.append(f"--class-size={class_size}")
    if _is_loopback(ip):
        # DNS rebinding: a loopback server answers only the names of this machine.
        guard += [f"--allow-host={host}:{port}" for host in ("localhost", "127.0.0.1", "[::1]")]
    command = [
        *guard, "--", str(target),
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={ip}",
        # Voila quietly moves to the next free port otherwise: an error is clearer.
        "--Voila.port_retries=0",
        f"--Voila.base_url={normalize_base_url(base_url)}",
        # Voila's lab template without its links to a CDN (morph.app.page_template).
        f"--template={PAGE_TEMPLATE}",
        "--VoilaConfiguration.allow_template_override=NO",
        # Voila's lab template writes ?theme= into the page unescaped: a link could carry script.
        "--VoilaConfiguration.allow_theme_override=NO",
        "--strip_sources=True",
        f"--show_tracebacks={show_tracebacks}",
        # Voila waits this long for a cell's outputs after the cell ends (default 4 s). When
        # many pages open at once on a busy machine the dashboard's outputs take longer,
        # and the page was then left without them: never interactive.
        f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT_S}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_timeout}",
        f"--MappingKernelManager.cull_interval={cull_interval}",
    ]
    if Path(target).suffix == ".ipynb":
        # The dashboard needs only its widgets' front-end extensions: plotly's JupyterLab
        # renderer alone is 4.8 MB of script per page, and no other extension installed in
        # the environment gets to run in a shared page. (A folder of teaching notebooks
        # draws static plotly figures, which need that renderer.)
        command += [f"--VoilaConfiguration.extension_allowlist={name}" for name in PAGE_EXTENSIONS]
    if pool_size > 0:
        command += ["--preheat_kernel=True", f"--pool_size={pool_size}"]
    if token:
        command.append(f"--Voila.token={token}")
        # A visitor without the token gets a page that asks for it and keeps the link's settings.
        command.append("--Voila.identity_provider_class=morph.app.login.MorphIdentityProvider")
    return command


def normalize_base_url(base_url: str) -> str:
    """``dash`` -> ``/dash/``: Voila expects the prefix with both slashes."""
    return "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"


def check_port_free(ip: str, port: int) -> None:
    """Raise a one-sentence :class:`MorphError` when ``ip:port`` cannot be listened on."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the server will: a port left in TIME_WAIT by a stopped server is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise MorphError(f"port {port} on {ip} is already in use; choose another with --port") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise MorphError(f"no permission to listen on port {port}; choose a port above 1023") from None
            raise MorphError(f"cannot listen on {ip}:{port} ({exc.strerror}); check --ip") from None


def available_mb() -> float | None:
    """Memory available now (``MemAvailable`` of /proc/meminfo, MB); ``None`` where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_max_sessions(kernel_mb: float = KERNEL_MB, cap: int = MAX_DEFAULT_SESSIONS) -> int:
    """Sessions that fit in the memory available now: ``(available - 1 GB) / kernel_mb``, within 2 .. ``cap``."""
    free = available_mb()
    if free is None:
        return 8
    return int(min(cap, max(2, (free - RESERVED_MB) // kernel_mb)))


def check_class_size(size: int, max_sessions: int | None, free_mb: float | None,
                     kernel_mb: float = KERNEL_MB) -> None:
    """Refuse a ``--class`` size the machine cannot hold, or the session limit cannot serve.

    The class's kernels are started at once, before any page: ``size`` kernels
    of ``kernel_mb`` must fit in the memory available less 1 GB.

    Raises
    ------
    MorphError
        One sentence saying what is wrong and what to do.
    """
    if size > MAX_CLASS:
        raise MorphError(f"--class {size} is more than one server relays well (at most {MAX_CLASS}); "
                         "serve a larger class through JupyterHub (docs/serving.md)")
    if max_sessions is not None and max_sessions < size:
        raise MorphError(f"--max-sessions {max_sessions} is below --class {size}: the class could not all open "
                         "the dashboard; raise --max-sessions or leave it out")
    if free_mb is not None:
        fits = int(max(0.0, free_mb - RESERVED_MB) // kernel_mb)
        if size > fits:
            raise MorphError(f"--class {size} needs about {size * kernel_mb / 1024:.1f} GB for its kernels "
                             f"({kernel_mb} MB each) but {free_mb / 1024:.1f} GB is available, 1 GB of it kept for "
                             f"the server; at most --class {fits} fits on this machine now")


def _is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the dashboard in the browser (Voila)",
        description=(
            "Serve the Morph dashboard with Voila: the dashboard notebook only, sources hidden, no tracebacks in "
            "the page, at most --max-sessions viewers at once, kernels of closed pages shut down within seconds. "
            "Listens on 127.0.0.1 unless --ip says otherwise; use a token (MORPH_TOKEN or --token-file) or a "
            "JupyterHub when serving to a network."
        ),
    )
    parser.add_argument("--port", type=positive_int(), default=8866, help="port to listen on (default 8866)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    parser.add_argument("--base-url", default="/", metavar="PATH", help="URL prefix, e.g. behind a reverse proxy")
    parser.add_argument(
        "--max-sessions", type=positive_int(), default=None, metavar="N",
        help=f"most viewers at once; more get a 'dashboard is full' page (default: free memory / "
             f"{KERNEL_MB} MB per kernel, at most {MAX_DEFAULT_SESSIONS})",
    )
    parser.add_argument(
        "--pool-size", type=positive_int(allow_zero=True), default=None, metavar="N",
        help="kernels kept started with the dashboard built, for quick pages (default 2; 0 turns the pool off)",
    )
    parser.add_argument(
        "--class", dest="class_size", type=positive_int(), default=None, metavar="N",
        help="class mode: start N kernels with the dashboard built before the lesson, and replace the ones "
             f"taken only when no page is waiting (about {KERNEL_MB} MB of memory each; instead of --pool-size)",
    )
    parser.add_argument(
        "--cull-idle-timeout", type=positive_int(), default=60, metavar="SECONDS",
        help="shut down a kernel whose page never connected after this long (default 60)",
    )
    parser.add_argument(
        "--cull-interval", type=positive_int(), default=10, metavar="SECONDS",
        help="how often to look for such kernels (default 10)",
    )
    parser.add_argument("--token", default=None,
                        help="require this token (visible in ps: prefer MORPH_TOKEN or --token-file)")
    parser.add_argument("--token-file", default=None, metavar="PATH",
                        help="require the token written in this file (first line)")
    parser.set_defaults(handler=run)


def read_token(token: str | None, token_file: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token to require: ``--token``, else the first line of ``--token-file``, else ``MORPH_TOKEN``.

    Raises
    ------
    MorphError
        If the file cannot be read or holds no token.
    """
    if token:
        return token
    if token_file:
        try:
            lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise MorphError(f"cannot read the token file {token_file} ({exc.__class__.__name__})") from None
        if not lines or not lines[0].strip():
            raise MorphError(f"the token file {token_file} is empty; write the token on its first line")
        return lines[0].strip()
    return environ.get("MORPH_TOKEN") or None


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("voila") is None or importlib.util.find_spec("plotly") is None:
        raise MorphError("the dashboard needs the app extra: pip install 'morph[app]'")
    notebook = dashboard_notebook()
    check_port_free(args.ip, args.port)
    token = read_token(args.token, args.token_file)
    class_size = args.class_size or 0
    if class_size and args.pool_size is not None:
        raise MorphError("give --class or --pool-size, not both (--class N keeps N kernels ready)")
    pool_size = class_size or (2 if args.pool_size is None else args.pool_size)
    if class_size:
        check_class_size(class_size, args.max_sessions, available_mb())
        max_sessions = args.max_sessions or max(class_size, default_max_sessions())
    else:
        max_sessions = args.max_sessions or default_max_sessions()
    command = voila_command(
        notebook, port=args.port, ip=args.ip, base_url=args.base_url,
        cull_idle_timeout=args.cull_idle_timeout, cull_interval=args.cull_interval,
        pool_size=pool_size, max_sessions=max_sessions, class_size=class_size,
    )
    host = socket.getfqdn() if args.ip in ("", "0.0.0.0", "::") else args.ip
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{args.port}{normalize_base_url(args.base_url)}"
    print(f"Morph dashboard: {url}  (Ctrl+C to stop)", flush=True)
    ready = (f"class mode: {class_size} kernels warming up now (about {class_size * KERNEL_MB / 1024:.1f} GB), "
             "replaced when no page is waiting" if class_size else f"{pool_size} kernel(s) kept ready")
    print(f"morph: up to {max_sessions} viewers at once; {ready}"
          + ("; a token is required (open the link with ?token=...)" if token else ""), flush=True)
    if not _is_loopback(args.ip) and not token:
        print("morph: warning: serving to the network without a token; anyone who can reach this port can use "
              "the dashboard (set MORPH_TOKEN, or serve through JupyterHub)", file=sys.stderr, flush=True)
    prepare_fits()
    environ = dict(os.environ)
    environ.pop("MORPH_TOKEN", None)
    if token:
        environ["MORPH_TOKEN"] = token  # read and removed by the server before any kernel starts
    _exec(command, environ)
    return 0  # not reached


def prepare_fits() -> None:
    """Fit what every page shows once, here, so that no dashboard kernel fits or loads scipy.

    The fits are stored in Morph's cache folder (:mod:`morph.fitcache`): after
    the first start on a machine this only reads them back.
    """
    from ..decision import prepare_preset_fits

    try:
        prepare_preset_fits()
    except MorphError as exc:  # a page would fit for itself, and say what failed there
        print(f"morph: warning: the dashboard's fits could not be prepared ({exc}); each page will fit",
              file=sys.stderr, flush=True)


def _exec(command: Sequence[str], environ: Mapping[str, str]) -> None:
    # Become the server, so that Ctrl+C and a service manager's signals reach it directly.
    os.execve(command[0], list(command), dict(environ))
