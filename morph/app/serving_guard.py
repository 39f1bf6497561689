"""Hardening of the Voila server that ``morph serve`` runs: frames, hosts, sessions, closed tabs.

``morph serve`` starts Voila through :func:`main` (``python -m
morph.app.serving_guard [guard options] -- [voila options]``), which installs
the guards below in the server process before Voila starts. Under a Jupyter
server (JupyterHub, Binder) the same guards are installed by loading this
module as a server extension (``--ServerApp.jpserver_extensions``, see
``deploy/``), where the session limit, the host check and closed tabs are
left to the hub and the culler.

What each guard closes:

- **Malformed kernel-websocket frames.** jupyter_server's decoder of the v1
  binary protocol trusts the part count in the first 8 bytes of a frame:
  ``b"\\xff" * 8`` makes it build a list of 2**64 offsets, which stalls the
  event loop (every session of the server) and grows memory until the
  process dies. :func:`check_v1_frame` validates a frame in O(parts) before
  it is decoded; a bad frame closes that one connection.
- **Clients without the v1 subprotocol.** On the legacy (JSON) protocol a
  reply with binary buffers, e.g. to the widget manager's ``request_states``,
  is sent in the legacy binary layout, which Voila's websocket handler then
  parses as a v1 frame (same unbounded loop). Browsers offer v1; any client
  that does not is refused.
- **Closed tabs.** A page's kernel is shut down a few seconds after its last
  websocket closes. The page's own shutdown request on unload carries no XSRF
  token; rather than exempt it from the check, it is acknowledged (204) and
  left to the closing websocket.
- **Too many viewers.** Beyond ``max_sessions`` kernels serving pages, a new
  page gets a short 503 page ("the dashboard is full") instead of a kernel.
- **Foreign Host headers.** On a loopback address, only ``localhost``,
  ``127.0.0.1`` and ``[::1]`` (with the server's port) are answered, so a DNS
  rebinding page cannot reach the server through another name.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from .bundle import URL_ENV, bundle_path

__all__ = [
    "GuardSettings",
    "V1_SUBPROTOCOL",
    "MAX_FRAME_PARTS",
    "check_v1_frame",
    "host_allowed",
    "install",
    "main",
]

log = logging.getLogger("morph.app.serving_guard")

V1_SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
CHANNELS = frozenset({"shell", "control", "iopub", "stdin"})

MAX_FRAME_PARTS = 1024
"""Most parts a v1 frame may declare: channel, 4 message parts and widget buffers (a handful in practice)."""


@dataclass
class GuardSettings:
    """What the guards enforce.

    Attributes
    ----------
    max_sessions : int or None
        Most kernels serving pages at once (kernels pre-started for the pool
        are not counted); ``None``: no limit.
    allowed_hosts : frozenset of str, optional
        Accepted ``Host`` header values (lower case, with the port); empty:
        any host.
    closed_grace_s : float
        Seconds after a kernel's last websocket closes before it is shut
        down (a reconnecting page keeps it); negative: never.
    bundle_path : str or None
        Path at which plotly's figure-widget script is served to every page
        (:mod:`morph.app.bundle`); ``None``: pages get it from their kernel.
    """

    max_sessions: int | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    closed_grace_s: float = 5.0
    bundle_path: str | None = None


SETTINGS = GuardSettings()


# --- frames ------------------------------------------------------------------------------------


def check_v1_frame(message: Any, max_parts: int = MAX_FRAME_PARTS) -> str | None:
    """Why a kernel-websocket message is not a well-formed v1 frame, or ``None`` when it is.

    A v1 frame is ``n`` (8 bytes, little-endian), then ``n`` offsets (8 bytes
    each), then the channel name and the message parts; the offsets start
    right after the offset table, never decrease, and end within the frame.
    The check reads at most ``max_parts`` + 1 integers, whatever ``n`` says.

    Parameters
    ----------
    message : bytes or str
        As received from the websocket (text is not a v1 frame).
    max_parts : int
        Largest ``n`` accepted.
    """
    if not isinstance(message, (bytes, bytearray, memoryview)):
        return "a text message on a binary (v1) connection"
    data = bytes(message[: 8 * (max_parts + 2)])
    size = len(message)
    if size < 8:
        return f"a frame of {size} bytes (fewer than 8)"
    count = int.from_bytes(data[:8], "little")
    # channel + header, parent header, metadata and content: 6 offsets at least.
    if not 6 <= count <= max_parts:
        return f"a frame declaring {min(count, 10**12)} offsets (6 to {max_parts} allowed)"
    table_end = 8 * (count + 1)
    if size < table_end:
        return f"a frame of {size} bytes, shorter than its offset table ({table_end} bytes)"
    offsets = [int.from_bytes(data[8 * (i + 1): 8 * (i + 2)], "little") for i in range(count)]
    if offsets[0] != table_end:
        return "a frame whose first part does not start after the offset table"
    if any(b < a for a, b in zip(offsets, offsets[1:])) or offsets[-1] > size:
        return "a frame whose offsets decrease or run past its end"
    channel = bytes(message[offsets[0]: min(offsets[1], offsets[0] + 16)]).decode("ascii", errors="replace")
    if offsets[1] - offsets[0] > 16 or channel not in CHANNELS:
        return "a frame for an unknown channel"
    return None


def _bounded_read_header(message: bytes) -> dict | None:
    """Voila's reader of an outgoing frame's header, for well-formed v1 frames only."""
    import json

    if check_v1_frame(message) is not None:
        return None
    count = int.from_bytes(message[:8], "little")
    offsets = [int.from_bytes(message[8 * (i + 1): 8 * (i + 2)], "little") for i in range(count)]
    try:
        return json.loads(message[offsets[1]: offsets[2]].decode("utf-8"))
    except ValueError:
        return None


def _guarded_connection_class(base: type) -> type:
    """``base`` (a kernel websocket connection class) with frame checks and closed-tab shutdown."""

    class GuardedConnection(base):  # type: ignore[misc, valid-type]
        """Refuses clients without the v1 subprotocol and malformed frames; shuts down orphaned kernels."""

        _refused = False

        def _refuse(self, reason: str) -> None:
            if self._refused:
                return
            self._refused = True  # nothing more from this client reaches the kernel
            log.warning("closing kernel websocket %s: %s", self.kernel_id, reason)
            try:
                # Closing runs disconnect(), which closes this connection's zmq streams.
                self.websocket_handler.close(1008, "malformed or unsupported kernel message")
            except Exception:  # already closed
                pass

        _connected = False

        async def connect(self) -> Any:
            if self.subprotocol != V1_SUBPROTOCOL:
                # Close before subscribing: the legacy reply path is never reached.
                log.warning("refusing kernel websocket %s without the %s subprotocol", self.kernel_id, V1_SUBPROTOCOL)
                self._refused = True
                self.websocket_handler.close(1002, f"the {V1_SUBPROTOCOL} subprotocol is required")
                return None
            self._connected = True
            return await _maybe_await(super().connect())

        def handle_incoming_message(self, incoming_msg: Any) -> None:
            if self._refused:
                return
            if self.subprotocol != V1_SUBPROTOCOL:
                self._refuse("no v1 subprotocol")
                return
            reason = check_v1_frame(incoming_msg)
            if reason is not None:
                self._refuse(reason)
                return
            super().handle_incoming_message(incoming_msg)

        def disconnect(self) -> None:
            kernel_id = self.kernel_id
            manager = self.multi_kernel_manager
            if not self._connected:
                # Refused before connecting: it holds no streams and was never counted as a
                # connection, so the base class's decrement would make the kernel's real viewer
                # look gone (to the culler and to the shutdown below).
                if self._open_sessions.get(self.session_key) is self.websocket_handler:
                    self._open_sessions.pop(self.session_key)
                return
            super().disconnect()
            if SETTINGS.closed_grace_s >= 0 and kernel_id in manager:
                asyncio.get_event_loop().call_later(
                    SETTINGS.closed_grace_s, lambda: asyncio.ensure_future(_shutdown_if_orphaned(manager, kernel_id))
                )

    GuardedConnection.__name__ = GuardedConnection.__qualname__ = f"Guarded{base.__name__}"
    return GuardedConnection


async def _maybe_await(value: Any) -> Any:
    if asyncio.isfuture(value) or asyncio.iscoroutine(value):
        return await value
    return value


async def _shutdown_if_orphaned(manager: Any, kernel_id: str) -> None:
    """Shut a kernel down when no websocket has reconnected to it (its tab was closed)."""
    if kernel_id not in manager or manager._kernel_connections.get(kernel_id, 0) > 0:
        return
    log.info("shutting down kernel %s: its page closed", kernel_id)
    try:
        await _maybe_await(manager.shutdown_kernel(kernel_id))
    except Exception as exc:  # already gone (culled, or shut down by the page)
        log.debug("kernel %s: %s", kernel_id, exc)


# --- sessions and hosts ------------------------------------------------------------------------


def host_allowed(host: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request's ``Host`` header is one of ``allowed`` (any host when ``allowed`` is empty)."""
    if not allowed:
        return True
    return (host or "").strip().lower() in allowed


def loopback_hosts(port: int) -> frozenset[str]:
    """The names a browser on this machine uses for a loopback server on ``port``."""
    return frozenset(f"{name}:{port}" for name in ("localhost", "127.0.0.1", "[::1]"))


def _is_loopback_peer(address: str | None) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def _page_sessions(kernel_manager: Any) -> int:
    """Kernels serving pages: every kernel, less those waiting in the pre-started pool."""
    pooled = sum(len(pool) for pool in getattr(kernel_manager, "_pools", {}).values())
    return max(0, len(kernel_manager.list_kernel_ids()) - pooled)


_FULL_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Dashboard full</title></head>
<body style="font-family:sans-serif;max-width:36em;margin:4em auto">
<h1>The dashboard is full</h1>
<p>It is serving as many viewers as this server allows. Please try again in a minute.</p>
</body></html>
"""


def _install_request_guards() -> None:
    """Answer foreign hosts with 400 and new pages beyond the session limit with 503, before any handler runs."""
    import tornado.web
    from voila.handler import VoilaHandler

    from .bundle import bundle_handler_class
    from voila.request_info_handler import RequestInfoSocketHandler
    from voila.shutdown_kernel_handler import VoilaShutdownKernelHandler

    class RefuseHandler(tornado.web.RequestHandler):
        def initialize(self, status: int, body: str, retry_after: int | None = None) -> None:
            self._status, self._body, self._retry_after = status, body, retry_after

        def prepare(self) -> None:
            self.set_status(self._status)
            self.set_header("Content-Type", "text/html; charset=utf-8" if "<" in self._body else "text/plain")
            self.set_header("Cache-Control", "no-store")
            if self._retry_after:
                self.set_header("Retry-After", str(self._retry_after))
            self.finish(self._body or None)

    original = tornado.web.Application.find_handler
    if getattr(original, "_morph_guard", False):
        return

    def find_handler(self: tornado.web.Application, request: Any, **kwargs: Any) -> Any:
        if not host_allowed(request.host, SETTINGS.allowed_hosts):
            log.warning("refusing a request for a foreign host")
            return self.get_handler_delegate(request, RefuseHandler, {"status": 400, "body": "Unknown host\n"})
        if SETTINGS.bundle_path and request.path == SETTINGS.bundle_path and request.method in ("GET", "HEAD"):
            return self.get_handler_delegate(request, bundle_handler_class())
        delegate = original(self, request, **kwargs)
        handler_class = getattr(delegate, "handler_class", None)
        if handler_class is RequestInfoSocketHandler and not _is_loopback_peer(request.remote_ip):
            # Where a ready kernel waits for its page's query string: for kernels on this machine only.
            return self.get_handler_delegate(request, RefuseHandler, {"status": 403, "body": "Forbidden\n"})
        if isinstance(handler_class, type) and issubclass(handler_class, VoilaHandler):
            # Overrides are off, yet Voila skips its ready kernels for a page that names a theme
            # or template: drop both, so such a link is served like any other.
            for key in ("theme", "template"):
                request.arguments.pop(key, None)
                request.query_arguments.pop(key, None)
        if request.method == "POST" and getattr(delegate, "handler_class", None) is VoilaShutdownKernelHandler:
            # The page asks on unload without an XSRF token, which is refused (403, an error in
            # its console). Its kernel is shut down when its websocket closes: acknowledge only.
            return self.get_handler_delegate(request, RefuseHandler, {"status": 204, "body": ""})
        limit = SETTINGS.max_sessions
        if (
            limit is not None and request.method == "GET"
            and isinstance(getattr(delegate, "handler_class", None), type)
            and issubclass(delegate.handler_class, VoilaHandler)
        ):
            manager = self.settings.get("kernel_manager")
            if manager is not None and _page_sessions(manager) >= limit:
                log.warning("refusing a page: %d sessions open (limit %d)", _page_sessions(manager), limit)
                return self.get_handler_delegate(
                    request, RefuseHandler, {"status": 503, "body": _FULL_PAGE, "retry_after": 30}
                )
        return delegate

    find_handler._morph_guard = True  # type: ignore[attr-defined]
    tornado.web.Application.find_handler = find_handler  # type: ignore[method-assign]


def _install_frame_guards() -> None:
    """Bound Voila's own reader of outgoing frames, and guard the default connection class."""
    import voila.tornado.kernel_websocket_handler as voila_ws
    from jupyter_server.services.kernels.connection import channels

    voila_ws.read_header_from_binary_message = _bounded_read_header
    if not getattr(channels.ZMQChannelsWebsocketConnection, "_morph_guard", False):
        guarded = _guarded_connection_class(channels.ZMQChannelsWebsocketConnection)
        guarded._morph_guard = True
        channels.ZMQChannelsWebsocketConnection = guarded


def _install_cull_guard() -> None:
    """Skip kernels still starting when culling (jupyter_server logs a traceback for each otherwise)."""
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    original = MappingKernelManager.cull_kernel_if_idle
    if getattr(original, "_morph_guard", False):
        return

    async def cull_kernel_if_idle(self: Any, kernel_id: str) -> Any:
        kernel = self._kernels.get(kernel_id)
        if kernel is not None and kernel._trait_values.get("last_activity") is None:
            return None  # started moments ago: not idle, and not yet checkable
        return await _maybe_await(original(self, kernel_id))

    cull_kernel_if_idle._morph_guard = True  # type: ignore[attr-defined]
    MappingKernelManager.cull_kernel_if_idle = cull_kernel_if_idle  # type: ignore[method-assign]


def guarded_connection_class() -> type:
    """The guarded connection class (for ``ServerApp.kernel_websocket_connection_class``)."""
    from jupyter_server.services.kernels.connection import channels

    _install_frame_guards()
    return channels.ZMQChannelsWebsocketConnection


def install(settings: GuardSettings | None = None) -> None:
    """Install every guard in this process (before the server starts); idempotent."""
    global SETTINGS
    if settings is not None:
        SETTINGS = settings
    _install_frame_guards()
    _install_request_guards()
    _install_cull_guard()


# --- as a Jupyter server extension (JupyterHub, Binder) --------------------------------------


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "morph.app.serving_guard"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    # The hub authenticates and bounds users; here: frames and legacy clients. Kernels of
    # closed tabs are left to the culler: in JupyterLab a closed notebook keeps its kernel.
    # plotly's figure-widget script is served here too, once per browser instead of once per kernel.
    script = bundle_path(server_app.base_url)
    install(GuardSettings(max_sessions=None, allowed_hosts=frozenset(), closed_grace_s=-1.0, bundle_path=script))
    from . import page_template, templates_once

    templates_once.install()  # Voila's pages under this server: templates compiled once, not once per page
    # Morph's page template (deploy/ names it), found by Voila's extension, which collects its template
    # paths when it loads: after this one, as jupyter_server loads extensions in alphabetical order.
    page_template.install()
    os.environ[URL_ENV] = script  # the kernels this server starts inherit it: their figures import the script
    server_app.web_app.settings["kernel_websocket_connection_class"] = guarded_connection_class()
    server_app.log.info("morph: kernel websocket guards installed; plotly's widget script served at %s", script)


# --- as the server process of ``morph serve`` --------------------------------------------------


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m morph.app.serving_guard",
                                     description="Run Voila with Morph's serving guards.")
    parser.add_argument("--max-sessions", type=int, default=None)
    parser.add_argument("--allow-host", action="append", default=[], help="accepted Host header (repeatable)")
    parser.add_argument("--closed-grace", type=float, default=5.0)
    parser.add_argument("--class-size", type=int, default=None,
                        help="class mode: this many kernels warmed up at start, refilled when no page waits")
    parser.add_argument("--base-url", default=None,
                        help="Voila's base URL: serve plotly's figure-widget script once, under it")
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    return parser.parse_args(argv[:split]), argv[split + 1:]


def main(argv: Sequence[str] | None = None) -> None:
    """Install the guards, then run Voila with the arguments after ``--``.

    The token, when any, is read from the ``MORPH_TOKEN`` environment variable
    (never from the command line, which ``ps`` shows) and removed from the
    environment before any kernel starts.
    """
    guard, voila_args = _parse(sys.argv[1:] if argv is None else argv)
    from . import page_template, templates_once
    from .kernel import quick_jsonschema

    # Voila's server stack imports jsonschema (jupyter_events): without its IRI grammars, 1.6 s less per start.
    quick_jsonschema()
    templates_once.install()  # each page's templates compiled once per server, not once per page
    page_template.install()  # Voila finds Morph's page template (morph.app.page_template)
    install(GuardSettings(
        max_sessions=guard.max_sessions,
        allowed_hosts=frozenset(h.lower() for h in guard.allow_host),
        closed_grace_s=guard.closed_grace,
        bundle_path=bundle_path(guard.base_url) if guard.base_url else None,
    ))
    if SETTINGS.bundle_path:
        os.environ[URL_ENV] = SETTINGS.bundle_path  # kernels inherit it: their figures import the served script
    from .kernel import LEAN_ENV

    os.environ[LEAN_ENV] = "1"  # the dashboard's kernels load plotly without nbformat (morph.app.kernel)
    token = os.environ.pop("MORPH_TOKEN", None)
    from . import kernel_fork

    if sys.platform == "linux" and os.environ.get(kernel_fork.ENABLE_ENV, "1").strip() != "0":
        # Kernels forked from one process that imported their libraries (morph.app.kernel_fork).
        forker = kernel_fork.Forker()
        forker.start()
        kernel_fork.install(forker)
    if guard.class_size:
        from .class_pool import install as install_class_pool

        install_class_pool(guard.class_size, max_sessions=guard.max_sessions)
    from voila.app import Voila

    options = {"kernel_websocket_connection_class": guarded_connection_class()}
    if token:
        options["token"] = token
    Voila.launch_instance(argv=voila_args, **options)


if __name__ == "__main__":
    main()
