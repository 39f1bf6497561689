"""Loss bands, ties, probability of being best, feasibility and validity of a selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from morph import Workload
from morph.cli import main
from morph.decision import FitRange, assess, fit_range, preset_fit, range_warnings
from morph.errors import LatencyError, SelectionError
from morph.frontier import Candidates, candidates_from_range, evaluate_candidates, select
from morph.laws import PRESETS


@pytest.fixture(scope="module")
def fit_b():
    # 50 refits keep the module fast; the invariants below hold for any number.
    return preset_fit("bian2025", bootstrap=50)


def test_preset_fit_reproduces_the_published_parameters(fit_b):
    # The preset's digits are those of the paper's code (8 significant figures), but the
    # refit holds only 5 of them on every CPU: A moves from 54753.954 (AVX-512) to 54754.025
    # (AVX2) with the SIMD kernels, the tolerance data/paper_numbers.csv gives the fit-B parameters.
    for name, value in PRESETS["bian2025"].law.params.items():
        assert fit_b.params[name] == pytest.approx(value, rel=5e-5), name
    assert preset_fit("hoffmann2022") is None


def test_fit_set_b_range_by_hand():
    runs = fit_range("bian2025")
    # Smallest and largest N of the 27 runs flagged in_fit_B in data/morph_runs.csv: 80M_v7 and 313M_v3.
    assert runs.N == (77677440.0, 311975680.0)
    assert runs.tested_N == 1668885504.0  # Morph-1B, 12x3072, the largest run shipped
    # The narrowest: 80M_v7, 22 layers of width 384.
    assert runs.aspect_ratio[0] == pytest.approx(384 / 22, rel=1e-12)
    assert fit_range("hoffmann2022").N == (7e7, 1.6e10)


def test_range_warnings_flag_700_tokens_per_parameter():
    runs = FitRange(N=(1e8, 2e9), D=None, tokens_per_parameter=(20.0, 160.0), aspect_ratio=None, source="runs")
    # 1e12 tokens for a 1.4e9 model: 714 tokens per parameter.
    inside, notes = range_warnings(np.array([1.4e9, 1.4e9]), np.array([1e12, 2.8e10]), np.array([85.0, 85.0]), runs)
    assert inside.tolist() == [False, True]
    assert len(notes) == 1 and "tokens per parameter" in notes[0] and "1 of 2" in notes[0]


def test_the_runs_a_law_was_fitted_on_are_inside_its_range_and_others_are_named_with_their_span():
    # The range's edges are the runs' own extremes: the runs themselves, edges included, are inside.
    runs = FitRange(N=(1e8, 2e9), D=(2e9, 4e10), tokens_per_parameter=(20.0, 20.0), aspect_ratio=(16.0, 256.0),
                    source="runs", tested_N=4e9)
    N, D, R = np.array([1e8, 2e9]), np.array([2e9, 4e10]), np.array([16.0, 256.0])
    inside, notes = range_warnings(N, D, R, runs)
    assert inside.all() and notes == []
    # Shapes of 3e9, 5e9 and 1e8 parameters: the N note gives the candidates' span, 1e+08 to 5e+09, and the
    # largest N the law was checked on; the note on tokens per parameter (200 for the first) does not.
    inside, notes = range_warnings(np.array([3e9, 5e9, 1e8]), np.array([6e11, 1e11, 2e9]), np.array([64.0] * 3), runs)
    assert inside.tolist() == [False, False, True]
    n_note = next(note for note in notes if "parameters N" in note)
    assert "2 of 3" in n_note and "values 1e+08-5e+09" in n_note and "runs up to N = 4e+09" in n_note
    assert len(notes) >= 2 and all("runs up to N" not in note for note in notes if note is not n_note)


def test_range_warnings_without_a_known_fit_set():
    inside, notes = range_warnings(np.array([1e9]), np.array([1e10]), np.array([80.0]), None)
    assert inside.all() and "unknown" in notes[0]


@pytest.fixture(scope="module")
def assessed(fit_b):
    evaluation = evaluate_candidates(candidates_from_range(1.2e9, 1.6e9, 2.9e10), fit_b)
    selection = select(evaluation, 3.0, 5)
    return selection, assess(selection, fit_range("bian2025"))


def test_bands_bracket_the_predictions(assessed):
    selection, assessment = assessed
    shown = np.union1d(selection.selected_index, selection.frontier_index)
    ev = selection.evaluation
    cols = assessment.columns
    assert np.all(cols["latency_low_s"][shown] <= ev.latency_s[shown])
    assert np.all(ev.latency_s[shown] <= cols["latency_high_s"][shown])
    assert np.all(cols["latency_low_s"][shown] >= ev.roofline_s[shown] * (1 - 1e-12))
    # The fitted law's prediction lies inside its own bootstrap band for the kept candidates.
    kept = selection.selected_index
    assert np.all(cols["loss_low"][kept] <= ev.loss[kept]) and np.all(ev.loss[kept] <= cols["loss_high"][kept])


def test_a_shape_that_misses_the_budget_in_every_draw_is_never_best(assessed):
    selection, assessment = assessed
    probability = assessment.columns["probability_best"]
    # The eager band's shared factor has sigma 1.05 ln(3.61 / 2.54) / 1.96 = 0.1883; the lowest of 200 stratified
    # normal quantiles is -2.807, a factor 0.589: a shape predicted over 3 s / 0.589 = 5.09 s misses in every draw.
    over = [i for i in selection.frontier_index if selection.evaluation.latency_s[i] > 5.1]
    assert over
    assert all(probability[i] == 0.0 and assessment.columns["probability_within_budget"][i] == 0.0 for i in over)
    assert not any(bool(assessment.columns["plausibly_best"][i]) for i in over)


def test_a_shape_with_no_chance_of_being_best_is_not_plausibly_best(assessed):
    selection, assessment = assessed
    shown = np.flatnonzero(np.isfinite(assessment.columns["probability_best"]))
    zero = shown[assessment.columns["probability_best"][shown] == 0.0]
    assert zero.size and not any(bool(assessment.columns["plausibly_best"][i]) for i in zero)


def test_a_preset_without_a_fit_says_so(assessed):
    evaluation = evaluate_candidates(candidates_from_range(1.2e9, 1.6e9, 2.9e10), "hoffmann2022")
    selection = select(evaluation, 3.0, 3)
    assessment = assess(selection)
    assert np.all(np.isnan(assessment.columns["loss_low"]))
    assert any("without its fit" in w for w in assessment.warnings)


def test_infeasible_candidates_are_never_selected():
    # 12x3072 at 128 + 256 tokens holds 56.6 MB of cache per sequence: batch 700 needs ~43 GB > 40 GB,
    # while 6x1024 needs far less.
    candidates = Candidates.from_arrays(np.array([12, 6]), np.array([3072, 1024]), 2.9e10)
    evaluation = evaluate_candidates(candidates, "bian2025", workload=Workload(batch=700))
    assert evaluation.feasible.tolist() == [False, True]
    selection = select(evaluation, 1e6, 2)
    assert selection.selected_index.tolist() == [1]
    assert "memory" in selection.dropped["reason"].iloc[0]
    with pytest.raises(SelectionError, match="no candidate fits"):
        select(evaluate_candidates(candidates, "bian2025",
                                   workload=Workload(batch=512, input_tokens=8192, output_tokens=8192)), 1e6, 2)


def test_cli_frontier_json_adds_the_decision_fields(capsys):
    assert main(["frontier", "--params-min", "1.2e9", "--params-max", "1.6e9", "--tokens", "2.9e10",
                 "--latency-budget", "3", "--bootstrap", "30", "--stack", "cuda-graphs", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stack"] == "cuda-graphs" and isinstance(out["warnings"], list) and out["warnings"]
    for key in ("selected", "frontier"):
        for row in out[key]:
            for field in ("latency_low_s", "latency_high_s", "loss_low", "loss_high", "feasible",
                          "infeasible_reason", "probability_best", "plausibly_best", "probability_within_budget"):
                assert field in row, (key, field)
            assert row["latency_low_s"] <= row["latency_s"] <= row["latency_high_s"]
    for row in out["selected"]:
        assert row["plausibly_best"] == (row["probability_best"] >= out["plausibly_best_threshold"])


def test_serving_metrics_by_hand():
    from morph.latency.serving import serving_metric

    common = dict(latency_s=np.array([2.0]), prefill_s=np.array([0.05]), ms_per_token=np.array([7.6]),
                  batch=4, output_tokens=256)
    # 4 x 256 = 1,024 tokens in 2 s; at 3.6 per GPU-hour: 0.001 per second x 2 s / 1,024 tokens x 1e6.
    assert serving_metric("tokens_per_s", **common)[0] == pytest.approx(512.0, rel=1e-12)
    assert serving_metric("cost_per_million_tokens", **common, price_per_gpu_hour=3.6)[0] == pytest.approx(
        2e-3 / 1024 * 1e6, rel=1e-12)
    assert serving_metric("ttft_s", **common)[0] == 0.05 and serving_metric("ms_per_token", **common)[0] == 7.6


def test_a_throughput_or_cost_budget_is_a_latency_by_hand():
    from morph.latency.serving import latency_at_budget

    # 4 x 256 = 1,024 tokens: a floor of 512 tokens/s is a 2 s ceiling on the call.
    assert latency_at_budget("tokens_per_s", 512.0, batch=4, output_tokens=256) == pytest.approx(2.0, rel=1e-12)
    # At 3.6 per GPU-hour (0.001 per second), 1.953125 per 1M tokens is 1,024 tokens for 0.002: 2 s.
    assert latency_at_budget("cost_per_million_tokens", 1.953125, batch=4, output_tokens=256,
                             price_per_gpu_hour=3.6) == pytest.approx(2.0, rel=1e-12)
    assert latency_at_budget("latency_s", 2.0, batch=4, output_tokens=256) == 2.0
    # Prefill and per-token time are not functions of the call's latency alone.
    assert latency_at_budget("ttft_s", 0.05, batch=4, output_tokens=256) is None
    assert latency_at_budget("ms_per_token", 7.6, batch=4, output_tokens=256) is None
    with pytest.raises(LatencyError, match="positive price"):
        latency_at_budget("cost_per_million_tokens", 1.0, batch=1, output_tokens=1)


@settings(max_examples=60, deadline=None)
@given(latency=st.floats(1e-3, 1e3), batch=st.integers(1, 512), output_tokens=st.integers(1, 8192),
       price=st.floats(0.01, 100.0), name=st.sampled_from(["latency_s", "tokens_per_s", "cost_per_million_tokens"]))
def test_latency_at_budget_inverts_the_metric(latency, batch, output_tokens, price, name):
    from morph.latency.serving import latency_at_budget, serving_metric

    value = serving_metric(name, latency_s=np.array([latency]), prefill_s=np.array([0.0]), ms_per_token=np.array([0.0]),
                           batch=batch, output_tokens=output_tokens, price_per_gpu_hour=price)[0]
    back = latency_at_budget(name, value, batch=batch, output_tokens=output_tokens, price_per_gpu_hour=price)
    assert back == pytest.approx(latency, rel=1e-12)  # a few float operations each way


def test_a_throughput_budget_is_a_floor_and_a_cost_budget_a_ceiling(fit_b):
    evaluation = evaluate_candidates(candidates_from_range(1.2e9, 1.6e9, 2.9e10), fit_b)
    tokens = 256 / evaluation.latency_s
    floor = float(np.median(tokens))
    selection = select(evaluation, floor, 3, budget_metric="tokens_per_s")
    assert np.all(tokens[selection.selected_index] >= floor)
    cost = 2.0 / 3600 * evaluation.latency_s / 256 * 1e6
    ceiling = float(np.median(cost))
    chosen = select(evaluation, ceiling, 3, budget_metric="cost_per_million_tokens", price_per_gpu_hour=2.0)
    assert np.all(cost[chosen.selected_index] <= ceiling)
    # Meeting the budget is a probability: 1/2 exactly where the prediction sits on the budget.
    assessment = assess(chosen)
    p = assessment.columns["probability_within_budget"]
    p = np.where(np.isfinite(p), p, 0.5)  # computed for the shapes shown only
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(p[chosen.selected_index] >= 0.5)


def test_compute_mode_centres_on_the_laws_optimum(capsys):
    from morph.laws import preset

    law = preset("bian2025")
    optimum = law.compute_optimal(1e21, 64.0)
    # Closed form: N = G (C/6)^(beta/(alpha+beta)), alpha = beta so N = G sqrt(C/6) with G = (A/B)^(1/(2 alpha)).
    g = (law.params["A"] / law.params["B"]) ** (1 / (2 * law.params["alpha"]))
    assert float(optimum.N) == pytest.approx(g * np.sqrt(1e21 / 6), rel=1e-9)
    assert main(["frontier", "--flops", "1e21", "--latency-budget", "2", "--bootstrap", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    compute = out["compute"]
    assert compute["compute_optimal"]["N"] == pytest.approx(float(optimum.N), rel=1e-9)
    # The candidates span a factor of 8 either side of the optimum.
    sizes = [row["N"] for row in out["frontier"]]
    assert min(sizes) >= float(optimum.N) / 8 * 0.999 and max(sizes) <= float(optimum.N) * 8 * 1.001
    assert compute["latency_constrained"]["loss_penalty"] >= 0
    assert compute["latency_constrained"]["latency_s"] <= 2.0
