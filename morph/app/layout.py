"""The dashboard's page layout at every size: CSS, the figure's geometry, a width probe, help text.

The page is laid out by CSS: controls beside the plot when there is room, stacked above
it otherwise. What decides is the dashboard's own width, not the window's, so a Voila
page and a JupyterLab cell behave alike: :class:`WidthProbe` marks the dashboard
``morph-narrow`` in the page itself when it is narrower than :data:`NARROW_BELOW_PX`.
(A CSS container query would say the same, but a size-contained box inside
JupyterLab's output table stops the output from growing to its content.) The figure cannot follow CSS (plotly
places subplots in its own layout), so a tiny widget, :class:`WidthProbe`, reports the
width of the figure's box to the kernel and :func:`figure_geometry` turns it into
subplot domains, margins and a height: side by side when wide, one above the other
when narrow. Knowing the figure's size in pixels also lets the labels be placed
without overlaps (:mod:`morph.app.labels`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import anywidget
import traitlets

__all__ = [
    "DASHBOARD_CSS",
    "HOW_TO_READ",
    "NARROW_BELOW_PX",
    "STICKY_CSS",
    "FigureGeometry",
    "WidthProbe",
    "figure_geometry",
    "log_range",
    "linear_range",
]

STACK_BELOW_PX = 760
"""Figure boxes narrower than this get their two plots one above the other."""
CONTROLS_PX = 340
"""Width of the controls column beside the plot."""
NARROW_BELOW_PX = CONTROLS_PX + 500
"""Dashboards narrower than this stack the controls above the plot (the plot keeps at least 480 px beside them)."""

_NARROW_IN_VOILA = "body[data-voila] .morph-dashboard.morph-narrow"
STICKY_CSS = f"""
{_NARROW_IN_VOILA} .morph-controls {{ display: contents; }}
{_NARROW_IN_VOILA} .morph-essentials {{ position: sticky; top: -10px; z-index: 20;
  background: var(--jp-layout-color0, #fff); padding: 14px 0 4px; box-shadow: 0 3px 4px -2px rgba(0, 0, 0, 0.25); }}
{_NARROW_IN_VOILA}, {_NARROW_IN_VOILA} .morph-body, {_NARROW_IN_VOILA} .morph-columns,
{_NARROW_IN_VOILA} .morph-controls {{ overflow: visible; min-width: 0; max-width: 100%; }}
body[data-voila] .jp-OutputArea:has(.morph-dashboard.morph-narrow),
body[data-voila] .jp-OutputArea-child:has(.morph-dashboard.morph-narrow),
body[data-voila] .jp-OutputArea-output:has(.morph-dashboard.morph-narrow) {{ overflow: visible; }}
"""
"""Narrow layout only: the essential controls stay at the top of the screen while the page scrolls.

Sticky needs two things. Its containing block must span the plot and the table, so the
controls column dissolves (``display: contents``) and the essentials become a direct
item of the stacked columns. And no box between it and the page's scroller may scroll
or clip: ipywidgets boxes and the output area of the page are set to ``overflow: visible``.
Only in a Voila page (``body[data-voila]``; it scrolls in a panel further out): in a
JupyterLab notebook the cell's output area scrolls and clips, so the dashboard there
keeps its plain stacked layout. The block is opaque and above the plot (whose layers carry no
z-index); ``top: -10px`` with 10 px more padding covers the panel's own 10 px padding,
through which the page would otherwise show above it. About 230 px tall on a phone.
"""

DASHBOARD_CSS = f"""<style>
.morph-dashboard {{ max-width: 100%; }}
.morph-dashboard .morph-body {{ width: 100%; }}
.morph-dashboard .morph-columns {{ display: flex; flex-flow: row nowrap; gap: 16px; align-items: flex-start; }}
.morph-dashboard .morph-controls {{ flex: 0 0 {CONTROLS_PX}px; width: {CONTROLS_PX}px; min-width: 0; }}
.morph-dashboard .morph-main {{ flex: 1 1 auto; min-width: 0; }}
.morph-dashboard .morph-figure-box {{ width: 100%; max-width: 100%; overflow-x: clip; }}
.morph-dashboard .morph-controls .widget-inline-hbox,
.morph-dashboard .morph-controls .widget-hbox {{ flex-wrap: wrap; width: 100%; max-width: 100%; height: auto; }}
.morph-dashboard .morph-controls .widget-label {{ width: 100% !important; max-width: 100%; overflow: visible;
  white-space: normal; height: auto; line-height: 1.3; text-align: left; }}
.morph-dashboard .morph-controls .morph-with-readout {{ flex-wrap: nowrap; align-items: flex-end; }}
.morph-dashboard .morph-controls .morph-with-readout > .widget-slider {{ flex: 1 1 auto; min-width: 0; }}
.morph-dashboard .morph-controls .widget-dropdown select {{ width: 100%; }}
.morph-dashboard .morph-controls .widget-dropdown {{ width: 100%; }}
.morph-dashboard .morph-controls .widget-toggle-buttons .widget-toggle-button {{ width: auto; min-width: 0;
  padding: 0 10px; }}
.morph-dashboard .morph-controls .widget-slider {{ width: 100%; }}
.morph-dashboard .morph-controls .widget-slider .slider-container {{ flex: 1 1 120px; }}
.morph-dashboard .morph-controls .widget-readout {{ min-width: 64px; max-width: none; overflow: visible; }}
.morph-dashboard .morph-readout, .morph-dashboard .morph-readout .widget-html-content {{ flex: 0 0 auto;
  width: auto !important; min-width: max-content; text-align: right; white-space: nowrap; }}
.morph-dashboard .morph-main .widget-html, .morph-dashboard .morph-main .widget-html-content {{ max-width: 100%;
  min-width: 0; flex-shrink: 1; white-space: normal; }}
.morph-dashboard .morph-table {{ max-width: 100%; overflow-x: auto; }}
.morph-dashboard .morph-table table {{ font-size: 12px; }}
.morph-dashboard .morph-table th {{ white-space: normal; vertical-align: bottom; }}
.morph-dashboard .morph-table th, .morph-dashboard .morph-table td {{ padding: 2px 3px; }}
.morph-dashboard .morph-help {{ font-size: 13px; line-height: 1.4; color: #333; }}
.morph-dashboard .morph-help summary {{ cursor: pointer; font-weight: 600; }}
.morph-dashboard .morph-share input {{ min-width: 0 !important; flex-basis: 200px !important; }}
.morph-dashboard.morph-narrow .morph-columns {{ flex-direction: column; align-items: stretch; }}
.morph-dashboard.morph-narrow .morph-controls, .morph-dashboard.morph-narrow .morph-main {{ flex: 0 0 auto;
  width: 100%; }}
{STICKY_CSS}</style>"""
"""Style sheet of the dashboard; ``morph-narrow`` (set by :class:`WidthProbe`) stacks the columns."""

HOW_TO_READ = """<details class="morph-help" open><summary>How to read this</summary>
<p><b>Left:</b> every candidate shape (grey) at its predicted latency (seconds for one generate call) and
predicted loss (nats per token; lower is better). The blue line is the <b>Pareto frontier</b>: the shapes
that no other shape beats on both loss and latency. The red dots are the best shapes within the latency
budget (dashed line), numbered by rank, with error bars for the uncertainty of latency and loss; grey
crosses do not fit in memory. Green diamonds along the top are published 1B models at their measured
latency (no loss is published for them).</p>
<p><b>Right:</b> loss against the <b>aspect ratio</b> R = d_model / n_layers (width over depth). Wider,
shallower models (larger R) are faster to serve; the black curve is how much loss the law charges for
the shape at the top pick's size and data; dots are the paper's training runs, and shaded bands mark
aspect ratios outside them, where the law extrapolates.</p></details>"""
"""A short guide shown beside the plot (static text: nothing from a link reaches it)."""


class WidthProbe(anywidget.AnyWidget):
    """Reports the width in pixels of the dashboard's figure box (``width``; 0 until measured).

    In the page, it also marks the dashboard ``morph-narrow`` whenever the dashboard is
    narrower than :data:`NARROW_BELOW_PX` (no round trip to the kernel: the columns stack
    at once).
    """

    _esm = f"const NARROW = {NARROW_BELOW_PX};" + """
function render({ model, el }) {
  el.style.cssText = "height:0;overflow:hidden";
  let last = 0, observer = null, timer = null;
  const root = () => el.closest(".morph-dashboard");
  const box = () => { const r = root(); return r && r.querySelector(".morph-figure-box"); };
  const narrow = () => { const r = root(); if (r) r.classList.toggle("morph-narrow", r.clientWidth < NARROW); };
  const report = () => {
    const b = box();
    const width = b ? Math.round(b.clientWidth) : 0;
    if (width > 0 && Math.abs(width - last) >= 8) { last = width; model.set("width", width); model.save_changes(); }
  };
  const start = () => {
    const b = box();
    if (!b) { timer = setTimeout(start, 100); return; }
    observer = new ResizeObserver(() => { narrow(); report(); });
    observer.observe(root());
    observer.observe(b);
    narrow();
    report();
  };
  start();
  return () => { if (observer) observer.disconnect(); if (timer) clearTimeout(timer); };
}
export default { render };
"""
    width = traitlets.Int(0).tag(sync=True)


@dataclass(frozen=True)
class FigureGeometry:
    """Size and subplot placement of the dashboard's figure, for one box width.

    Attributes
    ----------
    width, height : int
        The figure in pixels.
    stacked : bool
        The two plots one above the other (narrow boxes) instead of side by side.
    margin : dict
        Plotly margins in pixels (``l``, ``r``, ``t``, ``b``).
    domains : dict
        ``xaxis``, ``yaxis``, ``xaxis2``, ``yaxis2`` domains (fractions of the plotting area).
    """

    width: int
    height: int
    stacked: bool
    margin: dict
    domains: dict

    def plot_area(self, axis: str = "") -> tuple[float, float]:
        """Width and height in pixels of the left/top plot (``axis=""``) or the other one (``"2"``)."""
        inner_w = self.width - self.margin["l"] - self.margin["r"]
        inner_h = self.height - self.margin["t"] - self.margin["b"]
        x0, x1 = self.domains[f"xaxis{axis}"]
        y0, y1 = self.domains[f"yaxis{axis}"]
        return (x1 - x0) * inner_w, (y1 - y0) * inner_h

    def layout(self) -> dict[str, Any]:
        """The plotly layout properties that depend on the size (merge into the figure)."""
        out: dict[str, Any] = {"width": self.width, "height": self.height, "margin": dict(self.margin)}
        for axis, domain in self.domains.items():
            out[axis] = {"domain": list(domain)}
        return out

    def colorbar(self) -> dict[str, Any]:
        """Where the runs' colour bar goes: beside the right (or lower) plot, as tall as it."""
        y0, y1 = self.domains["yaxis2"]
        return dict(y=(y0 + y1) / 2, len=(y1 - y0) * 0.9, yanchor="middle", x=1.02, xanchor="left")

    def titles(self, left: str, right: str) -> list[dict[str, Any]]:
        """Plot titles as annotations centred above each plot (replacing plotly's subplot titles)."""
        out = []
        for axis, text in (("", left), ("2", right)):
            x0, x1 = self.domains[f"xaxis{axis}"]
            out.append(dict(text=f"<b>{text}</b>", x=(x0 + x1) / 2, y=self.domains[f"yaxis{axis}"][1], xref="paper",
                            yref="paper", xanchor="center", yanchor="bottom", yshift=6, showarrow=False,
                            font=dict(size=13), name="title"))
        return out


def figure_geometry(width: int | None) -> FigureGeometry:
    """The figure's geometry for a box ``width`` pixels wide (``None`` or 0: not measured yet, assume 900).

    Side by side from :data:`STACK_BELOW_PX` up, one above the other below it; never
    narrower than 300 px (a phone's figure box is about 350 px).
    """
    width = int(width) if width else 900
    width = max(300, width)
    if width >= STACK_BELOW_PX:
        # The right plot's colour bar and both y-axis titles need their pixels whatever the width.
        gap = min(0.2, 130 / width)
        split = 0.56
        domains = {"xaxis": (0.0, split), "yaxis": (0.0, 1.0), "xaxis2": (split + gap, 1.0), "yaxis2": (0.0, 1.0)}
        return FigureGeometry(width, 520, False, dict(l=64, r=64, t=40, b=56), domains)
    height = 860
    domains = {"xaxis": (0.0, 1.0), "yaxis": (0.57, 1.0), "xaxis2": (0.0, 1.0), "yaxis2": (0.0, 0.40)}
    return FigureGeometry(width, height, True, dict(l=60, r=60, t=40, b=56), domains)


def log_range(values: list[float], pad: float = 0.08) -> tuple[float, float]:
    """A log-axis range (``log10`` units) holding every positive finite value, padded by ``pad`` of its span."""
    logs = [math.log10(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not logs:
        return (-1.0, 1.0)
    low, high = min(logs), max(logs)
    span = max(high - low, 0.2)
    return (low - pad * span, high + pad * span)


def linear_range(values: list[float], pad: float = 0.1) -> tuple[float, float]:
    """A linear-axis range holding every finite value, padded by ``pad`` of its span."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return (0.0, 1.0)
    low, high = min(finite), max(finite)
    span = max(high - low, 1e-3 * max(abs(high), 1.0))
    return (low - pad * span, high + pad * span)
