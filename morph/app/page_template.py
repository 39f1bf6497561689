"""The Voila template of Morph's pages: Voila's ``lab`` template without its requests to a CDN.

Voila's ``lab`` template links two Font Awesome stylesheets from ``cdn.jsdelivr.net`` into
every page, for ipywidgets' button icons. Every viewer of a shared link then asked a third
party for them (and offline, each page logged two failed requests), though no Morph page
draws an icon. The ``morph`` template (``voila_templates/voila/templates/morph/``) is
``lab`` with those two links left out and nothing else changed; ``morph serve`` and the
deployed server configuration (``deploy/``) render every page with it. Voila looks for
templates in Jupyter's data folders: :func:`install` puts Morph's first on ``JUPYTER_PATH``
in the server's process, before Voila collects them (from ``morph serve``'s process, and from
the server extension in ``morph.app.serving_guard``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

__all__ = ["TEMPLATE", "DATA_DIR", "install"]

TEMPLATE = "morph"
"""The template's name, as ``voila --template`` takes it."""

DATA_DIR = Path(__file__).with_name("voila_templates")
"""A Jupyter data folder holding only ``voila/templates/morph``."""


def install(environ: MutableMapping[str, str] = os.environ) -> None:
    """Put :data:`DATA_DIR` first on ``JUPYTER_PATH`` in ``environ`` (once), where Voila finds templates."""
    paths = [path for path in environ.get("JUPYTER_PATH", "").split(os.pathsep) if path]
    if str(DATA_DIR) not in paths:
        environ["JUPYTER_PATH"] = os.pathsep.join([str(DATA_DIR), *paths])
