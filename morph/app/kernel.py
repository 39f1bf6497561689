"""The dashboard's kernel: a quick start, and the page's settings in a kernel Voila started early.

Voila can keep a pool of kernels that ran the dashboard notebook before any
page asked for one (``--preheat_kernel``). Such a kernel builds a dashboard with
the default settings (the imports, the preset's bootstrap refits and plotly's
first figure are most of a cold start), then waits for the page's request
(:func:`ready_for_page`). A page with the default settings (a plain link, what
a class opens) gets that dashboard as it is; a link with other settings gets a
new one built with them, and the warm one's widgets are closed.

Voila's own helper for that wait (``voila.utils.get_query_string``) imports
Voila's server stack into the kernel: about 46 MB and 700 modules in every
pooled kernel, for one websocket message. :func:`wait_for_page` does the same
wait with the ``websockets`` client alone.

Under ``morph serve`` (which sets ``MORPH_DASHBOARD_KERNEL=1`` for the
kernels it starts), the dashboard first loads plotly's renderers
without nbformat (:func:`quick_plotly`): plotly imports it, and through it jsonschema, only for
``fig.show()``'s notebook output, which a dashboard kernel never uses (its
figure is a widget). That is about 135 modules, 0.2 CPU s and 6 MB less per
kernel (not in a kernel forked from ``morph serve``'s template,
:mod:`morph.app.kernel_fork`, which has jsonschema loaded already: there plotly
loads nbformat at the first figure, about 10 ms more). Elsewhere
(a notebook, the tests) jsonschema is loaded at once without
its IRI format checker (:func:`quick_jsonschema`), which would cost 1.6 s at a
lesson's first figure.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

__all__ = ["left_out", "ready_for_page", "ReadyBuild", "wait_for_page", "request_info_url", "LEAN_ENV", "lean_plotly",
           "quick_jsonschema", "quick_plotly"]

T = TypeVar("T")

LEAN_ENV = "MORPH_DASHBOARD_KERNEL"
"""Set to ``1`` in the kernels ``morph serve`` starts: they load plotly without its notebook-output stack."""


@contextlib.contextmanager
def left_out(module: str) -> Iterator[None]:
    """Make ``import module`` fail inside the block, unless it is loaded already."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None  # type: ignore[assignment]  # None in sys.modules means "cannot import"
    try:
        yield
    finally:
        if sys.modules.get(module, "") is None:
            del sys.modules[module]


@dataclass
class ReadyBuild(Generic[T]):
    """What a kernel built before its page arrived, and the page's query string."""

    query: str
    """The page's query string (``""`` for none)."""
    built: T
    """What the build returned."""
    widget_ids: frozenset[str]
    """The widgets the build opened."""

    def discard(self) -> None:
        """Close the build's widgets: a page asks for the state of every open widget, and must not get these."""
        from ipywidgets.widgets.widget import _instances

        for model_id in self.widget_ids:
            widget = _instances.get(model_id)
            if widget is not None:
                widget.close()
        gc.collect()  # the closed widgets and figures hold cycles: free them before the page's own


def ready_for_page(build: Callable[[], T]) -> ReadyBuild[T] | None:
    """In a kernel Voila started ahead of its page: build now, then wait for the page's query string.

    Parameters
    ----------
    build : callable
        Builds the dashboard a page without a query string gets.

    Returns
    -------
    ReadyBuild or None
        What ``build`` returned, the widgets it opened and the page's query
        string; None outside such a kernel (there the page's query string, if
        any, is the ``QUERY_STRING`` environment variable).
    """
    if os.environ.get("VOILA_PREHEAT") != "True":
        return None
    from ipywidgets.widgets.widget import _instances

    before = set(_instances)
    built = build()
    made = frozenset(set(_instances) - before)
    gc.collect()  # the build's garbage goes now, before a page waits on this kernel
    wait_for_page()
    return ReadyBuild(os.environ.get("QUERY_STRING", ""), built, made)


def request_info_url(environ: Mapping[str, str] = os.environ) -> str:
    """Where a pooled kernel learns about its page: Voila's ``voila/query/<kernel id>`` websocket.

    Built from the variables Voila gives its pooled kernels, with Voila's defaults.
    """
    protocol = environ.get("VOILA_WS_PROTOCOL", "ws")
    ip = environ.get("VOILA_APP_IP", "127.0.0.1")
    port = environ.get("VOILA_APP_PORT", "8866")
    base = environ.get("VOILA_WS_BASE_URL", environ.get("VOILA_SERVER_URL", "/"))
    host = f"[{ip}]" if ":" in ip else ip
    return f"{protocol}://{host}:{port}{base}voila/query/{environ.get('VOILA_KERNEL_ID', '')}"


def wait_for_page(url: str | None = None) -> dict[str, str]:
    """Block until this pooled kernel is given a page; put the page's request (query string...) in ``os.environ``.

    The server sends one JSON object of CGI-style variables (``QUERY_STRING``,
    ``SERVER_NAME``...) once a page takes the kernel. Returns them; an empty
    dict when the server cannot be reached (the dashboard then keeps its defaults).
    """
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    try:
        # No limit on the wait itself: a pooled kernel may wait long for its page.
        with connect(url or request_info_url(), open_timeout=5, max_size=2**20) as socket:
            payload = json.loads(socket.recv())
    except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
        warnings.warn(f"the page's request did not arrive ({exc.__class__.__name__}); using default settings")
        return {}
    found = {str(k): v for k, v in payload.items() if isinstance(v, str)} if isinstance(payload, dict) else {}
    os.environ.update(found)
    return found


def lean_plotly() -> None:
    """Load plotly's renderers with nbformat (and so jsonschema) left out; a no-op once they are loaded.

    plotly looks nbformat up once, for ``fig.show()``'s notebook output: in this
    process ``fig.show()`` then says that nbformat is missing, while figure
    widgets, which the dashboard uses, are unaffected.
    """
    if "plotly.io._renderers" in sys.modules:
        return
    with left_out("nbformat"):
        import plotly.io._renderers  # noqa: F401


def quick_jsonschema() -> None:
    """Load jsonschema without its IRI format checker; a no-op once it is loaded.

    plotly's figure widget and its notebook output import nbformat, hence
    jsonschema, whose optional IRI format checker (``rfc3987_syntax``) compiles
    38 grammars on import: 1.6 s on a 2-core machine, in every lesson's first
    figure, for a check neither plotly nor nbformat makes (jsonschema then
    treats the checker as not installed).
    """
    if "jsonschema" in sys.modules or "plotly.io._renderers" in sys.modules:
        return  # loaded (or, lean, left out) already
    with left_out("rfc3987_syntax"):
        import jsonschema  # noqa: F401


def quick_plotly() -> None:
    """Prepare plotly's imports for this process: lean in a served dashboard's kernel, else quick.

    Lean (:func:`lean_plotly`) only where :data:`LEAN_ENV` is set and the
    dashboard asks first: the lessons' kernels under the same server keep
    ``fig.show()``. Everywhere else :func:`quick_jsonschema`.
    """
    if os.environ.get(LEAN_ENV) == "1" and "jsonschema" not in sys.modules:  # no figure was prepared for display
        lean_plotly()
    quick_jsonschema()
