"""The live dashboard: pick a model shape under a latency budget, in the browser.

A thin layer of widgets over :mod:`morph.frontier`: every number on screen
comes from :func:`~morph.frontier.evaluate_candidates`,
:func:`~morph.frontier.select` and the scaling laws; this module only decides
what to recompute when a control moves, and how to draw it.

Three pieces:

- :class:`DashboardSettings`: every input as a plain, frozen dataclass, with
  a query-string form (:meth:`DashboardSettings.to_query`,
  :func:`settings_from_query`) so a view can be shared as a link;
- :class:`Dashboard`: the controls, one plotly ``FigureWidget`` holding the
  frontier and the aspect-ratio views, the ranked table and a share bar;
- :class:`ShareBar`: a small anywidget that keeps the browser's address in
  step with the controls, copies the link and offers the CSV downloads.

Under Voila the page's query string reaches the kernel as the
``QUERY_STRING`` environment variable; :meth:`Dashboard.from_query` reads it.
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode

import anywidget
import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import traitlets
from numpy.typing import NDArray
from plotly.subplots import make_subplots


@contextlib.contextmanager
def _left_out(module: str) -> Iterator[None]:
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


# plotly's FigureWidget imports nbformat, hence jsonschema, whose optional IRI
# format checker (rfc3987_syntax) compiles 38 grammars on import: 1.6 s of a
# cold dashboard start on a 2-core machine, for a check no dashboard makes.
# Leave it out while plotly loads (jsonschema treats it as not installed).
with _left_out("rfc3987_syntax"):
    from plotly.graph_objs import FigureWidget

from .data import load_candidates, load_models_1b, load_runs
from .errors import MorphError, SelectionError
from .frontier import (
    Candidates,
    Evaluation,
    Selection,
    candidates_from_range,
    candidates_from_table,
    evaluate_candidates,
    price_of_speed,
    resolve_law,
    select,
)
from .figures import si_format
from .hardware import hardware_presets
from .laws import PRESETS
from .latency import calibrations
from .shapes import parameter_count
from .ui import MessageBar, guarded

if TYPE_CHECKING:  # fitting needs scipy.optimize: imported when the fit-B law is chosen
    from .fitting import FitResult

__all__ = [
    "DashboardSettings",
    "Dashboard",
    "ShareBar",
    "settings_from_query",
    "thin_points",
    "FIT_B",
]

# --- settings ---------------------------------------------------------------------------------

PAPER_TOKENS = 28_991_029_248
"""Training tokens of the paper's 1B models (20 x the nominal 1.45B parameters)."""

MORPH_1B_PARAMETERS = 1_668_885_504
"""``N`` of Morph-1B (12 layers x 3072)."""

FIT_B = "fit-b"
"""Law choice meaning "fit the inference-efficient law on the paper's fit set B, with a bootstrap"."""

MODES = {"range": "parameter range", "compute": "compute budget"}
SHAPE_SOURCES = {
    "paper": "the paper's 15 candidates at 1B",
    "grid": "every shape (width a multiple of 64, 16 heads)",
}
DTYPES = ("bf16", "fp16", "fp32")

# Batch and sequence lengths are counts that matter in factors of two; a
# ladder of powers of two is a log-scale slider with values people use.
BATCH_LADDER = tuple(2**k for k in range(0, 10))  # 1 .. 512
TOKEN_LADDER = tuple(2**k for k in range(0, 14))  # 1 .. 8192

MAX_QUERY_FIELDS = 40
MAX_VALUE_CHARS = 64
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$")


@dataclass(frozen=True)
class _Number:
    """A numeric setting: its query key and the range the dashboard accepts."""

    field: str
    key: str
    low: float
    high: float
    integer: bool = False
    ladder: tuple[int, ...] = ()


_NUMBERS = (
    _Number("params_min", "params_min", 1e7, 1e12),
    _Number("params_max", "params_max", 1e7, 1e12),
    _Number("tokens", "tokens", 1e8, 1e14),
    _Number("flops", "flops", 1e17, 1e27),
    _Number("latency_target_s", "latency", 0.01, 1000.0),
    _Number("batch", "batch", 1, 512, integer=True, ladder=BATCH_LADDER),
    _Number("input_tokens", "input", 1, 8192, integer=True, ladder=TOKEN_LADDER),
    _Number("output_tokens", "output", 1, 8192, integer=True, ladder=TOKEN_LADDER),
    _Number("top_k", "top_k", 1, 20, integer=True),
)


def _law_choices() -> dict[str, str]:
    choices = {name: f"{name} ({p.law.family}, {p.variant})" for name, p in PRESETS.items()}
    choices[FIT_B] = "fit on the paper's runs (fit set B, bootstrap)"
    return choices


def _choices() -> dict[str, dict[str, str]]:
    """Allowed values of each text setting, with the label a control shows for each."""
    return {
        "mode": dict(MODES),
        "shapes": dict(SHAPE_SOURCES),
        "hardware": {name: hw.label for name, hw in hardware_presets().items()},
        "calibration": {"default": "the hardware's default", **{c: c for c in calibrations()}},
        "dtype": {d: d for d in DTYPES},
        "law": _law_choices(),
    }


@dataclass(frozen=True)
class DashboardSettings:
    """Every input of the dashboard; the defaults reproduce the paper's choice of Morph-1B.

    Parameters
    ----------
    mode : {"range", "compute"}
        ``range``: candidates between ``params_min`` and ``params_max``
        parameters, all trained on ``tokens``. ``compute``: the same shapes,
        each trained on ``D = flops / (6 N)`` tokens (a fixed training budget).
    shapes : {"paper", "grid"}
        ``paper``: the 15 shapes the authors considered at 1B (those within
        the parameter range); ``grid``: every shape in the range with a width
        that is a multiple of 64 and 16 heads.
    params_min, params_max : float
        Parameter range (the paper's ``N_C``: what fits the device).
    tokens : float
        Training tokens ``D_C`` (range mode).
    flops : float
        Training budget in FLOPs (compute mode).
    latency_target_s : float
        Latency budget ``T_C`` for one generation call (seconds).
    hardware : str
        Hardware preset slug (:func:`morph.hardware.hardware_presets`).
    calibration : str
        Latency calibration name, or ``"default"`` for the hardware's own.
    batch, input_tokens, output_tokens : int
        Sequences per call, prompt length and generated tokens.
    dtype : {"bf16", "fp16", "fp32"}
    law : str
        A preset name (:data:`morph.laws.PRESETS`) or :data:`FIT_B`.
    top_k : int
        How many shapes to keep.
    """

    mode: str = "range"
    shapes: str = "paper"
    params_min: float = 1.3e9
    params_max: float = 2.2e9
    tokens: float = float(PAPER_TOKENS)
    flops: float = 6.0 * MORPH_1B_PARAMETERS * PAPER_TOKENS
    latency_target_s: float = 2.0
    hardware: str = "a100-40gb"
    calibration: str = "default"
    batch: int = 1
    input_tokens: int = 128
    output_tokens: int = 256
    dtype: str = "bf16"
    law: str = "bian2025"
    top_k: int = 3

    def normalized(self) -> tuple["DashboardSettings", list[str]]:
        """The nearest settings the dashboard can show, and a sentence for each change made.

        Numbers are clamped to their range (counts also snapped to the
        nearest value their slider offers); unknown names fall back to the
        default; a parameter range given backwards is swapped.
        """
        values, notes = _clamp_fields(self)
        if values["params_min"] > values["params_max"]:
            notes.append("the parameter range was given largest first; swapped")
            values["params_min"], values["params_max"] = values["params_max"], values["params_min"]
        return DashboardSettings(**values), notes

    def to_query(self) -> str:
        """The settings that differ from the defaults, as a URL query string (without ``?``)."""
        default = DashboardSettings()
        pairs = []
        for key, field_name in _QUERY_FIELDS.items():
            value = getattr(self, field_name)
            if value != getattr(default, field_name):
                pairs.append((key, _format_number(value) if isinstance(value, (int, float)) else str(value)))
        return urlencode(pairs)

    @property
    def law_label(self) -> str:
        """How the chosen law is named in the page."""
        return _law_choices().get(self.law, self.law)


_QUERY_FIELDS: dict[str, str] = {
    "mode": "mode",
    "shapes": "shapes",
    **{spec.key: spec.field for spec in _NUMBERS},
    "hardware": "hardware",
    "calibration": "calibration",
    "dtype": "dtype",
    "law": "law",
}
_NUMBER_BY_FIELD = {spec.field: spec for spec in _NUMBERS}


def _format_number(value: float) -> str:
    # Shortest text that reads back as the same float; whole numbers without ".0".
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _say(value: float) -> str:
    return f"{value:g}"


def _fit_number(spec: _Number, value: Any, default: Any, notes: list[str]) -> float | int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        notes.append(f"{spec.key} is not a number; using {_say(default)}")
        return default
    if not math.isfinite(number):
        notes.append(f"{spec.key} is not a finite number; using {_say(default)}")
        return default
    if number < spec.low or number > spec.high:
        bound = spec.low if number < spec.low else spec.high
        notes.append(
            f"{spec.key}={_say(number)} is outside {_say(spec.low)}-"
            f"{_say(spec.high)}; using {_say(bound)}"
        )
        number = bound
    if not spec.integer:
        return float(number)
    if spec.ladder:
        nearest = min(spec.ladder, key=lambda v: abs(math.log(v) - math.log(number)))
        if nearest != number:
            notes.append(f"{spec.key}={_say(number)} is not offered; using {nearest}")
        return int(nearest)
    if number != round(number):
        notes.append(f"{spec.key}={_say(number)} is not a whole number; using {round(number)}")
    return int(round(number))


def _clamp_fields(settings: DashboardSettings) -> tuple[dict[str, Any], list[str]]:
    """Every field clamped to what the dashboard accepts, and a sentence per change.

    The one gate for values from a link and values from the page's controls
    (a crafted client can widen a slider's bounds before moving it).
    """
    notes: list[str] = []
    default = DashboardSettings()
    values: dict[str, Any] = {}
    for spec in _NUMBERS:
        values[spec.field] = _fit_number(spec, getattr(settings, spec.field), getattr(default, spec.field), notes)
    for name, allowed in _choices().items():
        value = getattr(settings, name)
        if not isinstance(value, str) or value not in allowed:
            notes.append(f"{name} {str(value)[:40]!r} is not available; using {getattr(default, name)!r}")
            value = getattr(default, name)
        values[name] = value
    return values, notes


def _shown(text: str) -> str:
    # Quoted and cut short: enough to recognise, never enough to flood the page.
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def settings_from_query(query: str | None) -> tuple[DashboardSettings, list[str]]:
    """Settings from a URL query string, and what was ignored or adjusted, in sentences.

    Unknown keys, non-numeric or overlong values and unknown names are
    ignored; numbers out of range are clamped. The sentences quote the
    offending text as plain text (the page escapes it): nothing from the URL
    is ever interpreted as markup.

    Parameters
    ----------
    query : str or None
        E.g. ``"latency=3.0&top_k=5&hardware=h100-sxm"`` (a leading ``?`` is allowed).

    Returns
    -------
    settings : DashboardSettings
    notes : list of str
    """
    query = (query or "").lstrip("?")
    notes: list[str] = []
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(pairs) > MAX_QUERY_FIELDS:
        notes.append(f"the link has {len(pairs)} settings; only the first {MAX_QUERY_FIELDS} were read")
        pairs = pairs[:MAX_QUERY_FIELDS]
    values: dict[str, Any] = {}
    unknown: list[str] = []
    choices = _choices()
    for key, raw in pairs:
        if key not in _QUERY_FIELDS:
            if key not in _FOREIGN_KEYS:
                unknown.append(_shown(key))
            continue
        name = _QUERY_FIELDS[key]
        value = raw.strip()
        if len(value) > MAX_VALUE_CHARS:
            notes.append(f"{key}: the value is longer than {MAX_VALUE_CHARS} characters; ignored")
        elif name in _NUMBER_BY_FIELD:
            if _NUMBER.match(value):
                values[name] = float(value)
            else:
                notes.append(f"{key}={_shown(value)} is not a number; ignored")
        elif value in choices[name]:
            values[name] = value
        else:
            notes.append(f"{key}={_shown(value)} is not one of {', '.join(choices[name])}; ignored")
    if unknown:
        notes.append(f"unknown setting(s) ignored: {', '.join(unknown[:10])}" + (" ..." if len(unknown) > 10 else ""))
    settings, adjusted = DashboardSettings(**values).normalized()
    return settings, notes + adjusted


# Keys Voila itself reads from a page's address: not reported as unknown, never carried into a shared link.
_FOREIGN_KEYS = frozenset({"theme", "token"})


def _page_query() -> str | None:
    """The query string of the page this kernel serves under Voila (``None`` outside Voila).

    A kernel pre-started by Voila (``--preheat_kernel``) runs the notebook
    before any page asks for it: it builds and discards one dashboard (the
    imports and plotly's first figure are most of a cold start), then waits
    for the page's request, whose settings the real dashboard is built with.
    """
    if os.environ.get("VOILA_PREHEAT") == "True":
        _warm_up()
        from voila.utils import get_query_string

        return get_query_string() or ""
    return os.environ.get("QUERY_STRING")


def _warm_up() -> None:
    """Build a default dashboard and close its widgets: what is left is warm code and caches."""
    from ipywidgets.widgets.widget import _instances

    before = set(_instances)
    Dashboard()
    for model_id in set(_instances) - before:
        widget = _instances.get(model_id)
        if widget is not None:
            widget.close()
    import gc

    gc.collect()  # the closed widgets and figures hold cycles: free them before the page's own


# --- drawing helpers --------------------------------------------------------------------------


def thin_points(x: NDArray, y: NDArray, max_points: int, log_x: bool = True) -> NDArray[np.int64]:
    """Indices of at most about ``max_points`` points that draw the same cloud as all of them.

    The plane is cut into a grid of about ``max_points`` cells (``x`` in log
    scale when ``log_x``) and the first point of each occupied cell is kept:
    the outline of the cloud and its isolated points survive, dense regions
    are thinned. Returns every index when there are few enough points.
    """
    n = x.size
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    side = max(1, int(math.sqrt(max_points)))
    u = np.log(x) if log_x else np.asarray(x, dtype=np.float64)

    def cell(v: NDArray) -> NDArray[np.int64]:
        span = float(v.max() - v.min()) or 1.0
        return np.minimum(((v - v.min()) / span * side).astype(np.int64), side - 1)

    _, first = np.unique(cell(u) * side + cell(np.asarray(y, dtype=np.float64)), return_index=True)
    return np.sort(first).astype(np.int64)


# --- the share bar (browser side) ------------------------------------------------------------

_SHARE_ESM = r"""
function render({ model, el }) {
  const bar = document.createElement("div");
  bar.className = "morph-share";
  bar.style.cssText = "display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:6px 0";
  const copy = document.createElement("button");
  copy.className = "jupyter-button morph-copy-link";
  copy.textContent = "Copy link";
  const field = document.createElement("input");
  field.type = "text";
  field.readOnly = true;
  field.className = "morph-link";
  field.setAttribute("aria-label", "Link to these settings");
  field.style.cssText = "flex:1 1 420px;min-width:240px;font-family:monospace;font-size:12px";
  const status = document.createElement("span");
  status.className = "morph-copy-status";
  status.setAttribute("role", "status");
  const frontier = document.createElement("a");
  frontier.className = "morph-download-frontier";
  frontier.textContent = "Download frontier (CSV)";
  frontier.download = "morph-frontier.csv";
  const selection = document.createElement("a");
  selection.className = "morph-download-selection";
  selection.textContent = "Download selection (CSV)";
  selection.download = "morph-selection.csv";
  bar.append(copy, field, status, frontier, selection);
  el.appendChild(bar);

  // The link carries the dashboard's own settings and nothing else: the
  // query is the kernel's validated, canonical form, and every other key in
  // the address (a login token, a theme, a template, anything a hostile link
  // added) is dropped, so a shared link never spreads what it was opened with.
  function link() {
    const query = new URLSearchParams(model.get("query"));
    if (!model.get("sync_url")) {
      const text = query.toString();
      return text ? "?" + text : "";
    }
    const url = new URL(window.location.href);
    url.search = query.toString();
    url.hash = "";
    return url.toString();
  }
  function sync() {
    const href = link();
    field.value = href;
    if (model.get("sync_url") && href !== window.location.href) {
      window.history.replaceState(window.history.state, "", href);
    }
  }
  function csv(anchor, name) {
    anchor.href = "data:text/csv;charset=utf-8," + encodeURIComponent(model.get(name));
  }
  copy.addEventListener("click", async () => {
    sync();
    try {
      await navigator.clipboard.writeText(field.value);
      status.textContent = "Link copied.";
    } catch (error) {
      // No clipboard access (plain http on another host): the link is in the field, selected.
      field.focus();
      field.select();
      status.textContent = "Copy the selected link with Ctrl+C.";
    }
  });
  field.addEventListener("focus", () => field.select());
  model.on("change:query", sync);
  model.on("change:frontier_csv", () => csv(frontier, "frontier_csv"));
  model.on("change:selection_csv", () => csv(selection, "selection_csv"));
  sync();
  csv(frontier, "frontier_csv");
  csv(selection, "selection_csv");
}
export default { render };
"""


class ShareBar(anywidget.AnyWidget):
    """Copy-link button, the link in a text field, and CSV downloads; keeps the address bar in step.

    Traits
    ------
    query : str
        The settings as a query string (no ``?``).
    sync_url : bool
        Rewrite the browser's address with ``history.replaceState`` (on in
        Voila; off inside JupyterLab, whose own address must not change).
    frontier_csv, selection_csv : str
        CSV text offered for download.
    """

    _esm = _SHARE_ESM
    query = traitlets.Unicode("").tag(sync=True)
    sync_url = traitlets.Bool(False).tag(sync=True)
    frontier_csv = traitlets.Unicode("").tag(sync=True)
    selection_csv = traitlets.Unicode("").tag(sync=True)


# --- the dashboard ---------------------------------------------------------------------------

# Trace positions in the single figure (fixed: updates address traces by index).
# Left: CLOUD .. PUBLISHED; right: LAW_CURVE .. RUNS (the runs never change).
CLOUD, FRONTIER, SELECTED, PUBLISHED, LAW_CURVE, ASPECT_SELECTED, RUN_LINES, RUNS = range(8)

# The measurement protocol of the published 1B latencies (data/models_1b_eval.csv).
_PUBLISHED_PROTOCOL = {"hardware": "a100-40gb", "batch": 1, "input_tokens": 128, "output_tokens": 256, "dtype": "bf16"}

_FAINT = "rgba(120,120,120,0.35)"
_ACCENT = "#d62728"


@dataclass(frozen=True)
class _Result:
    """One consistent set of computed views: what a redraw needs."""

    settings: DashboardSettings
    evaluation: Evaluation
    selection: Selection
    evaluation_key: tuple
    law: Any


class Dashboard:
    """Choose a model shape under a latency budget: controls, live views and a shareable state.

    Parameters
    ----------
    settings : DashboardSettings, optional
        Initial settings (defaults: the paper's choice of Morph-1B). Values
        out of range are clamped and reported in the message bar.
    bootstrap : int
        Bootstrap refits for the fit-set-B law (its loss band).
    max_cloud_points : int
        At most about this many candidates are drawn as the faint cloud
        (the frontier and the selection always use every candidate).
    sync_url : bool
        Keep the browser's address in step with the controls (Voila pages).
    notes : sequence of str
        Warnings to show at start (e.g. what a link's query string could not set).

    Attributes
    ----------
    settings : DashboardSettings
        The controls' current values.
    evaluation, selection : Evaluation, Selection or None
        The last successful computation (what the views show).
    controls : dict of str to Widget
        One control per setting, by field name.
    figure : plotly.graph_objects.FigureWidget
        Frontier (left) and loss against aspect ratio (right).
    table, price, notes_html : ipywidgets.HTML
        Ranked selection, the price-of-speed sentence, figure notes.
    messages : MessageBar
    share : ShareBar
    widget : ipywidgets.VBox
        The whole dashboard, to display.
    """

    def __init__(
        self,
        settings: DashboardSettings | None = None,
        *,
        bootstrap: int = 200,
        max_cloud_points: int = 2000,
        sync_url: bool = False,
        notes: Sequence[str] = (),
    ) -> None:
        self.bootstrap = int(bootstrap)
        self.max_cloud_points = int(max_cloud_points)
        settings, adjusted = (settings or DashboardSettings()).normalized()
        self.settings = settings
        self.evaluation: Evaluation | None = None
        self.selection: Selection | None = None
        self._fit_b: FitResult | None = None
        self._pools: dict[tuple, Candidates] = {}
        self._result: _Result | None = None
        self._curve_key: tuple | None = None
        self.messages = MessageBar()
        self.controls = self._build_controls(settings)
        # One FigureWidget holds both views as subplots: each FigureWidget sends
        # its own ~5 MB of plotly.js to the page, and a second one made the cold
        # load 1.9 s slower here (medians 7.42 s against 5.50 s over 5 loads on
        # 2 cores; benchmarks/bench_dashboard.py --compare-layouts, README there).
        # A FigureWidget drops changes made before its view renders, so the
        # first result is computed before the figure and built into it.
        first, error = self._try_compute(settings)
        self.figure = FigureWidget(self._initial_figure(first))
        self.table = widgets.HTML()
        self.price = widgets.HTML()
        self.notes_html = widgets.HTML()
        self.share = ShareBar(query=settings.to_query(), sync_url=sync_url)
        self.table.add_class("morph-table")
        self.price.add_class("morph-price")
        if first is not None:
            self._commit(first, draw_figure=False)
        warnings = [*notes, *adjusted]
        if error:
            self.messages.show_many([error, *warnings], "error")
        elif warnings:
            self.messages.show_many(warnings, "warning")
        self._toggle_budget_controls(settings.mode)
        self._on_control = guarded(self.messages)(self._apply_controls)
        for control in self.controls.values():
            control.observe(self._on_control, names="value")
        self.widget = self._layout()

    @classmethod
    def from_query(cls, query: str | None = None, **options: Any) -> "Dashboard":
        """A dashboard set from a URL query string (under Voila: the page's own).

        Parameters
        ----------
        query : str, optional
            Defaults to the page's query string under Voila: the
            ``QUERY_STRING`` environment variable of the page's kernel, or, in
            a kernel Voila started ahead of the request (``--preheat_kernel``),
            the request's query string once it arrives. When there is one the
            browser's address is kept in step with the controls.
        **options
            Passed to :class:`Dashboard`.
        """
        if query is None:
            query = _page_query()
            options.setdefault("sync_url", query is not None)
        settings, notes = settings_from_query(query)
        return cls(settings, notes=notes, **options)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- controls -------------------------------------------------------------------------

    def _build_controls(self, s: DashboardSettings) -> dict[str, widgets.Widget]:
        style = {"description_width": "200px"}
        layout = widgets.Layout(width="430px")
        choices = _choices()

        def log_slider(field: str, description: str) -> widgets.FloatLogSlider:
            spec = _NUMBER_BY_FIELD[field]
            return widgets.FloatLogSlider(
                value=getattr(s, field), base=10, min=math.log10(spec.low), max=math.log10(spec.high), step=0.01,
                description=description, readout_format=".3g", continuous_update=False,
                style=style, layout=layout,
            )

        def ladder(field: str, description: str) -> widgets.SelectionSlider:
            spec = _NUMBER_BY_FIELD[field]
            return widgets.SelectionSlider(
                options=list(spec.ladder), value=getattr(s, field), description=description,
                continuous_update=True, style=style, layout=layout,
            )

        def dropdown(field: str, description: str) -> widgets.Dropdown:
            return widgets.Dropdown(
                options=[(label, value) for value, label in choices[field].items()], value=getattr(s, field),
                description=description, style=style, layout=layout,
            )

        # continuous_update follows the cost of what a move recomputes, within
        # one constraint of ipywidgets 8.1:
        # - the ladders (batch, lengths) and top k re-evaluate or only re-rank
        #   cached shapes (a few ms for 10^5 shapes, benchmarks/bench_frontier.py),
        #   so they follow the drag;
        # - the parameter range re-enumerates the shapes (up to ~10^5) and
        #   redraws every view: on release;
        # - tokens, FLOPs and the latency target are cheap, yet their log-scale
        #   sliders apply on release too: with continuous_update a FloatLogSlider
        #   view sends its step-snapped position back as the value when it
        #   renders and after every change from Python, which turned the paper's
        #   28,991,029,248 tokens into 2.884e10 on page load here. Each arrow-key
        #   press still applies at once.
        return {
            "mode": widgets.ToggleButtons(
                options=[(label, value) for value, label in MODES.items()], value=s.mode,
                description="Budget given as", style={"description_width": "initial", "button_width": "130px"},
            ),
            "shapes": dropdown("shapes", "Candidate shapes"),
            "params_min": log_slider("params_min", "Smallest model (parameters)"),
            "params_max": log_slider("params_max", "Largest model (parameters)"),
            "tokens": log_slider("tokens", "Training tokens"),
            "flops": log_slider("flops", "Compute budget (FLOPs)"),
            "law": dropdown("law", "Loss law"),
            "hardware": dropdown("hardware", "Hardware"),
            "calibration": dropdown("calibration", "Latency calibration"),
            "dtype": dropdown("dtype", "Precision"),
            "batch": ladder("batch", "Batch size (sequences)"),
            "input_tokens": ladder("input_tokens", "Prompt length (tokens)"),
            "output_tokens": ladder("output_tokens", "Output length (tokens)"),
            "latency_target_s": log_slider("latency_target_s", "Latency target (s)"),
            "top_k": widgets.IntSlider(
                value=s.top_k, min=1, max=int(_NUMBER_BY_FIELD["top_k"].high), description="Shapes to keep (top k)",
                continuous_update=True, style=style, layout=layout,
            ),
        }

    def _read_controls(self) -> DashboardSettings:
        """The controls' values, clamped exactly as a link's values are (:func:`_clamp_fields`).

        The page is a client like any other: it may send a value outside a
        slider's range (after widening the range itself). Such a value is
        clamped, and the control is put back to its bounds and the clamped value.
        """
        raw = DashboardSettings(**{name: control.value for name, control in self.controls.items()})
        values, notes = _clamp_fields(raw)
        if notes:
            self._restore_controls(values)
        return DashboardSettings(**values)

    def _restore_controls(self, values: dict[str, Any]) -> None:
        """Put the controls back to their own bounds and to ``values``, without a redraw each."""
        for control in self.controls.values():
            control.unobserve(self._on_control, names="value")
        try:
            for name, control in self.controls.items():
                spec = _NUMBER_BY_FIELD.get(name)
                if spec is not None and not spec.ladder:
                    low, high = (math.log10(spec.low), math.log10(spec.high)) if not spec.integer else (spec.low, spec.high)
                    control.min, control.max = type(control.min)(low), type(control.max)(high)
                if control.value != values[name]:
                    control.value = values[name]
        finally:
            for control in self.controls.values():
                control.observe(self._on_control, names="value")

    def _toggle_budget_controls(self, mode: str) -> None:
        # Range mode fixes the tokens; compute mode derives them from the FLOPs.
        self.controls["tokens"].disabled = mode != "range"
        self.controls["flops"].disabled = mode != "compute"

    def _apply_controls(self, change: Any = None) -> None:
        settings = self._read_controls()
        self.settings = settings
        self.share.query = settings.to_query()
        self._toggle_budget_controls(settings.mode)
        result = self._compute(settings)
        self._commit(result, draw_figure=True)

    def set_controls(self, **changes: Any) -> None:
        """Move several controls at once, as a user would, then update once.

        E.g. ``set_controls(hardware="h100-sxm", latency_target_s=1.0)``.
        Errors land in the message bar, exactly as from the page.
        """
        unknown = set(changes) - set(self.controls)
        if unknown:
            raise MorphError(f"unknown setting(s) {', '.join(sorted(unknown))}; choose from {', '.join(self.controls)}")
        for control in self.controls.values():
            control.unobserve(self._on_control, names="value")
        try:
            for name, value in changes.items():
                self.controls[name].value = value
        finally:
            for control in self.controls.values():
                control.observe(self._on_control, names="value")
        self._on_control()

    # -- computation (pure package calls) -------------------------------------------------

    def _law(self, settings: DashboardSettings) -> Any:
        if settings.law != FIT_B:
            return settings.law
        if self._fit_b is None:
            self.messages.show(
                f"Fitting the inference-efficient law on the paper's 27 runs (fit set B) with {self.bootstrap} "
                "bootstrap refits for the loss band...",
                "info",
            )
            from .fitting import fit

            self._fit_b = fit(fit_set="in_fit_B", bootstrap=self.bootstrap)
            if self.messages.level == "info":
                self.messages.clear()
        return self._fit_b

    def _pool(self, settings: DashboardSettings) -> Candidates:
        """Candidate shapes in the parameter range (tokens set later); cached per range."""
        if settings.params_min > settings.params_max:
            raise SelectionError(
                f"the smallest model ({settings.params_min:.3g} parameters) is larger than the largest "
                f"({settings.params_max:.3g}); the parameter range must run from small to large"
            )
        key = (settings.shapes, settings.params_min, settings.params_max)
        if key not in self._pools:
            if settings.shapes == "paper":
                table = candidates_from_table(load_candidates(), tokens=1.0)
                inside = (table.N >= settings.params_min) & (table.N <= settings.params_max)
                if not inside.any():
                    raise SelectionError(
                        f"none of the paper's 15 candidates has between {settings.params_min:.3g} and "
                        f"{settings.params_max:.3g} parameters (they span {table.N.min():.3g}-{table.N.max():.3g}); "
                        "widen the range or choose every shape"
                    )
                pool = table.take(np.flatnonzero(inside))
            else:
                pool = candidates_from_range(settings.params_min, settings.params_max, 1.0)
            self._pools = {key: pool}  # one range at a time: the last one is what a slider returns to
        return self._pools[key]

    def _compute(self, settings: DashboardSettings) -> _Result:
        law = self._law(settings)
        pool = self._pool(settings)
        key = (
            settings.mode, settings.shapes, settings.params_min, settings.params_max,
            settings.tokens if settings.mode == "range" else settings.flops, settings.law, settings.hardware,
            settings.calibration, settings.batch, settings.input_tokens, settings.output_tokens, settings.dtype,
        )
        if self._result is not None and self._result.evaluation_key == key:
            evaluation = self._result.evaluation  # only the target or top k moved: re-rank, nothing else
        else:
            candidates = (
                pool.with_tokens(settings.tokens) if settings.mode == "range"
                else pool.with_training_flops(settings.flops)
            )
            evaluation = evaluate_candidates(
                candidates, law, hardware=settings.hardware,
                calibration=None if settings.calibration == "default" else settings.calibration,
                batch=settings.batch, input_tokens=settings.input_tokens,
                output_tokens=settings.output_tokens, dtype=settings.dtype,
            )
        selection = select(evaluation, settings.latency_target_s, settings.top_k)
        return _Result(settings, evaluation, selection, key, law)

    def _try_compute(self, settings: DashboardSettings) -> tuple[_Result | None, str | None]:
        try:
            return self._compute(settings), None
        except MorphError as exc:
            return None, str(exc)

    # -- drawing ---------------------------------------------------------------------------

    def _commit(self, result: _Result, draw_figure: bool) -> None:
        previous = self._result
        self._result, self.evaluation, self.selection = result, result.evaluation, result.selection
        evaluation_changed = previous is None or previous.evaluation is not result.evaluation
        if draw_figure:
            with self.figure.batch_update():
                if evaluation_changed:
                    self._draw_evaluation(result)
                self._draw_selection(result)
        self.table.value = self._table_html(result)
        if evaluation_changed:
            self.price.value = self._price_html(result)
            self.notes_html.value = self._notes_html(result)
            self.share.frontier_csv = self.frontier_csv()
        self.share.selection_csv = self.selection_csv()

    def _initial_figure(self, result: _Result | None) -> go.Figure:
        fig = make_subplots(
            rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.09,
            subplot_titles=(
                "Predicted loss against predicted latency",
                "Loss against aspect ratio R = d_model / n_layers",
            ),
        )
        hover_candidate = "%{text}<br>latency %{x:.3f} s<br>predicted loss %{y:.4f}<extra></extra>"
        fig.add_trace(go.Scatter(name="candidates", mode="markers", marker=dict(size=5, color=_FAINT),
                                 hovertemplate=hover_candidate), row=1, col=1)
        fig.add_trace(go.Scatter(name="Pareto frontier", mode="lines+markers", line=dict(color="#1f77b4", width=2),
                                 marker=dict(size=4), hovertemplate=hover_candidate), row=1, col=1)
        fig.add_trace(go.Scatter(name="selected (top k)", mode="markers+text", textposition="top left",
                                 marker=dict(size=13, color=_ACCENT, line=dict(color="white", width=1)),
                                 textfont=dict(color=_ACCENT), hovertemplate=hover_candidate), row=1, col=1)
        fig.add_trace(go.Scatter(name="published 1B models (measured latency)", mode="markers+text",
                                 textposition="bottom right", marker=dict(symbol="diamond", size=10, color="#2ca02c"),
                                 textfont=dict(size=10, color="#2ca02c"), hovertemplate="%{hovertext}<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(name="law at the top pick's N and D", mode="lines", line=dict(color="black", width=2),
                                 hovertemplate="R %{x:.0f}<br>predicted loss %{y:.4f}<extra></extra>"), row=1, col=2)
        fig.add_trace(go.Scatter(name="selected (on the law)", mode="markers", showlegend=False,
                                 marker=dict(size=11, color=_ACCENT, symbol="circle-open", line=dict(width=2)),
                                 hovertemplate=hover_candidate.replace("latency %{x:.3f} s", "R %{x:.0f}")),
                      row=1, col=2)
        for trace in _run_traces():
            fig.add_trace(trace, row=1, col=2)
        fig.update_xaxes(type="log", title_text="predicted latency of one call (s)", row=1, col=1)
        fig.update_yaxes(title_text="predicted training loss", row=1, col=1)
        fig.update_xaxes(type="log", title_text="aspect ratio R", row=1, col=2)
        fig.update_yaxes(title_text="training loss (as released)", row=1, col=2)
        fig.update_layout(
            height=600, margin=dict(l=60, r=20, t=50, b=120), template="plotly_white",
            legend=dict(orientation="h", yanchor="top", y=-0.12, x=0, font=dict(size=11)),
            shapes=[dict(type="line", xref="x", yref="y domain", x0=1, x1=1, y0=0, y1=1,
                         line=dict(color=_ACCENT, dash="dash", width=1.5))],
            annotations=[*fig.layout.annotations,
                         dict(xref="x", yref="y domain", x=0, y=1, text="", showarrow=False, xanchor="left",
                              yanchor="top", font=dict(color=_ACCENT), name="target")],
            uirevision="keep",  # keep the user's zoom across updates
        )
        if result is not None:
            self._draw_evaluation(result, fig)
            self._draw_selection(result, fig)
        return fig

    def _draw_evaluation(self, result: _Result, fig: Any = None) -> None:
        """Views that change with the evaluation: cloud, frontier, published models."""
        fig = self.figure if fig is None else fig
        ev, sel = result.evaluation, result.selection
        shown = thin_points(ev.latency_s, ev.loss, self.max_cloud_points)
        cloud, frontier, published = fig.data[CLOUD], fig.data[FRONTIER], fig.data[PUBLISHED]
        cloud.update(x=ev.latency_s[shown], y=ev.loss[shown], text=ev.candidates.labels(shown).tolist())
        f = sel.frontier_index
        frontier.update(x=ev.latency_s[f], y=ev.loss[f], text=ev.candidates.labels(f).tolist())
        refs = self._published(result)
        published.update(
            x=refs["latency_s"].tolist(), y=refs["loss"].tolist(), text=refs["name"].tolist(),
            hovertext=refs["hover"].tolist(), visible=bool(len(refs)),
            textposition=[("bottom center", "top center")[k % 2] for k in range(len(refs))],
        )

    def _draw_selection(self, result: _Result, fig: Any = None) -> None:
        """Views that change with the latency target and top k."""
        fig = self.figure if fig is None else fig
        ev, sel = result.evaluation, result.selection
        i = sel.selected_index
        labels = [f"{r}: {L}x{d}" for r, L, d in zip(sel.selected["rank"], sel.selected["n_layers"], sel.selected["d_model"])]
        # Labels on alternating sides: the best shapes often share one latency (same depth).
        sides = [("middle left", "top right", "bottom left", "bottom right", "top left")[k % 5] for k in range(len(labels))]
        fig.data[SELECTED].update(x=ev.latency_s[i], y=ev.loss[i], text=labels, textposition=sides)
        target = result.settings.latency_target_s
        fig.layout.shapes[0].update(x0=target, x1=target)
        fig.layout.annotations[-1].update(x=math.log10(target), text=f" target {target:.3g} s")
        # The law's curve over R at the top pick's N and D: the shape factor in isolation.
        top = int(i[0])
        N, D = float(ev.candidates.N[top]), float(ev.candidates.D[top])
        if self._curve_key != (N, D, result.evaluation_key):  # sent (and redrawn) only when it moves
            self._curve_key = (N, D, result.evaluation_key)
            R = np.geomspace(8.0, 4096.0, 160)
            law = resolve_law(result.law)[0]
            fig.data[LAW_CURVE].update(x=R, y=law.predict(np.full_like(R, N), np.full_like(R, D), R),
                                       name=f"law at N = {si_format(N)}, D = {si_format(D)} (the top pick's)")
        fig.data[ASPECT_SELECTED].update(x=ev.candidates.aspect_ratio[i], y=ev.loss[i], text=labels)

    def _published(self, result: _Result) -> pd.DataFrame:
        """The open 1B models at their measured latency, when the protocol matches theirs."""
        s = result.settings
        if any(getattr(s, k) != v for k, v in _PUBLISHED_PROTOCOL.items()):
            return pd.DataFrame(columns=["name", "latency_s", "loss", "hover"])
        models = load_models_1b()
        law = resolve_law(result.law)[0]
        layers, width = models["n_layers"].to_numpy(), models["d_model"].to_numpy()
        N = parameter_count(layers, width).astype(np.float64)
        models = models.assign(loss=law.predict(N, np.full_like(N, PAPER_TOKENS), width / layers))
        # Models of one shape and one measured latency share a point; name them together.
        rows = []
        for (lat, loss), group in models.groupby(["latency_s", "loss"], sort=True):
            names = ", ".join(group["model"])
            shape = f"{int(group['n_layers'].iloc[0])}x{int(group['d_model'].iloc[0])}"
            hover = (
                f"{names} ({shape})<br>measured {lat:.2f} s (A100 40GB, HF generate, bf16, batch 1, 128 in / 256 out)"
                f"<br>loss shown: this law's prediction for the shape at {si_format(PAPER_TOKENS)} tokens,"
                "<br>not the model's own loss (its data and tokens differ)"
            )
            rows.append({"name": names, "latency_s": lat, "loss": loss, "hover": hover})
        return pd.DataFrame(rows)

    def _table_html(self, result: _Result) -> str:
        sel, ev = result.selection, result.evaluation
        frame = sel.selected
        deepest = int(np.argmax(ev.candidates.n_layers))
        band = "loss_low" in frame
        head = ["rank", "candidate", "layers", "width", "R", "N", "D", "predicted loss" + (" [95% band]" if band else ""),
                "latency (s)", "ms / token", "speed-up"]
        rows = []
        for _, r in frame.iterrows():
            loss = f"{r['loss']:.4f}" + (f" [{r['loss_low']:.4f}, {r['loss_high']:.4f}]" if band else "")
            cells = [
                str(int(r["rank"])), str(r["label"]), str(int(r["n_layers"])), str(int(r["d_model"])),
                f"{r['aspect_ratio']:.0f}", si_format(r["N"]), si_format(r["D"]), loss,
                f"{r['latency_s']:.3f}", f"{r['ms_per_token']:.2f}", f"{r['speedup']:.2f}x",
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        within = int(np.count_nonzero(ev.latency_s <= sel.latency_target))
        caption = (
            f"The {len(frame)} best by predicted loss ({result.settings.law_label}) of the {within} candidates "
            f"within {sel.latency_target:.3g} s ({len(ev):,} in all). Speed-up against the deepest candidate, "
            f"{ev.candidates.labels(deepest)} ({ev.latency_s[deepest]:.3g} s)."
        )
        return (
            '<table class="morph-selected" style="border-collapse:collapse;font-size:13px">'
            f'<caption style="caption-side:top;text-align:left;padding:4px 0">{html.escape(caption)}</caption>'
            "<thead><tr>" + "".join(f'<th style="padding:2px 8px;text-align:right">{html.escape(h)}</th>' for h in head)
            + "</tr></thead><tbody>" + "".join(rows).replace("<td>", '<td style="padding:2px 8px;text-align:right">')
            + "</tbody></table>"
        )

    def _price_html(self, result: _Result) -> str:
        ev = result.evaluation
        table = price_of_speed(ev, (2.0,))
        best = int(np.argmin(ev.loss))
        best_text = f"{ev.candidates.labels(best)} ({ev.latency_s[best]:.3g} s, loss {ev.loss[best]:.4f})"
        row = table.iloc[0]
        if not np.isfinite(row["loss_penalty"]):
            text = f"Price of speed: no candidate here is 2x faster than the best-loss shape, {best_text}."
        else:
            text = (
                f"Price of speed: a 2x faster model ({row['label']}, {row['latency_s']:.3g} s) costs "
                f"{row['loss_penalty']:+.4f} in predicted loss ({row['relative_penalty'] * 100:+.2f}%) "
                f"against the best-loss shape here, {best_text}."
            )
        return f'<div class="morph-price-text">{html.escape(text)}</div>'

    def _notes_html(self, result: _Result) -> str:
        ev, s = result.evaluation, result.settings
        notes = []
        drawn = min(len(ev), thin_points(ev.latency_s, ev.loss, self.max_cloud_points).size)
        if drawn < len(ev):
            notes.append(f"{drawn:,} of {len(ev):,} candidates drawn (thinned evenly over the plot); "
                         "the frontier and the selection use all of them.")
        if any(getattr(s, k) != v for k, v in _PUBLISHED_PROTOCOL.items()):
            notes.append("The published 1B models are shown only for the setting they were measured in: "
                         "A100 40GB, bf16, batch 1, 128 input and 256 output tokens.")
        else:
            notes.append("Published 1B models: measured latency (A100 40GB); their loss is placed at this law's "
                         f"prediction for their shape at {si_format(PAPER_TOKENS)} tokens, not their own loss.")
        notes.append("Right: the law's shape factor is monotone in R, while the runs rise again for very deep, "
                     "narrow shapes (small R): the law does not see that side of the U.")
        return "".join(f'<div style="font-size:12px;color:#555">{html.escape(n)}</div>' for n in notes)

    # -- exports ---------------------------------------------------------------------------

    def frontier_csv(self) -> str:
        """The current Pareto frontier (fastest first) as CSV text; empty before a first result."""
        return "" if self.selection is None else self.selection.frontier.to_csv(index=False)

    def selection_csv(self) -> str:
        """The current selection (best first) as CSV text; empty before a first result."""
        return "" if self.selection is None else self.selection.selected.to_csv(index=False)

    # -- layout ----------------------------------------------------------------------------

    def _layout(self) -> widgets.VBox:
        c = self.controls

        def column(title: str, names: Sequence[str]) -> widgets.VBox:
            return widgets.VBox(
                [widgets.HTML(f"<b>{html.escape(title)}</b>"), *(c[n] for n in names)],
                layout=widgets.Layout(margin="0 16px 8px 0"),
            )

        controls = widgets.HBox(
            [
                column("Selection", ["latency_target_s", "top_k"]),
                column("Candidates and training", ["mode", "shapes", "params_min", "params_max", "tokens", "flops", "law"]),
                column("Serving", ["hardware", "calibration", "dtype", "batch", "input_tokens", "output_tokens"]),
            ],
            layout=widgets.Layout(flex_flow="row wrap"),
        )
        root = widgets.VBox([self.messages, controls, self.figure, self.notes_html, self.price, self.table, self.share])
        root.add_class("morph-dashboard")
        return root


def _run_traces() -> list[go.Scatter]:
    """The paper's 76 runs: markers coloured by size, and thin lines joining each size's runs at one budget.

    Two traces rather than one per size: every trace adds a legend entry that
    plotly lays out again on each redraw, and redraws follow the slider.
    """
    runs = load_runs().sort_values(["N", "budget_label", "aspect_ratio"])
    xs: list[float | None] = []
    ys: list[float | None] = []
    for _, group in runs.groupby(["size_label", "budget_label"], sort=False):
        group = group.sort_values("aspect_ratio")
        xs += group["aspect_ratio"].tolist() + [None]
        ys += group["loss"].tolist() + [None]
    lines = go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(90,90,90,0.35)", width=1),
                       hoverinfo="skip", showlegend=False, name="runs of one size and budget")
    labels = runs["run"] + " (" + runs["size_label"] + ", " + runs["budget_label"] + ")"
    markers = go.Scatter(
        x=runs["aspect_ratio"].to_numpy(), y=runs["loss"].to_numpy(), text=labels.tolist(), mode="markers",
        name="the paper's 76 runs (colour: size)",
        marker=dict(size=7, color=np.log10(runs["N"].to_numpy()), colorscale="Viridis", cmin=7.8, cmax=9.3,
                    colorbar=dict(title=dict(text="N", side="right"), x=1.0, len=0.75, thickness=10,
                                  tickvals=[8, 8.5, 9], ticktext=["100M", "316M", "1B"])),
        hovertemplate="%{text}<br>R %{x:.0f}<br>loss %{y:.4f}<extra></extra>",
    )
    return [lines, markers]
