"""The dashboard's text: the ranked table, the price-of-speed sentence and the notes under the figure.

Each takes one computed result (settings, evaluation, selection, assessment)
and returns HTML in which every value is escaped. Kept apart from
:mod:`morph.app.dashboard` (the controls and the figure) so that each stays short.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ..frontier import price_of_speed, speedup_reference
from ..latency.serving import SERVING_METRICS, metric_meets
from .dashboard_parts import shape_name, thin_points
from .decision_view import budget_phrase, decision_columns, decision_notes, published_visible
from .plotting import si_format

__all__ = ["html_table", "price_of_speed_html", "reading_notes_html", "selection_table_html", "validity_notes_html"]

_TABLE_STYLE = (
    "<style>.morph-selected{border-collapse:collapse;font-size:13px}"
    ".morph-selected th,.morph-selected td{padding:2px 8px;text-align:right}</style>"
)


def selection_table_html(result: Any) -> str:
    """The ranked selection as an HTML table (every cell escaped), with a caption naming what it ranks."""
    sel, ev = result.selection, result.evaluation
    frame = sel.selected
    reference = speedup_reference(ev, int(sel.selected_index[0]))
    # The loss band is the decision layer's (a column of its own, from the joint draws), shown once.
    columns: dict[str, Any] = {
        "rank": [str(int(v)) for v in frame["rank"]],
        "candidate": [str(v) for v in frame["label"]],
        "layers x width": [f"{int(L)}x{int(d)}" for L, d in zip(frame["n_layers"], frame["d_model"])],
        "R": [f"{v:.0f}" for v in frame["aspect_ratio"]],
        "N": [si_format(v) for v in frame["N"]],
        "D": [si_format(v) for v in frame["D"]],
        "predicted loss": [f"{v:.4f}" for v in frame["loss"]],
        "latency (s)": [f"{v:.3f}" for v in frame["latency_s"]],
        "ms / token": [f"{v:.2f}" for v in frame["ms_per_token"]],
        "speed-up": [f"{v:.2f}x" for v in frame["speedup"]],
        **_budget_column(sel),
        **decision_columns(sel, result.assessment),
    }
    within = int(np.count_nonzero(metric_meets(sel.budget_metric, sel.budget_values, sel.latency_budget_s)))
    caption = (
        f"The {len(frame)} best by predicted loss ({result.settings.law_label}) of the {within} candidates "
        f"{budget_phrase(sel)} ({len(ev):,} in all). Speed-up against a conventional shape of "
        f"the top pick's size (aspect ratio nearest 24x2048's): {shape_name(ev, reference)} "
        f"({ev.latency_s[reference]:.3g} s)."
    )
    # The style sheet sits next to the table (.morph-table is its box).
    return (
        f'<div class="morph-table-caption" style="padding:4px 0">{html.escape(caption)}</div>'
        + html_table(columns, "morph-selected") + _TABLE_STYLE
    )


def html_table(columns: dict[str, Any], css_class: str) -> str:
    """A table of text columns (header: the keys) as HTML, every header and cell escaped.

    The markup pandas' ``to_html(index=False, border=0, justify="right")`` writes, in
    a tenth of its time: the table is rebuilt on every slider move.
    """
    def text(value: Any) -> str:
        return html.escape(str(value), quote=False)  # element text: <, > and & are what must be escaped

    head = "".join(f"<th>{text(name)}</th>" for name in columns)
    rows = zip(*columns.values())
    body = "".join("<tr>" + "".join(f"<td>{text(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return (f'<table class="dataframe {html.escape(css_class)}"><thead><tr style="text-align: right;">'
            f"{head}</tr></thead><tbody>{body}</tbody></table>")


def _budget_column(selection: Any) -> dict[str, Any]:
    # The budget's own metric, where the table has no column for it already.
    metric = SERVING_METRICS[selection.budget_metric]
    if metric.name in ("latency_s", "ms_per_token"):
        return {}
    values = selection.budget_values[selection.selected_index]
    return {f"{metric.label.split(' (')[0]} ({metric.unit})": [f"{v:.4g}" for v in values]}


def price_of_speed_html(result: Any) -> str:
    """The price-of-speed sentence: what a 2x faster shape costs in predicted loss."""
    ev = result.evaluation
    table = price_of_speed(ev, (2.0,))
    best = int(np.argmin(ev.loss))
    best_text = f"{shape_name(ev, best)} ({ev.latency_s[best]:.3g} s, loss {ev.loss[best]:.4f})"
    row = table.iloc[0]
    if not np.isfinite(row["loss_penalty"]):
        text = f"Price of speed: no candidate here is 2x faster than the best-loss shape, {best_text}."
    else:
        text = (
            f"Price of speed: a 2x faster model ({shape_name(ev, int(row['index']))}, {row['latency_s']:.3g} s) costs "
            f"{row['loss_penalty']:+.4f} in predicted loss ({row['relative_penalty'] * 100:+.2f}%) "
            f"against the best-loss shape here, {best_text}."
        )
    return f'<div class="morph-price-text">{html.escape(text)}</div>'


def validity_notes_html(result: Any) -> str:
    """The assessment's sentences (:func:`decision_notes`), escaped; a prior the answer depends on first, in bold.

    They follow the budget as well as the evaluation (which shape is best,
    and whether that hangs on a prior, changes with the budget), so the
    dashboard redraws them with the selection.
    """
    assessment = result.assessment
    parts = []
    for note in decision_notes(assessment, result.settings.workload):
        prior = note == assessment.prior_dependence
        parts.append(
            f'<div class="morph-validity{" morph-prior-dependence" if prior else ""}" '
            f'style="font-size:12px;color:#8a5a00{";font-weight:bold" if prior else ""}">{html.escape(note)}</div>'
        )
    return "".join(parts)


def reading_notes_html(result: Any, max_cloud_points: int) -> str:
    """How to read what is drawn: thinning of the cloud, the published models, the right-hand view."""
    ev, s = result.evaluation, result.settings
    notes = []
    drawn = min(len(ev), thin_points(ev.latency_s, ev.loss, max_cloud_points).size)
    if drawn < len(ev):
        notes.append(f"{drawn:,} of {len(ev):,} candidates drawn (thinned evenly over the plot); "
                     "the frontier and the selection use all of them.")
    if not published_visible(s.workload, s.mode):
        notes.append("The published 1B models are shown only for the setting they were measured in: "
                     "A100 40GB, Hugging Face generate, bf16, batch 1, 128 input and 256 output tokens, "
                     "in parameter-range mode (they were trained on their own token budgets).")
    else:
        notes.append("Published 1B models (green, top strip): measured latency and measured accuracy; no loss "
                     "is published for them, so they are not placed on the loss axis.")
    notes.append("Right: the law's shape factor is monotone in R, while the runs rise again for very deep, "
                 "narrow shapes (small R): the law does not see that side of the U.")
    return "".join(f'<div style="font-size:12px;color:#555">{html.escape(n)}</div>' for n in notes)

