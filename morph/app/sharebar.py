"""The share bar: copy the dashboard's link, keep the browser's address in step, download the tables.

A small anywidget; its browser side is ``sharebar.js`` next to this file.
"""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

__all__ = ["ShareBar"]


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
    frontier_csv, selection_csv : str
        CSV text offered for download.
    """

    _esm = (Path(__file__).parent / "sharebar.js").read_text(encoding="utf-8")
    query = traitlets.Unicode("").tag(sync=True)
    sync_url = traitlets.Bool(False).tag(sync=True)
    frontier_csv = traitlets.Unicode("").tag(sync=True)
    selection_csv = traitlets.Unicode("").tag(sync=True)
