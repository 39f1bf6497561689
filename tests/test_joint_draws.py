"""One set of joint draws behind every band and probability; each calibration's stated distribution."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from morph.cli import main
from morph.data import data_dir
from morph.decision import PLAUSIBLE, assess, fit_range, preset_fit
from morph.errors import LatencyError
from morph.frontier import candidates_from_range, candidates_from_table, evaluate_candidates, select
from morph.latency import Workload, load_calibration, predict_latency
from morph.latency.calibration import calibrate, load_measurements
from morph.latency.measurements import generation_work_for
from morph.latency.hardware import get_hardware
from morph.latency.published import graph_layer_cost_bound, load_published_timings
from morph.latency.uncertainty import (
    central_interval, coefficient_draws, draw_latency, latency_interval, prior_ends, uncertainty_of,
)
from morph.laws import ChinchillaLaw


def _json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- each calibration's distribution ------------------------------------------------------------


def test_the_eager_band_contains_every_published_timing_it_cites(capsys):
    out = _json(capsys, "latency", "--shape", "24x2048", "--hardware", "a100-40gb")
    row = out["shapes"][0]
    assert out["latency_basis"] == "published spread"
    cited = load_published_timings().query("stack == 'hf-eager' and n_layers == 24 and d_model == 2048")["value"]
    # OPT-IML 2.54, OPT 2.55, Open-LM 3.61, Neox 3.99 s (the paper's 1B table).
    assert sorted(cited) == [2.54, 2.55, 3.61, 3.99]
    assert row["latency_low_s"] <= min(cited) and max(cited) <= row["latency_high_s"]
    # Log-symmetric about 3.61 s: low * high = 3.61^2 to the band's draw resolution (1%).
    assert row["latency_low_s"] * row["latency_high_s"] == pytest.approx(3.61**2, rel=0.01)


@pytest.mark.parametrize("n", [1, 2, 3, 40, 199, 200, 201])
@pytest.mark.parametrize("level", [0.0, 0.5, 0.95, 0.99, 1.0])
def test_the_central_interval_is_numpys_percentile(n, level):
    # The expectation is numpy's own percentile (linear interpolation); ties and a NaN column included.
    rng = np.random.default_rng(n)
    draws = rng.normal(size=(n, 6)) * 10.0 ** rng.uniform(-3, 3, size=6)
    draws[rng.random((n, 6)) < 0.3] = 1.0
    tail = (1.0 - level) / 2.0 * 100.0
    for values in (draws, np.where(np.arange(6) == 2, np.nan, draws)):
        low, high = central_interval(values, level)
        expected = np.percentile(values, [tail, 100.0 - tail], axis=0)
        np.testing.assert_array_equal(low, expected[0])
        np.testing.assert_array_equal(high, expected[1])


def test_predict_latency_returns_a_band_and_its_basis_for_every_calibration():
    for settings, basis in ((dict(hardware="a100-40gb"), "published spread"),
                            (dict(hardware="cpu", dtype="fp32"), "measured"),
                            (dict(hardware="a100-80gb", stack="cuda-graphs"), "prior"),
                            (dict(hardware="h100-sxm"), "transfer")):
        p = predict_latency([24, 12], [2048, 3072], **settings)
        assert p.latency_basis == basis
        assert np.all(p.latency_low_s <= p.latency_s) and np.all(p.latency_s <= p.latency_high_s)
        assert np.all(p.latency_low_s >= p.roofline_s * (1 - 1e-6))


def test_draws_are_seeded_and_reproducible():
    a = predict_latency([24, 12], [2048, 3072], stack="cuda-graphs", hardware="a100-80gb")
    b = predict_latency([24, 12], [2048, 3072], stack="cuda-graphs", hardware="a100-80gb")
    c = predict_latency([24, 12], [2048, 3072], stack="cuda-graphs", hardware="a100-80gb", seed=1)
    assert np.array_equal(a.latency_low_s, b.latency_low_s) and np.array_equal(a.latency_high_s, b.latency_high_s)
    assert not np.array_equal(a.latency_low_s, c.latency_low_s)


def test_a_calibration_fitted_to_timings_covers_held_out_timings_at_its_level():
    """Five folds of the shipped CPU sweep: each fifth held out, the rest calibrated, the fifth predicted."""
    sweep = load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv")
    cpu = get_hardware("cpu")
    order = np.random.default_rng(1).permutation(len(sweep))
    inside = 0
    for fold in range(5):
        held = np.sort(order[fold::5])
        train = sweep.drop(index=held).reset_index(drop=True)
        train.attrs = dict(sweep.attrs)
        test = sweep.iloc[held].reset_index(drop=True)
        calibration = calibrate(train, "cpu", bootstrap=40).calibration
        assert calibration.uncertainty["basis"] == "measured"
        low, high = latency_interval(draw_latency(generation_work_for(test, cpu),
                                                  coefficient_draws(calibration, cpu))["latency_s"])
        measured = test["latency_s"].to_numpy()
        inside += int(np.sum((measured >= low) & (measured <= high)))
    # A 95% band over 25 held-out timings: fewer than 22 inside has probability 3% under the band's claim.
    assert inside >= 22


def test_the_graph_prior_spans_zero_to_what_the_7b_timing_allows():
    # Llama-2-7B streams every parameter but its input embedding, N - V d with the paper's formula:
    # 32 (4 4096^2 + 3 4096 11008 + 2 4096) + 4096 + 2 32000 4096 - 32000 4096 = 6,607,343,616, 13.21 GB in bf16.
    # At gpt-fast's empirical 1700 GB/s that takes 7.773 ms of the mean 9.522 ms per token (104.9 and 105.13
    # tokens/s), leaving 1.749 ms for 32 layers: 54.7 us. The model adds the small prompt and cache terms.
    assert graph_layer_cost_bound() == pytest.approx(54.7e-6, rel=0.05)
    shipped = load_calibration("a100-80gb-cuda-graphs")
    prior = shipped.uncertainty["prior"]
    assert prior["coefficient"] == "c_layer_device_s" and prior["low"] == 0.0
    assert prior["high"] == pytest.approx(graph_layer_cost_bound(), rel=1e-9)
    # The bandwidth efficiency the 7B timing needs rises with the per-layer cost it leaves less time for.
    assert np.all(np.diff(prior["follow"]["eta_bw"]) > 0)


def test_which_1b_shape_is_faster_under_graph_capture_rests_on_the_prior(capsys):
    out = _json(capsys, "latency", "--stack", "cuda-graphs", "--shape", "24x2048", "--shape", "12x3072")
    first, second = out["shapes"]
    assert first["probability_fastest"] + second["probability_fastest"] == pytest.approx(1.0)
    assert 0.0 < first["probability_fastest"] < 1.0
    # With no per-layer cost, 24x2048 streams 2.9 GB a token against 3.3 GB for 12x3072 and is faster; at the
    # prior's top (54 us) its 12 extra layers add 0.65 ms a step, more than the 0.4 GB take at ~1.5 TB/s (0.3 ms).
    calibration = load_calibration("a100-80gb-cuda-graphs")
    low, high = prior_ends(calibration, get_hardware("a100-40gb"))
    at_low = predict_latency([24, 12], [2048, 3072], hardware="a100-40gb", calibration=low, band=False).latency_s
    at_high = predict_latency([24, 12], [2048, 3072], hardware="a100-40gb", calibration=high, band=False).latency_s
    assert at_low[0] < at_low[1] and at_high[0] > at_high[1]
    sentence = out["prior_dependence"]
    assert "24x2048" in sentence and "12x3072" in sentence and "per-layer" in sentence
    assert f"{first['probability_fastest']:.2f}" in sentence


def test_a_users_measured_graph_calibration_replaces_the_prior(tmp_path, monkeypatch):
    monkeypatch.setenv("MORPH_DATA_HOME", str(tmp_path))
    measured = load_calibration("a100-80gb-cuda-graphs").replace(
        name="h100-sxm-cuda-graphs", hardware="h100-sxm", c_layer_device_s=1e-5,
        uncertainty={"basis": "measured", "log_sigma": 0.02, "reasoning": "timed here"})
    measured.save()
    p = predict_latency([24], [2048], hardware="h100-sxm", stack="cuda-graphs")
    assert p.latency_basis == "measured"
    assert Workload(hardware="h100-sxm", stack="cuda-graphs").resolved_calibration().c_layer_device_s == 1e-5


# --- the decision's probabilities ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fit_b():
    return preset_fit("bian2025", bootstrap=200)


def _checked(selection, assessment):
    """The invariants every assessment must hold, checked against the columns."""
    best = assessment.columns["probability_best"]
    within = assessment.columns["probability_within_budget"]
    shown = np.flatnonzero(np.isfinite(best))
    # Being best in a draw needs meeting the budget in that draw.
    assert np.all(best[shown] <= within[shown] + 1e-12)
    plausible = assessment.columns["plausibly_best"][shown].astype(bool)
    assert np.array_equal(plausible, best[shown] >= PLAUSIBLE)
    # One best per draw in which some shape meets the budget, none otherwise.
    assert best[shown].sum() == pytest.approx(assessment.probability_any_within_budget, abs=1e-12)
    assert assessment.probability_any_within_budget >= np.nanmax(within) - 1e-12
    return best


@pytest.mark.parametrize("case", ["candidates-2s", "range-3s"])
def test_probabilities_of_being_best_hold_together(case, fit_b):
    if case == "candidates-2s":
        candidates, budget = candidates_from_table(data_dir() / "morph_1b_candidates.csv"), 2.0
    else:
        candidates, budget = candidates_from_range(1.2e9, 1.6e9, 2.9e10), 3.0
    selection = select(evaluate_candidates(candidates, fit_b), budget, 5)
    _checked(selection, assess(selection, fit_range("bian2025")))


def test_restricting_the_draws_to_the_pool_loses_no_probability(fit_b, monkeypatch):
    """Only shapes that meet the budget under the fastest corner get draws; drawing every shape changes nothing."""
    candidates = candidates_from_range(1.2e9, 1.6e9, 2.9e10)
    selection = select(evaluate_candidates(candidates, fit_b), 2.0, 5)
    pooled = assess(selection, fit_range("bian2025"))
    import morph.draws as draws

    every = np.flatnonzero(selection.evaluation.feasible)
    monkeypatch.setattr(draws, "_possible", lambda selection, drawn: every)
    monkeypatch.setattr(draws, "FIRST_POOL", every.size)  # no pruning either: every shape drawn
    everything = assess(selection, fit_range("bian2025"))
    assert pooled.draws["pool"] < everything.draws["pool"] and everything.draws["pool"] >= every.size
    a, b = pooled.columns["probability_best"], everything.columns["probability_best"]
    assert np.array_equal(np.nan_to_num(a), np.nan_to_num(b))
    assert pooled.probability_any_within_budget == everything.probability_any_within_budget
    _checked(selection, pooled)


def test_json_names_the_threshold_the_basis_and_the_contenders(capsys):
    out = _json(capsys, "frontier", "--candidates", str(data_dir() / "morph_1b_candidates.csv"),
                "--latency-budget", "2")
    assert out["plausibly_best_threshold"] == PLAUSIBLE
    assert out["latency_basis"] == "published spread"
    assert out["draws"]["n"] == 200 and out["draws"]["seed"] == 0
    total = sum(row["probability_best"] for row in out["contenders"])
    assert total == pytest.approx(out["probability_any_within_budget"], abs=1e-9)
    for row in out["selected"]:
        assert row["probability_best"] <= row["probability_within_budget"]
        assert row["plausibly_best"] == (row["probability_best"] >= PLAUSIBLE)
    assert "tied_with_best" not in out["selected"][0]


def test_a_budget_on_another_metric_is_not_called_seconds(capsys):
    out = _json(capsys, "frontier", "--candidates", str(data_dir() / "morph_1b_candidates.csv"),
                "--budget-metric", "tokens_per_s", "--budget", "100")
    assert out["latency_budget_s"] is None
    assert out["budget"] == 100 and out["budget_metric"] == "tokens_per_s" and out["budget_unit"] == "tokens/s"


# --- guards -------------------------------------------------------------------------------------


def test_a_law_that_predicts_a_non_positive_loss_makes_the_candidate_infeasible():
    # -1 + 400 / N^0.3 + 400 / D^0.3 at D = 2e11 (data term 0.166): +0.76 at N = 1e8, -0.43 at N = 1e10.
    law = ChinchillaLaw(A=400.0, B=400.0, E=-1.0, alpha=0.3, beta=0.3)
    candidates = candidates_from_range(1e8, 1e10, 2e11)
    evaluation = evaluate_candidates(candidates, law)
    assert np.any(evaluation.loss <= 0) and np.any(evaluation.loss > 0)
    selection = select(evaluation, 1e6, 3)
    assert np.all(evaluation.loss[selection.selected_index] > 0)
    assert not np.any(evaluation.loss[selection.frontier_index] <= 0)
    reasons = selection.dropped.set_index("label")["reason"]
    negative = evaluation.candidates.labels(np.flatnonzero(evaluation.loss <= 0)[0])
    assert "non-positive loss" in reasons[str(negative)]
    assessment = assess(selection)
    assert any("non-positive loss" in warning for warning in assessment.warnings)


def test_no_calibration_without_draws_when_a_table_mixes_stacks():
    frame = load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv")
    mixed = pd.concat([frame.assign(stack="hf-eager"), frame.assign(stack="cuda-graphs")], ignore_index=True)
    with pytest.raises(LatencyError, match="--stack"):
        calibrate(mixed, "cpu", bootstrap=0)
    one = calibrate(mixed, "cpu", stack="cuda-graphs", bootstrap=0).calibration
    assert one.stack == "cuda-graphs" and one.n_measurements == len(frame)


def test_a_transfer_is_wider_than_what_it_transfers():
    calibration = load_calibration("a100-40gb-hf-generate")
    own = uncertainty_of(calibration, get_hardware("a100-40gb"))
    moved = uncertainty_of(calibration, get_hardware("h100-sxm"))
    assert moved.basis == "transfer" and moved.log_sigma > own.log_sigma


def test_every_command_names_the_basis_of_its_latency(capsys):
    spec = _json(capsys, "speculative", "--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.75",
                 "--stack", "cuda-graphs", "--hardware", "a100-80gb")
    assert spec["latency_basis"] == "prior"  # the graph stack's own device: its per-layer cost is a prior
    ranking = _json(capsys, "speculative", "--target", "32x4096", "--params-max", "3e8", "--acceptance", "0.7")
    assert ranking["latency_basis"] == "published spread"
    cpu = _json(capsys, "latency", "--shape", "6x512", "--hardware", "cpu", "--dtype", "fp32")
    assert cpu["latency_basis"] == "measured"


def test_the_priors_draws_stay_within_it_and_centre_on_its_middle():
    calibration = load_calibration("a100-80gb-cuda-graphs")
    prior = calibration.uncertainty["prior"]
    drawn = coefficient_draws(calibration, get_hardware("a100-80gb"))
    values = np.ravel(drawn.c_layer_device_s)
    assert np.all(values >= prior["low"]) and np.all(values <= prior["high"])
    # Stratified: one draw in each 200th of the range, so the mean is the midpoint to rounding.
    assert values.mean() == pytest.approx((prior["low"] + prior["high"]) / 2, rel=1e-9)


def test_the_prior_sentence_gives_both_ends_in_microseconds():
    from morph.latency.uncertainty import prior_phrase

    calibration = load_calibration("a100-80gb-cuda-graphs")
    recorded = calibration.uncertainty
    shifted = calibration.replace(uncertainty={**recorded, "prior": {**recorded["prior"], "low": 1e-5, "high": 5e-5}})
    assert "a prior of 10-50 us per layer" in prior_phrase(shifted, get_hardware("a100-80gb"))


def test_a_draw_can_be_read_back_as_a_calibration_and_two_draws_make_a_band():
    calibration = load_calibration("a100-80gb-cuda-graphs")
    drawn = coefficient_draws(calibration, get_hardware("a100-80gb"), n=2)
    assert len(drawn) == 2  # the fewest that make a band
    for i in range(2):
        at = drawn.at(i)
        for name in ("c_fixed_s", "c_layer_s", "c_layer_device_s", "eta_bw", "eta_flops"):
            assert getattr(at, name) == float(np.ravel(getattr(drawn, name))[i])
    with pytest.raises(LatencyError, match="at least 2 draws"):
        coefficient_draws(calibration, get_hardware("a100-80gb"), n=1)


def test_the_prior_sentence_states_the_priors_range(capsys):
    out = _json(capsys, "latency", "--stack", "cuda-graphs", "--shape", "24x2048", "--shape", "12x3072")
    high = load_calibration("a100-80gb-cuda-graphs").uncertainty["prior"]["high"]
    assert f"a prior of 0-{high * 1e6:.0f} us per layer" in out["prior_dependence"]


def test_a_calibration_without_a_recorded_distribution_still_says_why(tmp_path):
    old = load_calibration("cpu-torch-eager").replace(uncertainty={}, error_basis="")
    spread = uncertainty_of(old, get_hardware("cpu"))
    # A measured calibration of 25 timings and 4 coefficients: its leave-one-out worst error as the half-width.
    assert spread.basis == "measured" and spread.reasoning
    assert spread.relative == pytest.approx(old.loo_max_error, rel=1e-12)


def test_the_transfer_warning_appears_only_for_a_transfer(fit_b):
    candidates = candidates_from_table(data_dir() / "morph_1b_candidates.csv")
    for hardware, transferred in (("a100-40gb", False), ("h100-sxm", True)):
        selection = select(evaluate_candidates(candidates, fit_b, hardware=hardware), 2.5, 3)
        warnings = assess(selection, fit_range("bian2025")).warnings
        assert any("transferred to" in w for w in warnings) == transferred, hardware


def test_fit_range_of_an_unknown_law_is_unknown():
    assert fit_range("no-such-law") is None


@pytest.mark.parametrize(("metric", "budget"), [("tokens_per_s", 120.0), ("ms_per_token", 8.0), ("ttft_s", 0.04)])
def test_no_probability_is_lost_on_other_budget_metrics(fit_b, monkeypatch, metric, budget):
    candidates = candidates_from_range(1e8, 5e9, 1e11)
    selection = select(evaluate_candidates(candidates, fit_b), budget, 5, budget_metric=metric)
    pooled = assess(selection, fit_range("bian2025"))
    import morph.draws as draws

    every = np.flatnonzero(selection.evaluation.feasible)
    monkeypatch.setattr(draws, "_possible", lambda selection, drawn: every)
    monkeypatch.setattr(draws, "FIRST_POOL", every.size)
    everything = assess(selection, fit_range("bian2025"))
    assert pooled.draws["pool"] < everything.draws["pool"]
    assert np.array_equal(np.nan_to_num(pooled.columns["probability_best"]),
                          np.nan_to_num(everything.columns["probability_best"]))


def test_pruning_by_cells_and_pairs_keeps_every_draws_best(fit_b, monkeypatch):
    """8,268 shapes at 2 s: the pruned draws find the same best in every draw as drawing every shape."""
    candidates = candidates_from_range(1e8, 5e9, 1e11)
    selection = select(evaluate_candidates(candidates, fit_b), 2.0, 5)
    import morph.draws as draws

    found = []
    beaters = draws._beaters
    monkeypatch.setattr(draws, "_beaters", lambda *args: found.append(beaters(*args)) or found[-1])
    pruned = assess(selection, fit_range("bian2025"))
    assert found and found[0].size > 0  # the pairs found bests beyond the first pool
    monkeypatch.setattr(draws, "FIRST_POOL", len(candidates))  # no pruning: every shape that may meet it
    full = assess(selection, fit_range("bian2025"))
    assert pruned.draws["pool"] < full.draws["pool"]
    assert np.array_equal(np.nan_to_num(pruned.columns["probability_best"]),
                          np.nan_to_num(full.columns["probability_best"]))


def test_a_time_to_first_token_budget_is_met_in_the_draws_whose_prefill_fits(fit_b):
    # Under the published-spread eager band every draw scales each prediction by its factor, so a shape meets a
    # 40 ms TTFT budget in draw d exactly when prefill x factor_d <= 0.04 s (by hand from the draws' factors).
    selection = select(evaluate_candidates(candidates_from_range(1e8, 5e9, 1e11), fit_b), 0.04, 5,
                       budget_metric="ttft_s")
    assessed = assess(selection, fit_range("bian2025"))
    drawn = coefficient_draws(selection.evaluation.workload.resolved_calibration(), selection.evaluation.workload.device)
    assert drawn.shared_only
    factor = np.exp(np.ravel(drawn.log_factor))
    for i in selection.selected_index:
        expected = np.mean(selection.evaluation.prefill_s[i] * factor <= 0.04)
        assert assessed.columns["probability_within_budget"][i] == pytest.approx(expected, abs=1e-12)


def test_a_band_over_draws_with_holes_is_numpys_nanpercentile():
    import morph.draws as draws

    values = np.random.default_rng(3).normal(size=(200, 5))
    values[::7, 2] = np.nan
    low, high = draws._nan_interval(values, 0.95)
    expected = np.nanpercentile(values, [2.5, 97.5], axis=0)
    # (1 - 0.95) / 2 is 0.024999999999999998 in floating point: the interpolation moves in the 15th digit.
    np.testing.assert_allclose(low, expected[0], rtol=1e-12)
    np.testing.assert_allclose(high, expected[1], rtol=1e-12)

