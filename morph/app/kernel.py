"""The dashboard's kernel: a quick start, and the page's settings in a kernel Voila started early.

Voila can keep a pool of kernels that ran the dashboard notebook before any
page asked for one (``--preheat_kernel``). Such a kernel builds and discards
one dashboard (the imports, the preset's bootstrap refits and plotly's first
figure are most of a cold start), then waits for the page's request, whose
settings the real dashboard is built with.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from typing import Any, Callable, Iterator

__all__ = ["left_out", "page_query", "warm_up"]


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


def page_query(build: Callable[[], Any]) -> str | None:
    """The query string of the page this kernel serves under Voila (``None`` outside Voila).

    Parameters
    ----------
    build : callable
        Builds a default dashboard; called once to warm a pre-started kernel up.
    """
    if os.environ.get("VOILA_PREHEAT") == "True":
        warm_up(build)
        from voila.utils import get_query_string

        return get_query_string() or ""
    return os.environ.get("QUERY_STRING")


def warm_up(build: Callable[[], Any]) -> None:
    """Build a default dashboard and close its widgets: what is left is warm code and caches."""
    from ipywidgets.widgets.widget import _instances

    before = set(_instances)
    build()
    for model_id in set(_instances) - before:
        widget = _instances.get(model_id)
        if widget is not None:
            widget.close()
    gc.collect()  # the closed widgets and figures hold cycles: free them before the page's own
