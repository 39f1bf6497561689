"""Viewers that speak what a dashboard page speaks, without a browser: cheap clients that load a server.

A :class:`ProtocolViewer` does, over loopback, what the page's JavaScript does
against ``morph serve`` (Voila):

1. requests the page (``GET /?query``) and reads the id of the kernel the
   page was given (``"kernelId"`` in the page's configuration);
2. opens ``/api/kernels/<id>/channels`` with the ``v1.kernel.websocket.jupyter.org``
   subprotocol (binary frames: a count, offsets, channel, header, parent
   header, metadata, content, buffers);
3. asks for the widgets as the widget manager does: ``comm_info_request``
   for ``jupyter.widget``, then a ``jupyter.widget.control`` comm and its
   ``request_states``, answered by one ``update_states`` with every model's
   state (and closes that comm, as the manager does);
4. moves a slider by sending the slider model's state update (``comm_msg``,
   ``method: "update"``), as a page does when a student lets go of it, and
   times each move until the figure's update arrives (a ``comm_msg`` on the
   figure's comm whose parent is that move).

Everything received is checked before it is used: frame layout, sizes, JSON
types; a viewer that gets something malformed records an error and stops. Each
viewer runs as one asyncio task: 60 of them cost the client a fraction of a
core, so the server's cost is what a load test measures.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import websockets

__all__ = ["ProtocolViewer", "ViewerResult", "encode_frame", "decode_frame", "process_tree", "tree_cpu_s",
           "kernel_memory_mb", "memory_mb", "tree_pss_mb", "own_cpu_s", "kernel_cpu_by_id"]

V1 = "v1.kernel.websocket.jupyter.org"
MAX_PAGE_BYTES = 32 * 2**20
MAX_FRAME_BYTES = 64 * 2**20
MAX_PARTS = 1024
KERNEL_ID = re.compile(rb'"kernelId"\s*:\s*"([0-9a-f-]{36})"')
SLIDER_LABEL = "Latency budget (s)"


# --- the v1 kernel-websocket frame ---------------------------------------------------------------


def encode_frame(channel: str, header: dict, parent: dict, metadata: dict, content: dict,
                 buffers: list[bytes] = ()) -> bytes:
    """A v1 frame: part count, offsets (8 bytes little-endian each), channel, four JSON parts, buffers."""
    parts = [channel.encode(), *(json.dumps(p).encode() for p in (header, parent, metadata, content)), *buffers]
    count = len(parts) + 1
    offsets = [8 * (count + 1)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return b"".join([count.to_bytes(8, "little"), *(o.to_bytes(8, "little") for o in offsets), *parts])


def decode_frame(frame: Any) -> tuple[str, dict, dict, dict, dict, list[bytes]]:
    """``(channel, header, parent_header, metadata, content, buffers)`` of a v1 frame.

    Raises
    ------
    ValueError
        If the frame is not bytes, or its offsets do not describe it.
    """
    if not isinstance(frame, (bytes, bytearray)):
        raise ValueError("a text message on a v1 connection")
    size = len(frame)
    if size < 8:
        raise ValueError("a frame shorter than 8 bytes")
    count = int.from_bytes(frame[:8], "little")
    if not 6 <= count <= MAX_PARTS or size < 8 * (count + 1):
        raise ValueError(f"a frame declaring {min(count, 10**9)} offsets")
    offsets = [int.from_bytes(frame[8 * (i + 1): 8 * (i + 2)], "little") for i in range(count)]
    if offsets[0] != 8 * (count + 1) or any(b < a for a, b in zip(offsets, offsets[1:])) or offsets[-1] > size:
        raise ValueError("a frame whose offsets do not fit it")
    parts = [bytes(frame[a:b]) for a, b in zip(offsets, offsets[1:])]
    channel = parts[0].decode("ascii", errors="replace")
    decoded = []
    for part in parts[1:5]:
        value = json.loads(part.decode("utf-8")) if part else {}
        if not isinstance(value, dict):
            raise ValueError("a message part that is not a JSON object")
        decoded.append(value)
    return (channel, *decoded, parts[5:])


# --- one viewer -------------------------------------------------------------------------------


@dataclass
class ViewerResult:
    """What one viewer measured (seconds and milliseconds from its own clock)."""

    state_s: float | None = None
    """From the page's request to every widget's state (``update_states``); None if never."""
    page_s: float | None = None
    """From the page's request to the page's last byte."""
    models: int = 0
    moves_ms: list[float] = field(default_factory=list)
    moves_sent: int = 0
    error: str | None = None
    kernel_id: str | None = None
    kernel_cpu_at_state_s: float | None = None
    """The kernel's CPU seconds when the state arrived, read by the ``probe`` given to the viewer."""
    kernel_cpu_at_end_s: float | None = None
    """The same after the last move."""

    @property
    def answered(self) -> int:
        return len(self.moves_ms)


class ProtocolViewer:
    """One dashboard viewer over loopback, speaking the page's protocol (see the module's docstring).

    Parameters
    ----------
    base : str
        The server's URL, e.g. ``http://127.0.0.1:8866/`` (loopback only).
    query : str
        The page's query string (a link's settings).
    moves, pause_s : int, float
        Slider moves after the state arrived, and the pause before each.
    timeout_s : float
        Most seconds to wait for the page and the state, and for each move's answer.
    """

    def __init__(self, base: str, query: str = "", moves: int = 10, pause_s: float = 0.3,
                 timeout_s: float = 120.0, move_timeout_s: float = 30.0,
                 probe: Callable[[str], float | None] | None = None) -> None:
        parts = urlsplit(base)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("protocol viewers load a server on this machine only (http://127.0.0.1:PORT/)")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path if parts.path.endswith("/") else parts.path + "/"
        self.query, self.moves, self.pause_s = query, moves, pause_s
        self.timeout_s, self.move_timeout_s = timeout_s, move_timeout_s
        self.probe = probe
        self.session = uuid.uuid4().hex
        self.result = ViewerResult()
        self.states: dict[str, dict] = {}
        self.updates: list[tuple[float, dict]] = []
        """Each answered move: the slider's value sent, and the figure's state update that answered it."""

    # -- messages

    def _message(self, msg_type: str, content: dict, channel: str = "shell", metadata: dict | None = None) -> tuple:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "viewer", "session": self.session,
                  "date": "", "version": "5.3"}
        return header, encode_frame(channel, header, {}, metadata or {}, content)

    async def _receive(self, ws, deadline: float) -> tuple:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return decode_frame(await asyncio.wait_for(ws.recv(), remaining))

    # -- the page

    async def fetch_page(self) -> str:
        """GET the page over HTTP/1.0 (no chunked encoding); the kernel id in it."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            target = self.path + (f"?{self.query}" if self.query else "")
            writer.write(f"GET {target} HTTP/1.0\r\nHost: {self.host}:{self.port}\r\n\r\n".encode("ascii"))
            await writer.drain()
            body = b""
            while len(body) <= MAX_PAGE_BYTES:
                chunk = await reader.read(2**16)
                if not chunk:
                    break
                body += chunk
        finally:
            writer.close()
        status = body.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            raise RuntimeError(f"the page answered {status[:60].decode('ascii', errors='replace')!r}")
        found = KERNEL_ID.search(body)
        if found is None:
            raise RuntimeError("no kernel id in the page")
        return found.group(1).decode("ascii")

    async def run(self) -> ViewerResult:
        """Open the page, get every widget's state, move the slider; never raises (errors are recorded)."""
        start = time.perf_counter()
        try:
            kernel_id = await asyncio.wait_for(self.fetch_page(), self.timeout_s)
            self.result.page_s = time.perf_counter() - start
            url = f"ws://{self.host}:{self.port}{self.path}api/kernels/{kernel_id}/channels?session_id={self.session}"
            async with websockets.connect(url, subprotocols=[V1], max_size=MAX_FRAME_BYTES, open_timeout=30,
                                          ping_interval=None, compression=None) as ws:
                if ws.subprotocol != V1:
                    raise RuntimeError("the server did not accept the v1 subprotocol")
                await self._load_states(ws, start)
                self.result.state_s = time.perf_counter() - start
                self.result.kernel_id = kernel_id
                if self.probe is not None:
                    self.result.kernel_cpu_at_state_s = self.probe(kernel_id)
                await self._move(ws)
                if self.probe is not None:
                    self.result.kernel_cpu_at_end_s = self.probe(kernel_id)
        except (OSError, RuntimeError, ValueError, TimeoutError, asyncio.TimeoutError,
                websockets.exceptions.WebSocketException) as exc:
            self.result.error = f"{exc.__class__.__name__}: {exc}"[:200]
        return self.result

    async def _load_states(self, ws, start: float) -> None:
        deadline = time.monotonic() + self.timeout_s - (time.perf_counter() - start)
        info, frame = self._message("comm_info_request", {"target_name": "jupyter.widget"})
        await ws.send(frame)
        control = uuid.uuid4().hex
        _, frame = self._message("comm_open", {"comm_id": control, "target_name": "jupyter.widget.control",
                                               "data": {}}, metadata={"version": "1.0.0"})
        await ws.send(frame)
        _, frame = self._message("comm_msg", {"comm_id": control, "data": {"method": "request_states"}})
        await ws.send(frame)
        comms = None
        while comms is None or not self.states:
            channel, header, parent, _, content, _ = await self._receive(ws, deadline)
            kind = header.get("msg_type")
            if kind == "comm_info_reply" and parent.get("msg_id") == info["msg_id"]:
                found = content.get("comms")
                comms = set(found) if isinstance(found, dict) else set()
            elif kind == "comm_msg" and content.get("comm_id") == control:
                data = content.get("data")
                if isinstance(data, dict) and data.get("method") == "update_states":
                    states = data.get("states")
                    if not isinstance(states, dict) or not states:
                        raise ValueError("update_states without states")
                    self.states = {str(k): v.get("state", {}) for k, v in states.items() if isinstance(v, dict)}
                    self.models = {str(k): v.get("model_name") for k, v in states.items() if isinstance(v, dict)}
        missing = comms - set(self.states)
        if missing:
            raise RuntimeError(f"{len(missing)} widget(s) listed by comm_info have no state")
        self.result.models = len(self.states)
        _, frame = self._message("comm_close", {"comm_id": control, "data": {}})
        await ws.send(frame)

    def _find(self) -> tuple[str, dict, str]:
        slider = next((k for k, s in self.states.items()
                       if isinstance(s, dict) and s.get("description") == SLIDER_LABEL
                       and isinstance(s.get("value"), (int, float))), None)
        figure = next((k for k, s in self.states.items() if isinstance(s, dict) and "_py2js_update" in s), None)
        if slider is None or figure is None:
            raise RuntimeError(f"no {SLIDER_LABEL!r} slider or no figure among {len(self.states)} widgets")
        return slider, self.states[slider], figure

    async def _move(self, ws) -> None:
        slider, state, figure = self._find()
        value, step = float(state["value"]), float(state.get("step") or 0.05)
        low, high = float(state.get("min", value - step)), float(state.get("max", value + step))
        for i in range(self.moves):
            await asyncio.sleep(self.pause_s)
            # Down one step and back, as arrow keys do; within the slider's bounds.
            target = value - step if i % 2 == 0 else value + step
            value = min(high, max(low, round(target, 10)))
            header, frame = self._message("comm_msg", {"comm_id": slider, "data": {
                "method": "update", "state": {"value": value}, "buffer_paths": []}})
            sent = time.perf_counter()
            await ws.send(frame)
            self.result.moves_sent += 1
            deadline = time.monotonic() + self.move_timeout_s
            received: dict = {}
            try:
                # The figure's answer: its edit (a _py2js_* trait: restyle, relayout, update) sent in reply
                # to this move; bookkeeping traits (_last_trace_edit_id...) may come first.
                while not any(k.startswith("_py2js_") and v for k, v in received.items()):
                    _, reply, parent, _, content, _ = await self._receive(ws, deadline)
                    if (reply.get("msg_type") == "comm_msg" and content.get("comm_id") == figure
                            and parent.get("msg_id") == header["msg_id"]):
                        data = content.get("data")
                        state = data.get("state") if isinstance(data, dict) else None
                        if isinstance(state, dict):
                            received.update(state)
                self.result.moves_ms.append((time.perf_counter() - sent) * 1e3)
                self.updates.append((value, received))
            except (TimeoutError, asyncio.TimeoutError):
                continue  # unanswered: counted by moves_sent - answered


async def run_viewers(base: str, count: int, arrival_s: float = 0.0, **options: Any) -> list[ViewerResult]:
    """``count`` viewers, all at once or one every ``arrival_s`` seconds; their results in arrival order."""
    tasks = []
    for i in range(count):
        if i and arrival_s:
            await asyncio.sleep(arrival_s)
        tasks.append(asyncio.create_task(ProtocolViewer(base, **options).run()))
    return list(await asyncio.gather(*tasks))


# --- the server's cost, from /proc ----------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    found, stack = [pid], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid``'s tree: live processes, and the children they have reaped.

    An exited process's time is in its parent's cutime once reaped (the server's for a
    launched kernel, the template's for a forked one), and in no live process's own time.
    """
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            fields = _stat(member)
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14-15 of /proc/PID/stat)
        total += int(fields[13]) + int(fields[14])  # cutime, cstime: its children that have exited
    return total / tick


def kernel_command_line(pid: int) -> bytes:
    """A kernel's command line; for one forked from Morph's template, the ipykernel arguments it runs with.

    Raises OSError for a process that is gone.
    """
    from morph.app.kernel_fork import forked_kernel_arguments

    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"morph.app.kernel_fork" not in raw:
        return raw
    forked = forked_kernel_arguments(pid)
    # The template itself is no kernel: its command line names ipykernel among the modules it imports.
    return b"\0".join([b"ipykernel_launcher", *(a.encode() for a in forked)]) if forked else b"kernel template"


def own_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` alone (the server process, without its kernels)."""
    import os

    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kernel_cpu_by_id(server_pid: int) -> dict[str, float]:
    """CPU seconds of every kernel below the server, by kernel id (from its connection file's name)."""
    import os

    found = {}
    for pid in process_tree(server_pid)[1:]:
        try:
            match = re.search(rb"kernel-([0-9a-f-]{36})\.json", kernel_command_line(pid))
            if match:
                fields = _stat(pid)
                found[match.group(1).decode()] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """``{"rss": ..., "pss": ...}``: resident and proportional memory of ``pid`` (MB).

    RSS counts every page of the libraries a process maps, although every kernel maps the same
    numpy, pandas and Python files and the machine holds them once. PSS gives each process its
    private pages plus its share of each shared page, so the PSS of all kernels adds up to the
    memory they take from the server: the figure to size a server by.
    """
    found = {"rss": float("nan"), "pss": float("nan")}
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:  # an older kernel: RSS alone
        lines = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:")]
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("Rss", "VmRSS", "Pss"):
            found["rss" if key != "Pss" else "pss"] = int(rest.split()[0]) / 1024
    return found


def tree_pss_mb(pid: int) -> float:
    """PSS (MB) summed over ``pid`` and every process below it: what they hold, shared pages counted once."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += memory_mb(member)["pss"]
        except OSError:  # exited between the listing and the reading
            continue
    return total


def kernel_memory_mb(server_pid: int) -> list[dict[str, float]]:
    """:func:`memory_mb` of every kernel below the server."""
    found = []
    for pid in process_tree(server_pid)[1:]:
        try:
            if b"ipykernel" in kernel_command_line(pid):
                found.append(memory_mb(pid))
        except OSError:
            continue
    return found
