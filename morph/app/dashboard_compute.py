"""The dashboard's computation: settings in, one consistent result out, with its caches and its CSV exports.

No widget here: :class:`DashboardComputation` turns a
:class:`~morph.app.settings.DashboardSettings` into a :class:`Result` (the
evaluation, the selection under the budget, the decision layer's assessment and,
in compute mode, the optima) through :mod:`morph.frontier` and
:mod:`morph.decision`, and decides what a change recomputes:

- the candidate pool is enumerated once per parameter range;
- the evaluation is kept when only the budget, its metric, the price or top k
  moved (then a move only re-ranks);
- the fit-set-B law is fitted (or read from :mod:`morph.fitcache`) once.

:func:`provenance`, :func:`frontier_csv` and :func:`selection_csv` write what the
share bar offers for download: the table after ``# key: value`` lines naming
the settings that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..data import load_candidates
from ..decision import BOOTSTRAP, Assessment, compute_optima
from ..errors import MorphError, SelectionError
from ..fitcache import cached_fit
from ..fitting import FitResult
from ..frontier import (
    Candidates,
    Evaluation,
    Selection,
    candidates_from_flops,
    candidates_from_range,
    candidates_from_table,
    evaluate_candidates,
    resolve_law,
    select,
)
from .decision_view import decision_assessment
from .settings import FIT_B, DashboardSettings, setting_choices

__all__ = ["Result", "DashboardComputation", "evaluation_key", "provenance", "frontier_csv", "selection_csv"]


@dataclass(frozen=True)
class Result:
    """One consistent set of computed views: what a redraw needs."""

    settings: DashboardSettings
    evaluation: Evaluation
    selection: Selection
    evaluation_key: tuple
    law: Any
    assessment: Assessment
    optima: dict[str, Any] | None = None


def evaluation_key(settings: DashboardSettings) -> tuple:
    """The settings the evaluation depends on: equal keys, the same loss and latency for every candidate."""
    s = settings
    return (
        s.mode, s.shapes, s.params_min, s.params_max, s.tokens if s.mode == "range" else s.flops, s.law, s.hardware,
        s.calibration, s.stack, s.batch, s.input_tokens, s.output_tokens, s.dtype,
    )


class DashboardComputation:
    """Settings to :class:`Result`, recomputing only what a change needs.

    Parameters
    ----------
    bootstrap : int
        Bootstrap refits for the fit-set-B law (its loss band) and the presets' re-derived fits.
    on_fit : callable, optional
        Called with ``True`` before the fit-set-B law is fitted (it may take seconds)
        and with ``False`` after: a page shows a message meanwhile.

    Attributes
    ----------
    result : Result or None
        The last result :meth:`compute` returned.
    fit_b : FitResult or None
        The fit-set-B law, once a setting asked for it.
    """

    def __init__(self, bootstrap: int = BOOTSTRAP, on_fit: Callable[[bool], None] | None = None) -> None:
        self.bootstrap = int(bootstrap)
        self.on_fit = on_fit
        self.result: Result | None = None
        self.fit_b: FitResult | None = None
        self.pools: dict[tuple, Candidates] = {}

    def law(self, settings: DashboardSettings) -> Any:
        """The law ``settings`` name: a preset's name, or the fit-set-B fit (fitted on first use)."""
        if settings.law != FIT_B:
            return settings.law
        if self.fit_b is None:
            if self.on_fit is not None:
                self.on_fit(True)
            # Stored after the first kernel fits it (morph serve fits it before the first page).
            self.fit_b = cached_fit(fit_set="in_fit_B", bootstrap=self.bootstrap)
            if self.on_fit is not None:
                self.on_fit(False)
        return self.fit_b

    def pool(self, settings: DashboardSettings) -> Candidates:
        """Candidate shapes in the parameter range (tokens set later); cached per range."""
        if settings.mode == "compute" and settings.shapes == "grid":
            return Candidates.from_arrays(np.array([1]), np.array([64]), 1.0)  # unused: centred on the optimum
        if settings.params_min > settings.params_max:
            raise SelectionError(
                f"the smallest model ({settings.params_min:.3g} parameters) is larger than the largest "
                f"({settings.params_max:.3g}); the parameter range must run from small to large"
            )
        key = (settings.shapes, settings.params_min, settings.params_max)
        if key not in self.pools:
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
            self.pools = {key: pool}  # one range at a time: the last one is what a slider returns to
        return self.pools[key]

    def compute(self, settings: DashboardSettings) -> Result:
        """The result for ``settings`` (it becomes :attr:`result`); raises :class:`~morph.errors.MorphError`."""
        law = self.law(settings)
        pool = self.pool(settings)
        key = evaluation_key(settings)
        if self.result is not None and self.result.evaluation_key == key:
            evaluation = self.result.evaluation  # only the target or top k moved: re-rank, nothing else
        else:
            if settings.mode == "compute" and settings.shapes == "grid":
                # A factor of 8 either side of the law's compute-optimal N.
                candidates = candidates_from_flops(settings.flops, law=law)
            elif settings.mode == "range":
                candidates = pool.with_tokens(settings.tokens)
            else:
                candidates = pool.with_training_flops(settings.flops)
            evaluation = evaluate_candidates(candidates, law, workload=settings.workload)
        selection = select(evaluation, settings.latency_budget_s, settings.top_k, budget_metric=settings.budget_metric,
                           price_per_gpu_hour=settings.price_per_gpu_hour)
        assessment = decision_assessment(selection, law, settings.law, self.bootstrap)
        optima = compute_optima(selection, settings.flops, resolve_law(law)[0]) if settings.mode == "compute" else None
        self.result = Result(settings, evaluation, selection, key, law, assessment, optima)
        return self.result

    def try_compute(self, settings: DashboardSettings) -> tuple[Result | None, str | None]:
        """:meth:`compute`, or None and the error's sentence."""
        try:
            return self.compute(settings), None
        except MorphError as exc:
            return None, str(exc)


def provenance(settings: DashboardSettings) -> str:
    """``# key: value`` lines naming the settings behind a download (read back with :func:`morph.data.split_provenance`)."""
    s, w = settings, settings.workload
    lines = {
        "source": "Morph dashboard",
        "settings": s.to_query() or "the defaults (the paper's choice of Morph-1B)",
        "law": s.law_label,
        "latency_budget_s": f"{s.latency_budget_s:g}",
        "budget_metric": s.budget_metric,
        "workload": f"{setting_choices()['hardware'][s.hardware]}, {w.dtype}, batch {w.batch}, {w.input_tokens} prompt tokens, "
                    f"{w.output_tokens} output tokens",
    }
    # One line each; a newline in a value would end the header early.
    return "".join(f"# {key}: {' '.join(str(value).split())}\n" for key, value in lines.items())


def frontier_csv(result: Result | None) -> str:
    """The result's Pareto frontier (fastest first) as CSV text after its settings; empty without a result."""
    return "" if result is None else provenance(result.settings) + result.selection.frontier.to_csv(index=False)


def selection_csv(result: Result | None) -> str:
    """The result's selection (best first) as CSV text after its settings; empty without a result."""
    return "" if result is None else provenance(result.settings) + result.selection.selected.to_csv(index=False)
