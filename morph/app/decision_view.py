"""The dashboard's honest-decision layer: bands, plausibly best shapes, feasibility, fit range, evidence, optima.

Pure functions from :mod:`morph.decision`'s :class:`~morph.decision.Assessment`
to what the dashboard draws: error bars and hover text for the kept
candidates, a greyed trace of shapes that do not fit in memory, shading of the
aspect ratios outside the law's runs, the published models on a strip of their
own (measured latency and measured accuracy, never placed on the loss axis),
the compute-mode optima, and the extra table columns. The dashboard calls them;
nothing here holds state except the caches of re-derived preset fits and their fit ranges.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..data import load_models_1b
from ..decision import PLAUSIBLE, Assessment, FitRange, assess, fit_range, infeasible_reasons, preset_fit
from ..fitting import FitResult
from ..frontier import Selection
from ..latency import PAPER_WORKLOAD, Workload
from ..latency.serving import SERVING_METRICS, latency_at_budget
from ..latency.uncertainty import LEVEL, uncertainty_of

__all__ = [
    "GREY",
    "ACCENT",
    "budget_phrase",
    "budget_rule",
    "budget_line",
    "candidates_trace",
    "frontier_trace",
    "selected_trace",
    "decision_assessment",
    "selected_bars",
    "infeasible_trace",
    "infeasible_points",
    "fit_range_shading",
    "published_trace",
    "published_points",
    "published_visible",
    "optima_trace",
    "optima_points",
    "decision_columns",
    "decision_notes",
]

GREY = "rgba(150,150,150,0.55)"
ACCENT = "#d62728"
"""The selection's colour: the kept shapes, their labels and the budget."""
_FAINT = "rgba(120,120,120,0.35)"
_OUT_OF_RANGE = "rgba(255,165,0,0.12)"
_HOVER_CANDIDATE = "%{text}<br>latency %{x:.3f} s<br>predicted loss %{y:.4f} nats/token<extra></extra>"


# --- the selection's traces: one look in the dashboard and in the notebooks' figure ------------


def candidates_trace() -> go.Scatter:
    """The (empty) trace of every candidate: a faint cloud of (latency, loss) points."""
    return go.Scatter(name="candidates", mode="markers", marker=dict(size=5, color=_FAINT),
                      hovertemplate=_HOVER_CANDIDATE)


def frontier_trace() -> go.Scatter:
    """The (empty) trace of the (latency, loss) Pareto frontier."""
    return go.Scatter(name="Pareto frontier", mode="lines+markers", line=dict(color="#1f77b4", width=2),
                      marker=dict(size=4), hovertemplate=_HOVER_CANDIDATE)


def selected_trace() -> go.Scatter:
    """The (empty) trace of the kept shapes; :func:`selected_bars` adds their bands and plausibly best marks."""
    return go.Scatter(name="selected (top k)", mode="markers",
                      marker=dict(size=11, color=ACCENT, line=dict(color="white", width=1)),
                      hovertemplate="%{text}<br>%{hovertext}<extra></extra>")


def budget_line(latency_s: float = 1.0) -> dict[str, Any]:
    """The budget as a dashed rule across the plot at ``latency_s`` (a shape of the first x axis)."""
    return dict(type="line", xref="x", yref="y domain", x0=latency_s, x1=latency_s, y0=0, y1=1,
                line=dict(color=ACCENT, dash="dash", width=1.5), name="budget")


def budget_phrase(selection: Selection) -> str:
    """The budget in words: ``within 2 s``, ``with time to first token at most 0.05 s``."""
    metric, budget = SERVING_METRICS[selection.budget_metric], selection.latency_budget_s
    if metric.name == "latency_s":
        return f"within {budget:.3g} s"
    return f"with {metric.label} {metric.bound} {budget:.3g} {metric.unit}"


def budget_rule(selection: Selection) -> tuple[float, str] | None:
    """Where the budget is a line on the latency axis, and its caption; ``None`` where it is not.

    Throughput and cost are functions of the call's latency (drawn at the latency
    they amount to); time to first token and time per output token are not, so
    they have no rule (the selection still applies them).
    """
    workload = selection.evaluation.workload
    budget, metric = selection.latency_budget_s, SERVING_METRICS[selection.budget_metric]
    latency = latency_at_budget(metric.name, budget, batch=workload.batch, output_tokens=workload.output_tokens,
                                price_per_gpu_hour=selection.price_per_gpu_hour)
    if latency is None:
        return None
    if metric.name == "latency_s":
        return latency, f"budget {budget:.3g} s"
    return latency, f"{metric.bound} {budget:.3g} {metric.unit} ({latency:.3g} s)"


@lru_cache(maxsize=4)
def _preset_fit(name: str, bootstrap: int) -> FitResult | None:
    # Re-deriving a preset with bootstrap refits takes about a second per hundred: once per process.
    return preset_fit(name, bootstrap=bootstrap)


@lru_cache(maxsize=8)
def _preset_range(name: str) -> FitRange | None:
    # A preset's runs are read from the shipped table: once per process, not on every move.
    return fit_range(name)


def decision_assessment(selection: Selection, law: Any, law_name: str, bootstrap: int) -> Assessment:
    """The assessment the dashboard shows: the law's own fit, or a bian2025 preset's re-derived one."""
    fit_result = law if isinstance(law, FitResult) else (_preset_fit(law_name, bootstrap) if bootstrap else None)
    runs: FitRange | None = fit_range(law) if isinstance(law, FitResult) else _preset_range(law_name)
    return assess(selection, runs, fit_result=fit_result)


def _column(assessment: Assessment, name: str, index: np.ndarray) -> np.ndarray:
    return np.asarray(assessment.columns[name], dtype=object)[index]


def _floats(assessment: Assessment, name: str, index: np.ndarray) -> np.ndarray:
    return np.asarray(assessment.columns[name], dtype=np.float64)[index]


def _number(value: float, spec: str) -> str:
    # The assessment leaves NaN where it computed nothing: say so, never print "nan".
    return format(value, spec) if np.isfinite(value) else "n/a"


def _plausibly(assessment: Assessment, index: np.ndarray) -> list[bool | None]:
    """Per shape: plausibly best (True/False), or None where the law has no draws (a published preset)."""
    return [None if v is None else bool(v) for v in _column(assessment, "plausibly_best", index)]


def _loss_hover(loss: float, low: float, high: float, probability: float, plausibly: bool | None) -> str:
    if plausibly is None or not np.isfinite(low):
        return f"predicted loss {loss:.4f} (no band: preset law)"
    verdict = (f"plausibly best: P(best) {probability:.2f} >= {PLAUSIBLE:g}" if plausibly
               else f"not plausibly best: P(best) {probability:.2f} < {PLAUSIBLE:g}")
    return f"predicted loss {loss:.4f} [{low:.4f}, {high:.4f}]<br>{verdict}"


def selected_bars(selection: Selection, assessment: Assessment) -> dict[str, Any]:
    """``update`` arguments for the kept candidates: latency and loss error bars, plausibly best, P(best).

    Every number comes from the assessment's joint draws; a star marks a shape
    whose probability of being best is at least :data:`morph.decision.PLAUSIBLE`.
    """
    ev = selection.evaluation
    i = np.asarray(selection.selected_index)
    x, y = ev.latency_s[i], ev.loss[i]
    low_x, high_x = _floats(assessment, "latency_low_s", i), _floats(assessment, "latency_high_s", i)
    low_y, high_y = _floats(assessment, "loss_low", i), _floats(assessment, "loss_high", i)
    has_loss = bool(np.all(np.isfinite(low_y)))
    probability = _floats(assessment, "probability_best", i)
    plausibly = _plausibly(assessment, i)
    within = _floats(assessment, "probability_within_budget", i)
    hover = [
        f"latency {xv:.3f} s [{_number(lo, '.3f')}, {_number(hi, '.3f')}]; meets the budget with probability "
        f"{_number(w, '.2f')}<br>" + _loss_hover(yv, ly, hy, p, t)
        for xv, lo, hi, w, yv, ly, hy, p, t in zip(x, low_x, high_x, within, y, low_y, high_y, probability, plausibly)
    ]
    return {
        "error_x": dict(type="data", symmetric=False, array=(high_x - x).tolist(), arrayminus=(x - low_x).tolist(),
                        color="rgba(214,39,40,0.6)", thickness=1.5, width=4, visible=True),
        "error_y": dict(type="data", symmetric=False, array=(high_y - y).tolist() if has_loss else [],
                        arrayminus=(y - low_y).tolist() if has_loss else [], color="rgba(214,39,40,0.6)",
                        thickness=1.5, width=4, visible=has_loss),
        "hovertext": hover,
        "marker": {"symbol": ["star" if t else "circle" for t in plausibly]},
        "customdata": [[float(p) if np.isfinite(p) else None, t] for p, t in zip(probability, plausibly)],
    }


def infeasible_trace() -> go.Scatter:
    """The (empty) trace of candidates that do not fit in memory: grey crosses with the reason on hover."""
    return go.Scatter(name="does not fit in memory", mode="markers", visible=False,
                      marker=dict(symbol="x-thin", size=7, color=GREY, line=dict(color=GREY, width=1.5)),
                      hovertemplate="%{text}<br>%{hovertext}<extra>infeasible</extra>")


def infeasible_points(selection: Selection, assessment: Assessment, limit: int = 2000) -> dict[str, Any]:
    """``update`` arguments for the infeasible trace (at most ``limit`` points)."""
    ev = selection.evaluation
    bad = np.flatnonzero(~np.asarray(assessment.columns["feasible"], dtype=bool))[:limit]
    reasons = [str(r) for r in infeasible_reasons(ev, bad)]
    return dict(x=ev.latency_s[bad], y=ev.loss[bad], text=ev.candidates.labels(bad).tolist(), hovertext=reasons,
                visible=bool(bad.size))


def fit_range_shading(runs: FitRange | None, xref: str = "x2", yref: str = "y2 domain") -> list[dict[str, Any]]:
    """Rectangles over the aspect ratios outside the law's runs (the right-hand view)."""
    if runs is None or runs.aspect_ratio is None:
        return []
    low, high = runs.aspect_ratio
    common = dict(type="rect", xref=xref, yref=yref, y0=0, y1=1, fillcolor=_OUT_OF_RANGE, line=dict(width=0),
                  layer="below", name="outside the law's runs")
    return [dict(common, x0=1.0, x1=low), dict(common, x0=high, x1=1e5)]


def published_trace() -> go.Scatter:
    """The (empty) published-models trace: a strip at the top, on an axis of its own (no loss)."""
    return go.Scatter(name="published 1B models (measured latency, measured accuracy)", mode="markers+text",
                      yaxis="y3", xaxis="x", textposition="bottom center",
                      marker=dict(symbol="diamond-tall", size=11, color="#2ca02c", line=dict(color="white", width=1)),
                      textfont=dict(size=10, color="#2ca02c"), hovertemplate="%{hovertext}<extra></extra>")


def published_visible(workload: Workload, mode: str) -> bool:
    """Whether the published timings stand for this setting: same device, stack and protocol, range mode."""
    return mode == "range" and workload.timed_like(PAPER_WORKLOAD)


def published_points(workload: Workload, mode: str) -> dict[str, Any]:
    """``update`` arguments for the published models: measured latency and accuracy, or hidden."""
    if not published_visible(workload, mode):
        return dict(x=[], y=[], text=[], hovertext=[], visible=False)
    models = load_models_1b()
    rows = []
    for latency, group in models.groupby("latency_s", sort=True):
        names = ", ".join(group["model"])
        accuracy = ", ".join(f"{a:.2f}" for a in group["avg_accuracy_11_tasks"])
        hover = (f"{html.escape(names)}<br>measured {latency:.2f} s (A100 40GB, Hugging Face generate, bf16, batch 1, "
                 f"128 in / 256 out)<br>measured 11-task accuracy {accuracy} (the paper's table)"
                 "<br>no loss is published for these models: they sit on a strip of their own")
        rows.append({"name": names.split(",")[0] + ("+" if len(group) > 1 else ""), "latency_s": latency,
                     "hover": hover})
    frame = pd.DataFrame(rows)
    return dict(x=frame["latency_s"].tolist(), y=[0.96 - 0.05 * (k % 2) for k in range(len(frame))],
                text=frame["name"].tolist(), hovertext=frame["hover"].tolist(), visible=True)


def optima_trace() -> go.Scatter:
    """The (empty) compute-mode optima: the best shape at any latency, marked apart from the selection."""
    return go.Scatter(name="compute optimum (any latency)", mode="markers+text", visible=False,
                      textposition="top right", marker=dict(symbol="star-diamond", size=15, color="#9467bd"),
                      textfont=dict(color="#9467bd"), hovertemplate="%{hovertext}<extra></extra>")


def optima_points(selection: Selection, optima: dict[str, Any] | None) -> dict[str, Any]:
    """``update`` arguments for the optima trace (hidden outside compute mode)."""
    if optima is None:
        return dict(x=[], y=[], text=[], hovertext=[], visible=False)
    best, chosen = optima["best_shape"], optima["latency_constrained"]
    text = (f"{best['label']}: least predicted loss at {optima['flops']:.3g} FLOPs, any latency<br>"
            f"the law's compute-optimal N = {optima['compute_optimal']['N']:.3g}; Chinchilla's "
            f"N = {optima['chinchilla_optimal']['N']:.3g}<br>within the budget: {chosen['label']}, "
            f"{chosen['loss_penalty']:+.4f} in loss")
    return dict(x=[best["latency_s"]], y=[best["loss"]], text=["compute optimum"], hovertext=[text], visible=True)


def decision_columns(selection: Selection, assessment: Assessment) -> dict[str, list[str]]:
    """Extra columns of the ranked table: loss and latency bands, P(best), plausibly best, P(meets budget), memory."""
    i = np.asarray(selection.selected_index)
    low, high = _floats(assessment, "latency_low_s", i), _floats(assessment, "latency_high_s", i)
    loss_low, loss_high = _floats(assessment, "loss_low", i), _floats(assessment, "loss_high", i)
    memory = _floats(assessment, "memory_gb", i)
    return {
        "loss 95% band": [f"{a:.4f}-{b:.4f}" if np.isfinite(a) and np.isfinite(b) else "n/a"
                          for a, b in zip(loss_low, loss_high)],
        "latency band (s)": [f"{a:.3f}-{b:.3f}" if np.isfinite(a) and np.isfinite(b) else "n/a"
                             for a, b in zip(low, high)],
        "P(best)": [_number(p, ".2f") for p in _floats(assessment, "probability_best", i)],
        f"plausibly best (P(best) >= {PLAUSIBLE:g})": [
            "n/a" if t is None else ("yes" if t else "no") for t in _plausibly(assessment, i)],
        "P(meets budget)": [_number(p, ".2f") for p in _floats(assessment, "probability_within_budget", i)],
        "memory (GB)": [_number(m, ".3g") for m in memory],
    }


def decision_notes(assessment: Assessment, workload: Workload) -> list[str]:
    """Sentences for the page: what depends on a prior (first), the bands' basis, a transfer, every warning.

    The assessment puts its prior-dependence sentence first among its
    warnings and the transfer sentence next; both are taken out of the
    warnings by that order so that each is said once, where it belongs.
    """
    spread = uncertainty_of(workload.resolved_calibration(), workload.device)
    basis = (f"Serving stack {assessment.stack}: latency bands are the central {LEVEL:.0%} of "
             f"{assessment.draws.get('n', assessment.n_draws)} joint draws; basis {assessment.latency_basis}"
             + (f": {spread.reasoning}." if spread.reasoning else "."))
    rest, prior = list(assessment.warnings), assessment.prior_dependence
    if prior and rest[:1] == [prior]:
        rest.pop(0)
    badge = ["TRANSFERRED: " + rest.pop(0)] if assessment.latency_basis == "transfer" and rest else []
    return [*([prior] if prior else []), basis, *badge, *rest]
