"""plotly's figure-widget script, served once by ``morph serve`` instead of once per page.

plotly's ``FigureWidget`` is an anywidget whose front-end code (about 5 MB of
JavaScript) is a trait of every figure: each kernel reads it into memory
(about 10 MB of Python string) and sends it over its page's websocket, and
each page evaluates it from a blob. Under ``morph serve`` the server answers
one fixed path with that file (gzip-compressed, cacheable, named after the
plotly version), and the kernels' figures carry a three-line module that
imports it from there: a kernel never holds the script, a page's websocket
never carries it, and a browser fetches it once.

Elsewhere (JupyterLab, a JupyterHub, a plain ``voila`` command) nothing
serves that path, so the environment variable :data:`URL_ENV` is unset and
figures carry the script inline, as plotly ships them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["URL_ENV", "bundle_path", "bundle_file", "figure_widget_class", "bundle_handler_class"]

URL_ENV = "MORPH_PLOTLY_WIDGET_URL"
"""Set by the server for its kernels: the absolute path (from the site root) of the served script."""


def bundle_file() -> Path:
    """plotly's figure-widget script, found without importing plotly (the server never draws)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("plotly is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "widgetbundle.js"


def bundle_path(base_url: str) -> str:
    """Where the server answers with the script: ``{base_url}morph/static/plotly-widget-{version}.js``.

    The plotly version in the name lets browsers cache the file for good: a new
    plotly is a new name.
    """
    try:
        plotly_version = version("plotly")
    except PackageNotFoundError:
        plotly_version = "unknown"
    safe = "".join(c for c in plotly_version if c.isalnum() or c in ".-+") or "unknown"
    return f"{base_url}morph/static/plotly-widget-{safe}.js"


def _loader(path: str) -> str:
    # An ES module of its own (anywidget evaluates it from a blob, where a relative
    # import cannot resolve): import the served script by its absolute URL.
    return (
        f"const served = await import(new URL({json.dumps(path)}, document.baseURI).href);\n"
        "export default served.default;\n"
    )


@lru_cache(maxsize=None)
def _served_figure_widget(path: str) -> type:
    from plotly.graph_objs import FigureWidget

    # anywidget reads _esm from the class when a widget is made: the loader replaces the
    # 5 MB script, which a subclass's own _esm keeps from ever being read.
    return type("FigureWidget", (FigureWidget,), {"_esm": _loader(path), "__module__": __name__})


def figure_widget_class() -> type:
    """The ``FigureWidget`` class to use: one that imports the served script under ``morph serve``.

    Returns plotly's own class when :data:`URL_ENV` is unset or not a plain
    absolute path.
    """
    path = os.environ.get(URL_ENV, "")
    if path.startswith("/") and not path.startswith("//") and all(c.isalnum() or c in "/._-+" for c in path):
        return _served_figure_widget(path)
    from plotly.graph_objs import FigureWidget

    return FigureWidget


@lru_cache(maxsize=1)
def _compressed(path: Path) -> tuple[bytes, bytes]:
    raw = path.read_bytes()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)


def bundle_handler_class() -> type:
    """A tornado handler that answers GET and HEAD with the script (gzip when the browser accepts it)."""
    import tornado.web

    class BundleHandler(tornado.web.RequestHandler):
        def _send(self, with_body: bool) -> None:
            raw, packed = _compressed(bundle_file())
            body = raw
            self.set_header("Content-Type", "text/javascript; charset=utf-8")
            # The name carries plotly's version: the content never changes under it.
            self.set_header("Cache-Control", "public, max-age=31536000, immutable")
            self.set_header("Vary", "Accept-Encoding")
            if "gzip" in self.request.headers.get("Accept-Encoding", ""):
                self.set_header("Content-Encoding", "gzip")
                body = packed
            self.set_header("Content-Length", str(len(body)))
            self.finish(body if with_body else None)

        def get(self, *args: Any) -> None:
            self._send(with_body=True)

        def head(self, *args: Any) -> None:
            self._send(with_body=False)

    return BundleHandler
