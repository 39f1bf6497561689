"""The share bar: copy the dashboard's link, keep the browser's address in step, download the tables.

A small anywidget; its browser side is ``sharebar.js`` next to this file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["TABLES", "ShareBar"]

TABLES = ("frontier", "selection")
"""The tables the bar offers for download, by the name the page asks for."""


class ShareBar(anywidget.AnyWidget):
    """Copy-link button, the link in a text field, and CSV downloads; keeps the address bar in step.

    Traits
    ------
    query : str
        The settings as a query string (no ``?``), always the validated,
        canonical form of :meth:`~morph.app.settings.DashboardSettings.to_query`:
        a copied link carries these keys and no other key of the page's address
        (no token, theme or template).
    sync_url : bool
        Rewrite the browser's address with ``history.replaceState`` (on in
        Voila; off inside JupyterLab, whose own address must not change).

    Attributes
    ----------
    tables : callable or None
        ``tables(name)`` writes the CSV text of the table ``name`` (one of
        :data:`TABLES`). A table is written when its download is clicked, not on
        every change of the dashboard: the page asks with ``{"want": name}`` and
        gets ``{"table": name, "csv": text}`` back.
    """

    _esm = (Path(__file__).parent / "sharebar.js").read_text(encoding="utf-8")
    query = traitlets.Unicode("").tag(sync=True)
    sync_url = traitlets.Bool(False).tag(sync=True)

    def __init__(self, tables: Callable[[str], str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tables = tables
        self.on_msg(self._answer)

    def _answer(self, _: Any, content: Any, buffers: Any = None) -> None:
        # Anything the page sends is untrusted: only a known table's name is answered.
        name = content.get("want") if isinstance(content, dict) else None
        if self.tables is None or not isinstance(name, str) or name not in TABLES:
            return
        self.send({"table": name, "csv": self.tables(name)})
