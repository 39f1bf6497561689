"""Speculative decoding: the closed form against hand sums and a simulation, timing, draft selection, the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from morph import Hardware, predict_latency
from morph.cli import main
from morph.frontier import Candidates
from morph.drafts import select_drafts
from morph.latency import Calibration, Workload, forward_pass_s
from morph.shapes import VOCAB_SIZE, enumerate_shapes, parameter_count
from morph.speculative import (
    PUBLISHED_ACCEPTANCE,
    SpeculativeError,
    acceptance_from_loss,
    acceptance_rate,
    best_lookahead,
    expected_tokens,
    simulate_speculative,
    speculative_output_distribution,
    speculative_speedup,
    speculative_timing,
)

# Exact-arithmetic identities evaluated in float64: a few ulps of rounding at most.
EXACT = 1e-12

# --- the closed form --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "k", "by_hand"),
    [
        (0.5, 3, 1 + 0.5 + 0.25 + 0.125),
        (0.8, 2, 1 + 0.8 + 0.64),
        (0.75, 7, sum(0.75**i for i in range(8))),
        (0.0, 5, 1.0),  # the first drafted token is always rejected: only the correction token
        (1.0, 5, 6.0),  # every drafted token kept, plus the bonus token
        (0.9, 0, 1.0),  # no drafting: one token per target pass
        (1.0, 0, 1.0),
        (0.0, 0, 1.0),
    ],
)
def test_expected_tokens_matches_the_sum_by_hand(a, k, by_hand):
    assert float(expected_tokens(a, k)) == pytest.approx(by_hand, rel=EXACT)


def test_expected_tokens_near_one_keeps_its_precision():
    # 1 + a + ... + a^10 with a = 1 - e is 11 - 55 e to first order; the naive
    # (1 - a^11) / (1 - a) loses about 4 of its 16 digits here.
    e = 1e-12
    assert float(expected_tokens(1 - e, 10)) == pytest.approx(11 - 55 * e, rel=1e-12)


def test_expected_tokens_rises_with_acceptance_and_lookahead():
    a = np.linspace(0, 1, 101)[:, None]
    k = np.arange(0, 17)[None, :]
    tokens = expected_tokens(a, k)
    assert np.all(np.isfinite(tokens))
    # Never less with more drafting or a better draft; strictly more where the gain a^k is
    # representable next to E (a >= 0.2 and k <= 16: a^k >= 6.5e-12, E <= 17).
    assert np.all(np.diff(tokens, axis=1) >= 0) and np.all(np.diff(tokens, axis=0) >= 0)
    assert np.all(np.diff(tokens[a[:, 0] >= 0.2, :], axis=1) > 0)
    assert np.all(np.diff(tokens[:, 1:], axis=0) > 0)  # a better draft helps whenever k > 0
    assert np.all((tokens >= 1) & (tokens <= k + 1))


@pytest.mark.parametrize(("a", "k"), [(-0.1, 2), (1.1, 2), (np.nan, 2), ("high", 2), (0.5, -1), (0.5, 1.5), (0.5, "2")])
def test_bad_acceptance_or_lookahead_is_refused(a, k):
    with pytest.raises(SpeculativeError):
        expected_tokens(a, k)


def test_speedup_by_hand():
    # a = 0.75, k = 3: E = 2.734375 tokens per step of 3 x 1 ms + 11 ms, against 10 ms per token alone.
    assert float(speculative_speedup(0.75, 3, 1e-3, 11e-3, 10e-3)) == pytest.approx(2.734375 * 10 / 14, rel=EXACT)
    assert float(speculative_speedup(0.75, 0, 1e-3, 10e-3, 10e-3)) == 1.0


def test_speedup_falls_as_the_draft_gets_slower():
    draft = np.linspace(0.1e-3, 30e-3, 300)
    speedup = speculative_speedup(0.8, 4, draft, 11e-3, 10e-3)
    assert np.all(np.diff(speedup) < 0)


# --- Monte Carlo ------------------------------------------------------------------------------

GRID_A = np.array([0.0, 0.1, 0.5, 0.75, 0.9, 0.99, 1.0])[:, None]
GRID_K = np.array([0, 1, 2, 4, 8, 16])[None, :]


def test_simulation_agrees_with_the_closed_form_within_its_sampling_error():
    simulated = simulate_speculative(GRID_A, GRID_K, steps=20_000, seed=0)
    exact = expected_tokens(GRID_A, GRID_K)
    # Five standard errors: a false alarm has probability ~6e-7 per cell. Where
    # the outcome is certain (a = 0 or 1, k = 0) the simulation must be exact.
    assert np.all(np.abs(simulated.mean_tokens - exact) <= 5 * simulated.standard_error + 1e-12)
    assert np.all(simulated.standard_error[(GRID_A == 0) | (GRID_A == 1) | (GRID_K == 0)] == 0)


def test_the_simulation_would_catch_a_wrong_formula():
    simulated = simulate_speculative(GRID_A, GRID_K, steps=20_000, seed=0)
    without_bonus = expected_tokens(GRID_A, GRID_K) - GRID_A ** GRID_K  # forgets the bonus token
    uncertain = simulated.standard_error > 0
    assert np.any(np.abs(simulated.mean_tokens - without_bonus)[uncertain] > 5 * simulated.standard_error[uncertain])


def test_simulation_is_reproducible():
    first = simulate_speculative(0.6, 5, steps=1000, seed=3)
    again = simulate_speculative(0.6, 5, steps=1000, seed=3)
    assert first.mean_tokens == again.mean_tokens


# --- exactness and acceptance -------------------------------------------------------------------


def test_speculative_sampling_emits_the_target_distribution():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(50), size=20)
    q = rng.dirichlet(np.ones(50) * 0.3, size=20)
    # Sums of 50 float64 terms: rounding stays far below 1e-12.
    np.testing.assert_allclose(speculative_output_distribution(p, q), p, atol=1e-12)
    np.testing.assert_allclose(speculative_output_distribution(p, p), p, atol=1e-12)


def test_acceptance_rate_is_one_minus_total_variation():
    assert float(acceptance_rate([0.5, 0.5], [0.9, 0.1])) == pytest.approx(0.6, rel=EXACT)
    assert float(acceptance_rate([0.2, 0.8], [0.2, 0.8])) == pytest.approx(1.0, rel=EXACT)
    with pytest.raises(SpeculativeError):
        acceptance_rate([0.5, 0.6], [0.5, 0.5])


def test_acceptance_from_loss_is_the_pinsker_bound():
    # gap 0.5 nats: 1 - sqrt(0.25) = 0.5; no gap (or a better draft): 1; gap 2: the bound reaches 0.
    rates = acceptance_from_loss([2.5, 2.0, 1.9, 4.0], 2.0)
    np.testing.assert_allclose(rates, [0.5, 1.0, 1.0, 0.0], rtol=EXACT)
    assert float(acceptance_from_loss(2.5, 2.0, tightness=0.5)) == pytest.approx(0.75, rel=EXACT)
    for bad in (0, -1, float("nan")):
        with pytest.raises(SpeculativeError):
            acceptance_from_loss(2.5, 2.0, tightness=bad)


def test_published_rates_are_cited():
    for entry in PUBLISHED_ACCEPTANCE.values():
        assert 0 < entry["acceptance"] < 1 and "Leviathan" in entry["source"] and "Table" in entry["source"]


# --- timing -----------------------------------------------------------------------------------

# Pure roofline: no host time, datasheet speeds, times add.
ROOFLINE = Calibration(name="roofline", hardware="test", c_fixed_s=0.0, c_layer_s=0.0, eta_bw=1.0, eta_flops=1.0,
                       overlap_p=1.0)
TEST_DEVICE = Hardware(name="test", memory_bandwidth_gb_s=1000.0, bf16_tflops=100.0, fp32_tflops=50.0, memory_gb=80.0)


def _roofline_by_hand(L: int, d: int, tokens: int, context: int) -> float:
    streamed = float(parameter_count(L, d)) - VOCAB_SIZE * d  # all but the input embedding
    attended = sum(context + j for j in range(1, tokens + 1))
    flops = 2 * streamed * tokens + 4 * L * d * attended
    traffic = 2 * (streamed + (context + tokens) * 2 * L * d)  # bf16 weights once, cache read and written
    return max(flops / 100e12, traffic / 1000e9)


@pytest.mark.parametrize(("tokens", "context"), [(1, 0), (5, 300), (64, 1000), (4096, 0)])
def test_forward_pass_roofline_by_hand(tokens, context):
    # From weight-bound (few tokens) to compute-bound (4096 tokens); float64 throughout.
    got = float(forward_pass_s(6, 1024, tokens, context=context, hardware=TEST_DEVICE, calibration=ROOFLINE))
    assert got == pytest.approx(_roofline_by_hand(6, 1024, tokens, context), rel=1e-12)


def test_forward_pass_pays_host_time_once_and_streams_weights_once():
    host = ROOFLINE.replace(c_fixed_s=2e-3, c_layer_s=0.5e-3)
    for tokens in (1, 9):
        with_host = float(forward_pass_s(6, 1024, tokens, hardware=TEST_DEVICE, calibration=host))
        device = float(forward_pass_s(6, 1024, tokens, hardware=TEST_DEVICE, calibration=ROOFLINE))
        assert with_host - device == pytest.approx(2e-3 + 6 * 0.5e-3, rel=1e-9)
    # At batch 1 the pass is weight-bound: 8 more tokens add only their cache traffic, not 8x the weights.
    one, nine = (float(forward_pass_s(6, 1024, t, hardware=TEST_DEVICE, calibration=ROOFLINE)) for t in (1, 9))
    assert nine - one == pytest.approx(8 * 2 * 2 * 6 * 1024 / 1000e9, rel=1e-9)


@pytest.mark.parametrize("hardware", ["a100-40gb", "h100-sxm", "cpu"])
def test_one_token_pass_is_the_latency_models_decode_step(hardware):
    dtype = "fp32" if hardware == "cpu" else "bf16"
    layers, width = np.array([2, 12, 24, 48]), np.array([4096, 3072, 2048, 512])
    ours = forward_pass_s(layers, width, 1, context=200, hardware=hardware, dtype=dtype)
    theirs = predict_latency(layers, width, hardware=hardware, input_tokens=200, output_tokens=1, dtype=dtype)
    # predict_latency computes in float32 (relative rounding ~1e-7); these are float64.
    np.testing.assert_allclose(ours, theirs.ms_per_token / 1e3, rtol=1e-5)


def test_one_token_pass_uses_the_stacks_calibration():
    # A workload's stack picks its calibration for a pass as it does for a generate call.
    graphs = Workload(stack="cuda-graphs")
    ours = forward_pass_s([4, 32], [2048, 4096], 1, context=300, workload=graphs)
    theirs = predict_latency([4, 32], [2048, 4096], input_tokens=300, output_tokens=1, stack="cuda-graphs")
    np.testing.assert_allclose(ours, theirs.ms_per_token / 1e3, rtol=1e-5)
    eager = forward_pass_s([4, 32], [2048, 4096], 1, context=300)
    assert np.all(ours < eager)  # captured graphs launch the layers with less host time


def test_speculative_timing_k0_is_the_target_alone_and_a_slow_draft_never_pays():
    timing = speculative_timing("32x4096", [4, 64], [2048, 4096], 0.9, np.arange(0, 9)[:, None])
    np.testing.assert_allclose(timing.speedup[0], 1.0, rtol=EXACT)
    np.testing.assert_allclose(timing.tokens_per_s[0], timing.target_tokens_per_s, rtol=EXACT)
    assert timing.draft_step_s[0, 1] > timing.target_step_s  # 64 layers draft for a 32 layer target
    assert np.all(timing.speedup[1:, 1] < 1)
    assert np.all(timing.speedup[1:4, 0] > 1)


def test_timing_and_selection_take_a_workload_and_its_overrides_alike():
    # One Workload or the same settings as overrides: the same arithmetic, so identical floats.
    h100 = Workload(hardware="h100-sxm", batch=4, dtype="fp16")
    by_value = speculative_timing("32x4096", [4, 12], [2048, 1024], 0.8, 4, workload=h100)
    by_override = speculative_timing("32x4096", [4, 12], [2048, 1024], 0.8, 4, hardware="h100-sxm", batch=4,
                                     dtype="fp16")
    np.testing.assert_array_equal(by_value.speedup, by_override.speedup)
    # An override wins over the workload's own setting.
    overridden = speculative_timing("32x4096", [4, 12], [2048, 1024], 0.8, 4, workload=h100, batch=1)
    np.testing.assert_array_equal(overridden.step_time_s, speculative_timing(
        "32x4096", [4, 12], [2048, 1024], 0.8, 4, workload=h100.replace(batch=1)).step_time_s)
    # A pass under the workload is the pass under its settings given one by one.
    assert float(forward_pass_s(6, 1024, 5, workload=h100)) == float(
        forward_pass_s(6, 1024, 5, hardware="h100-sxm", batch=4, dtype="fp16"))
    candidates = _random_drafts(500, seed=5)
    selection = select_drafts("32x4096", candidates, acceptance=0.75, workload=h100)
    assert selection.settings["hardware"] == "h100-sxm" and selection.settings["batch"] == 4
    np.testing.assert_array_equal(selection.draft_step_s, forward_pass_s(
        candidates.n_layers, candidates.d_model, 1, hardware="h100-sxm", batch=4, dtype="fp16"))
    # A step is timed at a context of cached tokens; a token count of the workload is refused, not ignored.
    with pytest.raises(SpeculativeError, match="context"):
        speculative_timing("32x4096", 4, 2048, 0.8, 4, input_tokens=512)


def test_best_lookahead_is_the_argmax_of_the_full_table():
    rng = np.random.default_rng(7)
    a = rng.uniform(0, 1, 500)
    draft = rng.uniform(0.1e-3, 25e-3, 500)
    verify = 20e-3 + 0.2e-3 * np.arange(17)
    best = best_lookahead(a, draft, verify)
    k = np.arange(17)[:, None]
    table = speculative_speedup(a, k, draft, verify[:, None], verify[0])
    np.testing.assert_array_equal(best.lookahead, np.argmax(table, axis=0))
    np.testing.assert_allclose(best.speedup, table.max(axis=0), rtol=1e-12)


def test_best_lookahead_edge_cases():
    verify = np.full(9, 10e-3)
    # a draft slower than the target: k = 0, speed-up exactly 1; a = 0: nothing to gain either.
    best = best_lookahead([0.99, 0.0, 1.0], [11e-3, 1e-3, 1e-3], verify)
    assert best.lookahead.tolist() == [0, 0, 8] and best.speedup[:2].tolist() == [1.0, 1.0]
    assert best.speedup[2] == pytest.approx(9 * 10 / (8 + 10), rel=EXACT)  # a = 1: all k + 1 tokens every step


# --- draft selection --------------------------------------------------------------------------


def _random_drafts(n: int, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    return Candidates.from_arrays(rng.integers(1, 49, n), 64 * rng.integers(2, 65, n), 2e10)


def test_select_drafts_ranks_100k_candidates_with_their_best_lookahead():
    candidates = _random_drafts(100_000)
    selection = select_drafts("32x4096", candidates, acceptance=0.75, top_n=10)
    assert selection.best_lookahead.shape == (100_000,)
    assert np.all((selection.best_lookahead >= 0) & (selection.best_lookahead <= 16))
    assert np.all(selection.best_speedup >= 1.0)
    # The top 10 are the 10 largest speed-ups, in order.
    top = np.sort(selection.best_speedup)[::-1][:10]
    np.testing.assert_array_equal(selection.selected["best_speedup"].to_numpy(), top)
    # A sample against the per-draft drafts x k table.
    sample = np.random.default_rng(1).choice(100_000, 100, replace=False)
    timing = speculative_timing("32x4096", candidates.n_layers[sample], candidates.d_model[sample], 0.75,
                                np.arange(17)[:, None])
    np.testing.assert_allclose(selection.best_speedup[sample], timing.speedup.max(axis=0), rtol=1e-12)


def test_speedup_never_rises_with_draft_latency_at_equal_acceptance():
    selection = select_drafts("24x2048", _random_drafts(5000, seed=2), acceptance=0.7)
    order = np.argsort(selection.draft_step_s, kind="stable")
    assert np.all(np.diff(selection.best_speedup[order]) <= 1e-12)


def test_a_deep_narrow_draft_of_equal_size_loses():
    grid = enumerate_shapes(190e6, 210e6, n_heads=None, head_dim=64)
    # The shallowest shape of about 200M parameters against one as deep as common small drafts.
    shallow, deep = int(np.argmin(grid.n_layers)), int(np.argmin(np.abs(grid.n_layers - 24)))
    assert grid.n_layers[deep] - grid.n_layers[shallow] >= 16
    candidates = Candidates.from_arrays(grid.n_layers[[shallow, deep]], grid.d_model[[shallow, deep]], 2e10)
    selection = select_drafts("32x4096", candidates, acceptance=0.75, top_n=1)
    assert selection.best_speedup[0] > selection.best_speedup[1]
    assert selection.selected["n_layers"].iloc[0] == grid.n_layers[shallow]
    # At batch 1 a step costs about c_fixed + c_layer * n_layers: a 24-layer draft costs ~3/4 of a
    # 32-layer target's step, too much for 1.75 tokens per step at k = 1 (and worse beyond).
    assert "does not pay" in selection.dropped["reason"].iloc[0]


def test_budgets_and_reasons():
    candidates = Candidates.from_arrays([2, 4, 8, 48], [4096, 2048, 1024, 256], 2e10)
    N = candidates.N
    by_params = select_drafts("32x4096", candidates, acceptance=0.8, param_budget=float(N[2]), top_n=1)
    reasons = dict(zip(by_params.dropped["label"], by_params.dropped["reason"]))
    assert "parameter budget" in reasons["2x4096"] and "parameter budget" in reasons["4x2048"]
    assert "does not pay" in reasons["48x256"]  # 48 layers draft, 32 layers target
    # bf16 weights, and a cache of 2 (keys, values) x layers x width x 384 tokens (128 in + 256 out) x 2 bytes each.
    target_gb = (2 * float(parameter_count(32, 4096)) + 2 * 32 * 4096 * 384 * 2) / 1e9
    draft_gb = (2 * float(N[1]) + 2 * 4 * 2048 * 384 * 2) / 1e9  # the 4x2048 draft
    by_memory = select_drafts("32x4096", candidates, acceptance=0.8, memory_budget_gb=target_gb + draft_gb)
    assert by_memory.eligible.tolist() == [False, True, True, True]
    assert "memory budget" in dict(zip(by_memory.dropped["label"], by_memory.dropped["reason"]))["2x4096"]
    # The caches count: a budget for the weights alone leaves the 4x2048 draft out.
    by_weights = select_drafts("32x4096", candidates, acceptance=0.8,
                               memory_budget_gb=2 * (float(parameter_count(32, 4096)) + N[1]) / 1e9)
    assert by_weights.eligible.tolist() == [False, False, True, True]
    with pytest.raises(SpeculativeError, match="no draft fits"):
        select_drafts("32x4096", candidates, acceptance=0.8, param_budget=1e6)
    with pytest.raises(SpeculativeError, match="training tokens"):
        select_drafts("32x4096", candidates)


def test_frontier_of_draft_loss_and_latency():
    selection = select_drafts("32x4096", _random_drafts(3000, seed=4), target_tokens=1e12)
    t, y = selection.draft_step_s, selection.loss
    front = selection.frontier_index
    assert np.all(np.diff(t[front]) >= 0) and np.all(np.diff(y[front]) < 0)
    # Nothing dominates a frontier draft.
    for i in front[:: max(1, front.size // 20)]:
        assert not np.any((t <= t[i]) & (y <= y[i]) & ((t < t[i]) | (y < y[i])))
    # A draft said to be beaten by another on both counts really is.
    dropped = selection.dropped
    beaten = dropped[dropped["reason"].str.contains("faster with lower loss")].head(50)
    assert len(beaten) > 0
    for _, row in beaten.iterrows():
        winner = row["reason"].rsplit("; ", 1)[1].split(" ")[0]
        j = int(np.flatnonzero(selection.candidates.label == winner)[0])
        i = int(np.flatnonzero(selection.candidates.label == row["label"])[0])
        assert t[j] <= t[i] and y[j] <= y[i]
    # Acceptance from loss: better drafts are accepted more often.
    order = np.argsort(y)
    assert np.all(np.diff(selection.acceptance[order]) <= 0)


# --- the command line -------------------------------------------------------------------------

FIELDS = {"expected_tokens", "step_time_s", "tokens_per_s", "speedup", "best_lookahead", "best_speedup"}


def test_cli_json_fields_and_numbers(capsys):
    argv = ["speculative", "--target", "32x4096", "--draft", "4x2048", "--draft", "48x4096", "--acceptance", "0.75",
            "--acceptance", "0.9", "--lookahead", "3", "--hardware", "a100-40gb", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    first, slow = payload["drafts"]
    assert FIELDS <= set(first)
    assert first["expected_tokens"] == pytest.approx(2.734375, rel=EXACT)
    draft = float(forward_pass_s(4, 2048))
    verify = float(forward_pass_s(32, 4096, 4))
    target = float(forward_pass_s(32, 4096, 1))
    assert first["step_time_s"] == pytest.approx(3 * draft + verify, rel=EXACT)
    assert first["speedup"] == pytest.approx(2.734375 * target / (3 * draft + verify), rel=EXACT)
    assert first["tokens_per_s"] == pytest.approx(2.734375 / (3 * draft + verify), rel=EXACT)
    # The best lookahead's speed-up comes from a separate vectorised sum: equal values may differ in the last bit.
    assert first["best_speedup"] >= first["speedup"] * (1 - 1e-12) and first["speedup"] > 1
    # A draft deeper than its target slows it down at any k > 0: the best is not to draft.
    assert slow["speedup"] < 1 and slow["best_lookahead"] == 0 and slow["best_speedup"] == 1.0


def test_cli_workload_options_are_the_workloads(capsys):
    argv = ["speculative", "--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.75", "--lookahead", "3",
            "--hardware", "h100-sxm", "--batch", "4", "--dtype", "fp16", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["hardware"], payload["batch"], payload["dtype"]) == ("h100-sxm", 4, "fp16")
    h100 = Workload(hardware="h100-sxm", batch=4, dtype="fp16")
    step = 3 * float(forward_pass_s(4, 2048, workload=h100)) + float(forward_pass_s(32, 4096, 4, workload=h100))
    (row,) = payload["drafts"]
    assert row["step_time_s"] == pytest.approx(step, rel=EXACT)
    assert row["tokens_per_s"] == pytest.approx(4 * 2.734375 / step, rel=EXACT)  # four sequences per step


def test_cli_edge_cases(capsys):
    assert main(["speculative", "--target", "32x4096", "--draft", "4x2048", "--acceptance", "1", "--lookahead", "0",
                 "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["drafts"]
    assert row["expected_tokens"] == 1.0 and row["speedup"] == pytest.approx(1.0, rel=EXACT)
    assert row["best_lookahead"] == 16  # every token kept: draft as far as allowed
    assert main(["speculative", "--target", "32x4096", "--draft", "4x2048", "--acceptance", "0", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["drafts"]
    assert row["expected_tokens"] == 1.0 and row["best_lookahead"] == 0 and row["best_speedup"] == 1.0


def test_cli_table(capsys):
    assert main(["speculative", "--target", "32x4096", "--draft", "4x2048", "--draft", "48x4096",
                 "--acceptance", "0.75"]) == 0
    out = capsys.readouterr().out
    assert "4x2048" in out and "best k" in out and "does not pay" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--draft", "4x2048", "--acceptance", "0.5"], "--target"),
        (["--target", "32x4096", "--acceptance", "0.5"], "--draft"),
        (["--target", "32x4096", "--draft", "4x2048"], "--acceptance"),
        (["--target", "32x4096", "--draft", "4x2048", "--acceptance", "1.5"], "between 0 and 1"),
        (["--target", "32x4096", "--draft", "4x2048", "--acceptance", "high"], "between 0 and 1"),
        (["--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.5", "--acceptance", "0.6"], "one per draft"),
        (["--target", "32by4096", "--draft", "4x2048", "--acceptance", "0.5"], "LAYERSxWIDTH"),
        (["--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.5", "--lookahead", "-1"], "--lookahead"),
        (["--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.5", "--lookahead", "two"], "--lookahead"),
        (["--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.5", "--hardware", "abacus"], "hardware"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, message, cli):
    out = cli("speculative", *args)
    assert out.returncode == 2
    assert out.stderr.startswith("morph: error: ") and out.stderr.count("\n") == 1 and message in out.stderr


def test_a_draft_that_does_not_pay_is_never_selected():
    candidates = Candidates.from_arrays([2, 48, 40], [2048, 256, 512], 2e10)
    selection = select_drafts("32x4096", candidates, acceptance=0.75, top_n=3)
    assert selection.selected["label"].tolist() == ["2x2048"]  # the 48- and 40-layer drafts do not pay
    assert selection.ranking.tolist() == [0]
    with pytest.raises(SpeculativeError, match="no draft within the budgets speeds the target up"):
        select_drafts("32x4096", candidates.take([1, 2]), acceptance=0.75)
    with pytest.raises(SpeculativeError, match="the target alone needs"):
        select_drafts("32x4096", candidates, acceptance=0.75, memory_budget_gb=10)


def test_cli_ranks_a_parameter_range(capsys):
    argv = ["speculative", "--target", "32x4096", "--params-min", "5e7", "--params-max", "5e8", "--acceptance", "0.7",
            "--top", "3", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    candidates = enumerate_shapes(5e7, 5e8)
    assert payload["n_candidates"] == len(candidates)
    assert [row["rank"] for row in payload["selected"]] == [1, 2, 3]
    speedups = [row["best_speedup"] for row in payload["selected"]]
    assert speedups == sorted(speedups, reverse=True) and speedups[0] > 1
    assert len(payload["dropped"]) == len(candidates) - 3 and all(row["reason"] for row in payload["dropped"])
    # The same ranking as select_drafts on the same candidates.
    direct = select_drafts("32x4096", Candidates.from_arrays(candidates.n_layers, candidates.d_model, 2e10,
                                                             candidates.n_heads), acceptance=0.7, top_n=3)
    assert [row["label"] for row in payload["selected"]] == direct.selected["label"].tolist()
    assert main(["speculative", "--target", "32x4096", "--params-max", "5e8", "--target-tokens", "1e12"]) == 0
    out = capsys.readouterr().out
    assert "Pinsker" in out and "Pareto frontier" in out and "dropped:" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params-max", "5e8"], "--target-tokens"),
        (["--params-max", "5e8", "--acceptance", "0.5", "--acceptance", "0.6"], "one --acceptance for all"),
        (["--params-max", "5e8", "--acceptance", "0.5", "--target-tokens", "1e12"], "not both"),
        (["--params-max", "5e8", "--acceptance", "0.5", "--draft", "4x2048"], "not both"),
        (["--params-min", "5e8", "--acceptance", "0.5"], "--params-min needs --params-max"),
        (["--params-min", "5e8", "--params-max", "1e8", "--acceptance", "0.5"], "below --params-min"),
        (["--params-max", "lots", "--acceptance", "0.5"], "--params-max must be a number"),
        (["--params-max", "5e8", "--acceptance", "0.02"], "speeds the target up"),
        (["--params-max", "5e8", "--acceptance", "0.5", "--memory-gb", "5"], "the target alone needs"),
        (["--candidates", "no-such-file.csv", "--acceptance", "0.5"], "no-such-file.csv"),
    ],
)
def test_cli_ranking_bad_input_is_one_line_exit_2(args, message, cli):
    out = cli("speculative", "--target", "32x4096", *args)
    assert out.returncode == 2
    assert out.stderr.startswith("morph: error: ") and out.stderr.count("\n") == 1 and message in out.stderr


def test_cli_ranks_a_table_with_its_own_acceptance_rates(tmp_path, capsys):
    table = tmp_path / "drafts.csv"
    table.write_text("name,n_layers,d_model,acceptance\nwide,2,2048,0.6\ndeep,24,512,0.8\nmid,6,1024,0.7\n")
    assert main(["speculative", "--target", "32x4096", "--candidates", str(table), "--tokens", "2e10", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = {row["label"]: row for row in payload["selected"]}
    assert {label: row["acceptance"] for label, row in rows.items()} == {"wide": 0.6, "deep": 0.8, "mid": 0.7}
    assert payload["dropped"] == []
    # Each row is that draft's best speed-up at its own rate.
    for label, (layers, width, rate) in {"wide": (2, 2048, 0.6), "deep": (24, 512, 0.8)}.items():
        timing = speculative_timing("32x4096", layers, width, rate, np.arange(17))
        assert rows[label]["best_speedup"] == pytest.approx(timing.speedup.max(), rel=1e-12)
    # The wide draft wins although the deep one is accepted more often.
    assert payload["selected"][0]["label"] == "wide"
    table.write_text("name,n_layers,d_model,acceptance\nwide,2,2048,1.6\n")
    assert main(["speculative", "--target", "32x4096", "--candidates", str(table), "--tokens", "2e10"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


# --- workload options and memory on the command line -------------------------------------------


def _params_by_hand(L: int, d: int) -> int:
    """N(d, L) = L (4 d^2 + 3 d ffn(d) + 2 d) + d + 2 * 50432 d, ffn(d) = 256 ceil(int(8 d / 3) / 256)."""
    ffn = 256 * -(-int(8 * d / 3) // 256)
    return L * (4 * d * d + 3 * d * ffn + 2 * d) + d + 2 * 50432 * d


def _gb_in(reason: str) -> list[float]:
    """The numbers of GB a reason names, in order."""
    return [float(x) for x in re.findall(r"([0-9.]+) GB", reason)]


def _speculative_json(capsys, *args: str) -> dict:
    assert main(["speculative", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_stack_picks_the_graph_captured_calibration(capsys):
    pair = ["--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.75", "--lookahead", "3"]
    eager = _speculative_json(capsys, *pair)
    graphs = _speculative_json(capsys, *pair, "--stack", "cuda-graphs")
    assert main(["latency", "--shape", "4x2048", "--stack", "cuda-graphs", "--json"]) == 0
    latency = json.loads(capsys.readouterr().out)
    assert (graphs["stack"], graphs["calibration"]) == ("cuda-graphs", latency["calibration"])
    assert graphs["calibration"] != eager["calibration"]
    # A one-token step at 256 cached tokens is predict_latency's decode of one token after a 256-token prompt.
    step = predict_latency([4, 32], [2048, 4096], input_tokens=256, output_tokens=1, stack="cuda-graphs")
    draft_s, target_s = step.ms_per_token / 1e3
    (row,) = graphs["drafts"]
    assert row["draft_step_s"] == pytest.approx(draft_s, rel=1e-5)  # predict_latency is float32
    assert graphs["target"]["step_time_s"] == pytest.approx(target_s, rel=1e-5)
    assert row["draft_step_s"] < eager["drafts"][0]["draft_step_s"]
    assert graphs["target"]["step_time_s"] < eager["target"]["step_time_s"]
    # Ranking mode times its drafts under the same stack.
    ranked = _speculative_json(capsys, "--target", "32x4096", "--params-max", "5e8", "--acceptance", "0.75",
                               "--stack", "cuda-graphs")
    assert (ranked["settings"]["stack"], ranked["settings"]["calibration"]) == ("cuda-graphs", latency["calibration"])
    first = ranked["selected"][0]
    expected = predict_latency(first["n_layers"], first["d_model"], input_tokens=256, output_tokens=1,
                               stack="cuda-graphs").ms_per_token / 1e3
    assert first["draft_step_s"] == pytest.approx(float(expected), rel=1e-5)


def test_cli_takes_every_workload_option(capsys):
    with pytest.raises(SystemExit):
        main(["speculative", "--help"])
    text = capsys.readouterr().out
    for option in ("--hardware", "--calibration", "--batch", "--input-tokens", "--output-tokens", "--dtype",
                   "--stack", "--memory-gb"):
        assert option in text
    payload = _speculative_json(capsys, "--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.75",
                                "--lookahead", "3", "--hardware", "h100-sxm", "--calibration", "a100-40gb-hf-generate",
                                "--batch", "2", "--input-tokens", "1000", "--output-tokens", "500", "--dtype", "fp16")
    assert {k: payload[k] for k in ("hardware", "calibration", "batch", "input_tokens", "output_tokens", "dtype")} == {
        "hardware": "h100-sxm", "calibration": "a100-40gb-hf-generate", "batch": 2, "input_tokens": 1000,
        "output_tokens": 500, "dtype": "fp16"}
    assert payload["context"] == 1000 + 250  # the middle of generation
    h100 = Workload(hardware="h100-sxm", calibration="a100-40gb-hf-generate", batch=2, dtype="fp16")
    step = 3 * float(forward_pass_s(4, 2048, context=1250, workload=h100)) + float(
        forward_pass_s(32, 4096, 4, context=1250, workload=h100))
    assert payload["drafts"][0]["step_time_s"] == pytest.approx(step, rel=EXACT)
    # Without token options a step is timed at 256 cached tokens, as before: 128 + 256 / 2.
    pair = ["--target", "32x4096", "--draft", "4x2048", "--acceptance", "0.75"]
    assert _speculative_json(capsys, *pair)["context"] == 256
    # --context still wins.
    assert _speculative_json(capsys, *pair, "--input-tokens", "1000", "--context", "64")["context"] == 64


# N(8192, 80) = 80 (4 8192^2 + 3 8192 22016 + 2 8192) + 8192 + 2 50432 8192 = 65,587,650,560 parameters;
# in bf16 131.18 GB, plus a cache of 2 x 80 x 8192 x (128 + 256) tokens x 2 bytes = 1.007 GB: 132.18 GB > 40 GB.
BIG_TARGET_GB = (2 * 65_587_650_560 + 2 * 80 * 8192 * 384 * 2) / 1e9


def test_an_80x8192_target_does_not_fit_an_a100_40gb(capsys):
    assert _params_by_hand(80, 8192) == 65_587_650_560
    payload = _speculative_json(capsys, "--target", "80x8192", "--draft", "4x2048", "--draft", "2x1024",
                                "--acceptance", "0.75", "--hardware", "a100-40gb", "--batch", "1")
    assert payload["target"]["feasible"] is False
    assert payload["target"]["memory_gb"] == pytest.approx(BIG_TARGET_GB, rel=1e-12)
    for row in payload["drafts"]:
        assert row["feasible"] is False and "target alone" in row["infeasible_reason"]
        needed, weights, cache, available = _gb_in(row["infeasible_reason"])
        assert needed == pytest.approx(BIG_TARGET_GB, rel=1e-3) and available == 40
        assert weights == pytest.approx(131.18, rel=1e-3) and cache == pytest.approx(1.007, rel=1e-2)
        assert row["speedup"] > 0  # still timed: the timing is reported, marked infeasible
    assert main(["speculative", "--target", "80x8192", "--draft", "4x2048", "--acceptance", "0.75"]) == 0
    out = capsys.readouterr().out
    assert out.count("INFEASIBLE") == 1 and "NO" in out
    # Ranking mode: nothing can fit, so a one-line error as `morph frontier` gives when no candidate fits.
    assert main(["speculative", "--target", "80x8192", "--params-max", "5e8", "--acceptance", "0.75"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("morph: error: the target alone needs") and err.count("\n") == 1
    assert _gb_in(err)[0] == pytest.approx(BIG_TARGET_GB, rel=1e-3) and _gb_in(err)[-1] == 40


def test_a_small_target_and_draft_fit_an_80gb_card(capsys):
    payload = _speculative_json(capsys, "--target", "12x3072", "--draft", "2x1024", "--acceptance", "0.75",
                                "--hardware", "h100-sxm")
    (row,) = payload["drafts"]
    assert row["feasible"] is True and row["infeasible_reason"] is None and payload["memory_budget_gb"] == 80
    by_hand = (2 * (_params_by_hand(12, 3072) + _params_by_hand(2, 1024))
               + 2 * 384 * 2 * (12 * 3072 + 2 * 1024)) / 1e9  # weights, then both caches (bf16, 384 tokens)
    assert row["memory_gb"] == pytest.approx(by_hand, rel=1e-12)


def test_both_modes_check_memory_alike(tmp_path, capsys):
    # Target 32x4096 with the 2x2048 or the 4x2048 draft, at batch 2 with 1000 + 1000 tokens per sequence:
    # weights in bf16 and caches of 2 x layers x width x 2000 tokens x 2 sequences x 2 bytes.
    def need_gb(L: int, d: int) -> float:
        return (2 * _params_by_hand(L, d) + 2 * L * d * 2000 * 2 * 2) / 1e9

    small, large = (need_gb(32, 4096) + need_gb(L, 2048) for L in (2, 4))
    budget = f"{(small + large) / 2:.6f}"  # between the two: only the 2x2048 draft fits
    workload = ["--batch", "2", "--input-tokens", "1000", "--output-tokens", "1000", "--memory-gb", budget]
    explicit = _speculative_json(capsys, "--target", "32x4096", "--draft", "2x2048", "--draft", "4x2048",
                                 "--acceptance", "0.7", *workload)
    fits, over = explicit["drafts"]
    assert (fits["feasible"], over["feasible"]) == (True, False)
    assert fits["memory_gb"] == pytest.approx(small, rel=1e-12) and over["memory_gb"] == pytest.approx(large, rel=1e-12)
    needed, *_, available = _gb_in(over["infeasible_reason"])
    assert needed == pytest.approx(large, rel=1e-3) and available == pytest.approx(float(budget), rel=1e-5)
    table = tmp_path / "drafts.csv"
    table.write_text("n_layers,d_model,acceptance\n2,2048,0.7\n4,2048,0.7\n")
    ranked = _speculative_json(capsys, "--target", "32x4096", "--candidates", str(table), "--tokens", "2e10",
                               *workload)
    (chosen,) = ranked["selected"]
    (dropped,) = ranked["dropped"]
    assert (chosen["n_layers"], chosen["feasible"], chosen["infeasible_reason"]) == (2, True, None)
    assert (dropped["n_layers"], dropped["feasible"]) == (4, False)
    # One check behind both modes: the same numbers and the same sentence.
    assert (chosen["memory_gb"], dropped["memory_gb"]) == (fits["memory_gb"], over["memory_gb"])
    assert dropped["infeasible_reason"] == over["infeasible_reason"] == dropped["reason"]


def test_best_lookahead_and_the_simulation_refuse_what_they_cannot_use():
    with pytest.raises(SpeculativeError):
        best_lookahead(np.array([0.5]), np.array([1e-3]), np.array([2e-3, -1e-3]))  # a negative step time
    with pytest.raises(SpeculativeError):
        simulate_speculative(0.5, 4, steps=1)  # one step gives no spread to compare against
