"""plotly's figure-widget script: loaded after the widget is bound, and served once by ``morph serve``.

plotly's ``FigureWidget`` is an anywidget whose front-end code (about 5 MB of
JavaScript) is a trait of every figure. Two things go wrong with that as shipped:

- anywidget gives a widget's module 2 s to load; past that it drops every later
  message to the widget, and on a busy page plotly's script takes longer, so the
  plot is drawn once and never follows the controls. Morph's figures carry
  ``figure_loader.js`` instead, which binds at once, loads plotly's script after
  it and applies the edits that arrived meanwhile (:func:`figure_widget_class`).
- each kernel reads the script into memory (about 10 MB of Python string) and
  sends it over its page's websocket. Under ``morph serve`` the server answers one
  fixed path with that file (gzip-compressed, cacheable, named after the plotly
  version) and the loader imports it from there: a kernel never holds the script,
  a page's websocket never carries it, and a browser fetches it once.

Elsewhere (JupyterLab, a JupyterHub, a plain ``voila`` command) nothing serves
that path, so the environment variable :data:`URL_ENV` is unset and the loader
carries the script inline, as a string evaluated only when imported.

The script is Morph's own build of plotly.py's widget (``make plotly-bundle``,
``morph/app/plotly_widget/``) on a partial plotly.js holding the trace types
Morph's figures draw (scatter, bar and contour; ``manifest.json`` lists them):
1.3 MB instead of 5 MB. Every page evaluates the script, and the evaluation
grows with the trace types in it: the full bundle cost each page about a second
of browser CPU for 49 trace types the dashboard never draws, and plotly.js's
cartesian partial bundle, used before, took twice as long as this build. When the
installed plotly.py carries another plotly.js than the one the build pinned,
plotly's own full script is used instead (:func:`bundle_file`), as it is with
``MORPH_PLOTLY_BUNDLE=full`` in the environment.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import re
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["URL_ENV", "BUNDLE_ENV", "bundle_path", "bundle_file", "plotly_bundle_file", "plotlyjs_version", "uses_partial_bundle",
           "figure_widget_class", "bundle_handler_class"]

URL_ENV = "MORPH_PLOTLY_WIDGET_URL"
"""Set by the server for its kernels: the absolute path (from the site root) of the served script."""


PARTIAL_DIR = Path(__file__).with_name("plotly_widget")
"""Morph's build of the widget script on a partial plotly.js, with its licences and manifest."""


def _plotly_dir() -> Path:
    # Found without importing plotly (the server never draws).
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("plotly is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def plotly_bundle_file() -> Path:
    """plotly's own figure-widget script (the full plotly.js bundle)."""
    return _plotly_dir() / "package_data" / "widgetbundle.js"


@lru_cache(maxsize=1)
def plotlyjs_version() -> str | None:
    """The plotly.js version of the installed plotly.py, read from its source without importing it."""
    try:
        text = (_plotly_dir() / "offline" / "_plotlyjs_version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"""__plotlyjs_version__\s*=\s*["']([^"']+)["']""", text)
    return found.group(1) if found else None


@lru_cache(maxsize=1)
def partial_manifest() -> dict[str, str] | None:
    """The manifest ``make plotly-bundle`` wrote next to the partial build, or None without one."""
    try:
        return json.loads((PARTIAL_DIR / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


BUNDLE_ENV = "MORPH_PLOTLY_BUNDLE"
"""``full``: use plotly's own script (all of plotly.js), for figures with trace types the partial build lacks."""


def uses_partial_bundle() -> bool:
    """True when the partial build matches the installed plotly.py's plotly.js version.

    ``MORPH_PLOTLY_BUNDLE=full`` in the environment (of the server, which passes it
    to its kernels) chooses plotly's own full script instead.
    """
    if os.environ.get(BUNDLE_ENV, "").strip().lower() == "full":
        return False
    manifest = partial_manifest()
    return (manifest is not None and (PARTIAL_DIR / "widget.js").is_file()
            and manifest.get("plotly.js") == plotlyjs_version())


def bundle_file() -> Path:
    """The figure-widget script pages load: Morph's partial build, or plotly's own when they differ."""
    return PARTIAL_DIR / "widget.js" if uses_partial_bundle() else plotly_bundle_file()


def bundle_path(base_url: str) -> str:
    """Where the server answers with the script: ``{base_url}morph/static/plotly-widget-{version}.js``.

    The name changes with the content (plotly.js's version and the build's hash
    for the partial build, plotly's version for plotly's own script), so browsers
    cache the file for good.
    """
    return f"{base_url}morph/static/plotly-widget-{_plotly_version()}.js"


def _plotly_version() -> str:
    if uses_partial_bundle():
        manifest = partial_manifest() or {}
        plotly_version = f"partial-{manifest.get('plotly.js', '')}-{str(manifest.get('sha256', ''))[:12]}"
    else:
        try:
            plotly_version = version("plotly")
        except PackageNotFoundError:
            plotly_version = "unknown"
    return "".join(c for c in plotly_version if c.isalnum() or c in ".-+") or "unknown"


def _loader(plotly_import: str) -> str:
    # figure_loader.js binds the widget at once and loads plotly's script after it: a
    # script that takes anywidget more than 2 s to load leaves a plot that never updates.
    template = (Path(__file__).with_name("figure_loader.js")).read_text(encoding="utf-8")
    key = json.dumps(f"morph.plotly-widget {_plotly_version()}")
    return template.replace("__PLOTLY_KEY__", key).replace("__PLOTLY_IMPORT__", plotly_import)


def _served_import(path: str) -> str:
    # anywidget evaluates a widget's module from a blob, where a relative import cannot
    # resolve: import the served script by its absolute URL.
    return f"import(new URL({json.dumps(path)}, document.baseURI).href)"


def _inline_import() -> str:
    # Nothing serves the script: carry it as a string, evaluated only when imported.
    source = json.dumps(bundle_file().read_text(encoding="utf-8"))
    return f'import(URL.createObjectURL(new Blob([{source}], {{type: "text/javascript"}})))'


@lru_cache(maxsize=None)
def _figure_widget(path: str | None) -> type:
    import traitlets
    from plotly.graph_objs import FigureWidget

    # anywidget reads _esm from the class when a widget is made: a subclass's own _esm
    # keeps plotly's from ever being read.
    plotly_import = _served_import(path) if path is not None else _inline_import()
    # ``_morph_hold``: while true, the page holds the figure's first draw (at most HOLD_MS in
    # figure_loader.js) because the kernel is about to lay it out for the page's width.
    hold = traitlets.Bool(False).tag(sync=True)
    return type("FigureWidget", (FigureWidget,), {"_esm": _loader(plotly_import), "_morph_hold": hold,
                                                  "__module__": __name__})


def figure_widget_class() -> type:
    """The ``FigureWidget`` class for Morph's figures: plotly's, with a module that binds at once.

    Under ``morph serve`` (:data:`URL_ENV` set to a plain absolute path) the module
    imports the served script; elsewhere it carries plotly's script inline. Either
    way plotly's script is loaded after the widget is bound, and edits sent in the
    meantime are applied when it arrives.
    """
    path = os.environ.get(URL_ENV, "")
    if path.startswith("/") and not path.startswith("//") and all(c.isalnum() or c in "/._-+" for c in path):
        return _figure_widget(path)
    return _figure_widget(None)


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
