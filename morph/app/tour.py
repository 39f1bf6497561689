"""A guided tour: preset dashboard links that tell the paper's story, one step each.

A lecturer puts these links on slides: each opens the dashboard on one point of the
paper. They are ordinary settings links, so they go through the same codec as any
other (:func:`morph.app.settings.settings_from_query`), and the tests check that each
one reads back without a single adjustment and shows what its text claims.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .settings import DashboardSettings, settings_from_query

__all__ = ["TOUR", "TourStop", "tour_html"]


@dataclass(frozen=True)
class TourStop:
    """One step of the tour.

    Attributes
    ----------
    title : str
        What the step shows, in a few words.
    query : str
        The dashboard's settings, as a link's query string (no ``?``; empty for the defaults).
    look_at : str
        What to look at on the page, in one or two sentences.
    """

    title: str
    query: str
    look_at: str

    @property
    def settings(self) -> DashboardSettings:
        """The settings the link sets (what the dashboard reads from it)."""
        return settings_from_query(self.query)[0]


TOUR: tuple[TourStop, ...] = (
    TourStop(
        "Similar size, very different speed",
        "latency=10&top_k=15",
        "The paper's 15 candidate shapes, of 1.33B-2.12B parameters, ranked with no binding budget. Their "
        "predicted latency spans 0.60 s to 3.61 s, 6.0x between the fastest and the slowest, which differ "
        "in size too; between models with the same parameter count the paper measured up to 3.5x. Latency "
        "follows depth: Open-LM-1B's 24x2048 (1.44B) against Morph-1B's 12x3072 (1.67B) is 1.84x.",
    ),
    TourStop(
        "The 2 s selection: Morph-1B",
        "",
        "The paper's method with its settings: the best predicted loss among the shapes that answer "
        "within 2 s on an A100. Morph-1B, 12x3072, comes first at 1.96 s, 1.84x faster than the "
        "conventional 24x2048 shape. Its loss band, [2.8506, 3.0254], overlaps the runner-up's almost "
        "entirely, yet it has the lower loss in 96% of the joint draws: the law's error is shared.",
    ),
    TourStop(
        "The aspect-ratio penalty",
        "latency=1&top_k=5",
        "Ask for 1 s and only the flattest shapes remain (4x4608, 2x5632, aspect ratios above 1,000). "
        "They are fast, but the law charges their width: their predicted loss is clearly worse than "
        "Morph-1B's. The right-hand plot shows the penalty growing with R.",
    ),
    TourStop(
        "Batch 64: a shift inside the band",
        "batch=64",
        "The A100 under eager generate, serving 64 sequences at once: each call takes a little longer "
        "(12x3072: 1.96 s at batch 1, 2.12 s at 64), so Morph-1B slips past the 2 s budget and 10x3200 "
        "comes first at 1.84 s. The shift is smaller than the latency band (1.48-3.05 s for 12x3072): no "
        "shape is plausibly best alone (P(best) 0.26 for 10x3200, 0.25 for 8x3328, 0.19 for 12x3072). "
        "Another GPU would not move this: under eager generate every GPU preset borrows the A100's "
        "coefficients (a transfer: eager batch-1 decoding is host-bound), so only the band widens. "
        "The stack does (next step).",
    ),
    TourStop(
        "A graph-captured stack: the speed-up shrinks",
        "stack=cuda-graphs",
        "Serve with CUDA graphs instead of eager Hugging Face generate: the per-layer host overhead "
        "is gone and the 2 s budget no longer binds. What a layer still costs on the device is a "
        "prior (0-54 us per layer and step) that no public timing measures, so whether 12x3072 is "
        "still faster than 24x2048 is open: about 1.0x instead of 1.84x. The coefficients are "
        "transferred from published timings of another model and GPU: note the badge and the wider "
        "bands. Choose the H100 SXM: there Morph measured the cost, 96 us per layer and step for "
        "unfused kernels, and 12x3072 is 1.45x faster again.",
    ),
)
"""The tour, in the order of the story."""


def tour_html(base: str = "", links: bool = True) -> str:
    """The tour as an HTML list of links (``base`` + ``?query``), each with what to look at.

    Parameters
    ----------
    base : str
        Prefix of each link; empty gives links relative to the page (``?latency=1``), which
        reopen the same dashboard with those settings.
    links : bool
        Links (a Voila page), or the query strings as text (a JupyterLab cell, whose page
        a link would leave; ``Dashboard.from_query(...)`` takes them there).
    """
    items = []
    for number, stop in enumerate(TOUR, start=1):
        query = "?" + stop.query if stop.query else "?"
        title = f"{number}. {html.escape(stop.title)}"
        if links:
            head = f'<a class="morph-tour-link" href="{html.escape(base + query, quote=True)}">{title}</a>'
        else:
            head = f"{title} (<code>{html.escape(query)}</code>)"
        items.append(f"<li>{head}: {html.escape(stop.look_at)}</li>")
    return (f'<details class="morph-help morph-tour"><summary>Guided tour: the paper in {len(TOUR)} links</summary>'
            f'<ol style="list-style:none;padding-left:0">{"".join(items)}</ol></details>')
