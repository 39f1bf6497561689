"""The dashboard's computation without a widget: results, what a move recomputes, the exports' provenance."""

from __future__ import annotations

import dataclasses

import pytest

from morph.app.dashboard_compute import DashboardComputation, frontier_csv, provenance, selection_csv
from morph.app.settings import DashboardSettings
from morph.data import split_provenance
from morph.errors import SelectionError


def test_the_defaults_give_the_paper_s_choice_and_a_budget_move_only_re_ranks():
    computation = DashboardComputation(bootstrap=0)
    first = computation.compute(DashboardSettings())
    assert first.selection.selected["label"].iloc[0] == "1B_v8" and computation.result is first
    moved = computation.compute(dataclasses.replace(DashboardSettings(), latency_budget_s=1.5, top_k=5))
    assert moved.evaluation is first.evaluation  # the same evaluation object: nothing re-evaluated
    assert len(moved.selection.selected) <= 5 and moved.selection.latency_budget_s == 1.5
    batched = computation.compute(dataclasses.replace(DashboardSettings(), batch=8))
    assert batched.evaluation is not first.evaluation


def test_an_impossible_range_is_a_sentence_not_a_result():
    computation = DashboardComputation(bootstrap=0)
    result, error = computation.try_compute(dataclasses.replace(DashboardSettings(), params_min=2e9, params_max=1e8))
    assert result is None and "the parameter range must run from small to large" in error
    with pytest.raises(SelectionError):
        computation.compute(dataclasses.replace(DashboardSettings(), params_min=2e9, params_max=1e8))


def test_the_exports_name_the_settings_that_produced_them():
    computation = DashboardComputation(bootstrap=0)
    settings = dataclasses.replace(DashboardSettings(), latency_budget_s=3.0)
    result = computation.compute(settings)
    header, table = split_provenance(frontier_csv(result))
    assert header["latency_budget_s"] == "3" and header["settings"] == settings.to_query()
    assert selection_csv(result).startswith(provenance(settings))
    assert frontier_csv(None) == "" == selection_csv(None)
