"""``morph serve``: the dashboard in the browser, served by Voila.

Voila runs the dashboard notebook and only that notebook (no file browser,
so no other notebook can be executed from a browser), with the lab
template, cell sources stripped and tracebacks kept out of the page. It
listens on the loopback interface unless told otherwise, keeps the Jupyter
server's XSRF and origin checks, and shuts down the kernels of closed tabs
after ``--cull-idle-timeout`` seconds (each kernel holds ~140 MB).
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
from typing import Sequence

from ..errors import MorphError
from .common import positive_int

__all__ = ["add_parser", "run", "dashboard_notebook", "voila_command", "check_port_free", "normalize_base_url"]

NOTEBOOK = "dashboard.ipynb"


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
    cull_idle_timeout: int = 600,
    cull_interval: int = 60,
    token: str | None = None,
    show_tracebacks: bool = False,
) -> list[str]:
    """The Voila command line with Morph's serving defaults.

    Parameters
    ----------
    target : path
        A notebook (serves it alone) or a folder (serves the notebooks in it,
        which the tests use; ``morph serve`` always passes the dashboard notebook).
    port, ip, base_url
        Where to listen, and the URL prefix (behind a reverse proxy).
    cull_idle_timeout, cull_interval : int
        Seconds a kernel without an open page may idle before it is shut
        down, and how often that is checked.
    token : str, optional
        Require this token (``?token=...`` once; a cookie afterwards).
    show_tracebacks : bool
        Show Python tracebacks in the page (never for users; the dashboard
        turns its own errors into messages anyway).
    """
    command = [
        sys.executable, "-m", "voila", str(target),
        "--no-browser",
        f"--port={port}",
        f"--Voila.ip={ip}",
        # Voila quietly moves to the next free port otherwise: an error is clearer.
        "--Voila.port_retries=0",
        f"--Voila.base_url={normalize_base_url(base_url)}",
        "--template=lab",
        "--VoilaConfiguration.allow_template_override=NO",
        "--strip_sources=True",
        f"--show_tracebacks={show_tracebacks}",
        f"--MappingKernelManager.cull_idle_timeout={cull_idle_timeout}",
        f"--MappingKernelManager.cull_interval={cull_interval}",
    ]
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
            "the page, kernels of closed pages shut down after an idle timeout. Listens on 127.0.0.1 unless "
            "--ip says otherwise; use --token (or a JupyterHub) when serving to a network."
        ),
    )
    parser.add_argument("--port", type=positive_int(), default=8866, help="port to listen on (default 8866)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    parser.add_argument("--base-url", default="/", metavar="PATH", help="URL prefix, e.g. behind a reverse proxy")
    parser.add_argument(
        "--cull-idle-timeout", type=positive_int(), default=600, metavar="SECONDS",
        help="shut down the kernel of a page closed this long ago (default 600)",
    )
    parser.add_argument(
        "--cull-interval", type=positive_int(), default=60, metavar="SECONDS",
        help="how often to look for such kernels (default 60)",
    )
    parser.add_argument("--token", default=None, help="require this token: open the printed URL, which carries it")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("voila") is None or importlib.util.find_spec("plotly") is None:
        raise MorphError("the dashboard needs the app extra: pip install 'morph[app]'")
    notebook = dashboard_notebook()
    check_port_free(args.ip, args.port)
    command = voila_command(
        notebook, port=args.port, ip=args.ip, base_url=args.base_url,
        cull_idle_timeout=args.cull_idle_timeout, cull_interval=args.cull_interval, token=args.token,
    )
    host = socket.getfqdn() if args.ip in ("", "0.0.0.0", "::") else args.ip
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{args.port}{normalize_base_url(args.base_url)}" + (f"?token={args.token}" if args.token else "")
    print(f"Morph dashboard: {url}  (Ctrl+C to stop)", flush=True)
    if not _is_loopback(args.ip) and not args.token:
        print("morph: warning: serving to the network without a token; anyone who can reach this port can use "
              "the dashboard (add --token, or serve through JupyterHub)", file=sys.stderr, flush=True)
    _exec(command)
    return 0  # not reached


def _exec(command: Sequence[str]) -> None:
    # Become the server, so that Ctrl+C and a service manager's signals reach it directly.
    os.execv(command[0], list(command))
