"""Selection and the accuracy-latency frontier, and the lifetime view."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from morph import SelectionError, ShapeError, fit, load_runs, preset
from morph.data import data_dir
from morph.frontier import (
    Candidates,
    candidates_from_flops,
    candidates_from_range,
    candidates_from_table,
    compute_tradeoff,
    evaluate_candidates,
    pareto_frontier,
    price_of_speed,
    select,
)
from morph.lifetime import lifetime_cost, lifetime_flops, lifetime_optimal

ONE_B_TOKENS = 28_991_029_248
CANDIDATES_CSV = data_dir() / "morph_1b_candidates.csv"


@pytest.fixture(scope="module")
def one_b():
    return evaluate_candidates(candidates_from_table(CANDIDATES_CSV), "bian2025", hardware="a100-40gb")


def test_the_paper_selects_morph_1b_under_two_seconds(one_b):
    assert (one_b.candidates.D == ONE_B_TOKENS).all()
    selection = select(one_b, latency_budget_s=2.0, top_k=3)
    first = selection.selected.iloc[0]
    assert (first["n_layers"], first["d_model"], first["label"]) == (12, 3072, "1B_v8")
    assert (selection.selected["latency_s"] <= 2.0).all()
    assert selection.selected["loss"].is_monotonic_increasing
    # every deeper-than-12-layer candidate is dropped for latency, with the reason given
    deep = selection.dropped[selection.dropped["n_layers"] > 12]
    assert len(deep) > 0 and deep["reason"].str.contains("exceeds the 2 s budget").all()
    kept_out = selection.dropped[selection.dropped["latency_s"] <= 2.0]
    assert kept_out["reason"].str.contains("top 3 kept").all()
    assert len(selection.selected) + len(selection.dropped) == 15


def test_speedup_is_against_the_deepest_candidate(one_b):
    selection = select(one_b, 2.0, top_k=1)
    deepest = one_b.latency_s[np.argmax(one_b.candidates.n_layers)]  # 24 x 2048
    chosen = one_b.latency_s[selection.selected_index[0]]
    assert selection.selected["speedup"].iloc[0] == pytest.approx(deepest / chosen, rel=1e-12)


def test_with_a_larger_budget_the_best_loss_wins(one_b):
    selection = select(one_b, latency_budget_s=10.0, top_k=1)
    assert selection.selected["label"].iloc[0] == one_b.candidates.label[np.argmin(one_b.loss)]


def test_frontier_is_non_dominated_and_ordered(one_b):
    idx = pareto_frontier(one_b.latency_s, one_b.loss)
    t, y = one_b.latency_s[idx], one_b.loss[idx]
    assert np.all(np.diff(t) >= 0) and np.all(np.diff(y) < 0)
    for i in range(len(one_b)):
        dominated = np.any((one_b.latency_s <= one_b.latency_s[i]) & (one_b.loss <= one_b.loss[i])
                           & ((one_b.latency_s < one_b.latency_s[i]) | (one_b.loss < one_b.loss[i])))
        assert dominated == (i not in set(idx.tolist()))


def test_the_selections_frontier_holds_only_shapes_that_fit_in_memory():
    # Up to 3e10 parameters on a 40 GB A100: at 2 bytes each, shapes above about 2e10 cannot hold their weights.
    evaluation = evaluate_candidates(candidates_from_range(1e8, 3e10, 2e11), "bian2025", hardware="a100-40gb")
    assert not evaluation.fits_memory.all()
    frontier = select(evaluation, 50.0, 5).frontier_index
    assert evaluation.feasible[frontier].all()
    # Among the shapes that fit, the frontier is exactly the non-dominated set.
    fits = np.flatnonzero(evaluation.feasible)
    t, y = evaluation.latency_s[fits], evaluation.loss[fits]
    expected = fits[pareto_frontier(t, y)]
    np.testing.assert_array_equal(np.sort(frontier), np.sort(expected))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=60))
def test_frontier_property(points):
    t = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    idx = pareto_frontier(t, y)
    frontier = {(t[i], y[i]) for i in idx}
    assert len(frontier) == idx.size  # exact duplicates appear once
    for i in range(t.size):
        dominated = np.any((t <= t[i]) & (y <= y[i]) & ((t < t[i]) | (y < y[i])))
        assert ((t[i], y[i]) in frontier) == (not dominated)
    assert np.all(np.diff(t[idx]) > 0) and np.all(np.diff(y[idx]) < 0)


def test_band_from_a_fit(one_b):
    result = fit(load_runs(), fit_set="in_fit_B", bootstrap=50)
    evaluation = evaluate_candidates(candidates_from_table(CANDIDATES_CSV), result)
    selection = select(evaluation, 2.0, top_k=2)
    s = selection.selected
    assert (s["loss_low"] < s["loss"]).all() and (s["loss"] < s["loss_high"]).all()
    assert s["label"].iloc[0] == "1B_v8"


def test_candidates_from_range_and_flops():
    c = candidates_from_range(1.3e9, 1.7e9, tokens=ONE_B_TOKENS, d_model_max=6144)
    assert ((c.N >= 1.3e9) & (c.N <= 1.7e9)).all() and (c.D == ONE_B_TOKENS).all()
    flops = 1e21
    c = candidates_from_flops(flops)
    assert np.allclose(c.training_flops, flops)
    optimum = preset("bian2025").compute_optimal(flops, 64.0)
    assert c.N.min() < optimum.N < c.N.max()


def test_candidate_tables_need_only_layers_and_width(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("n_layers,d_model\n12,3072\n24,2048\n")
    c = candidates_from_table(path, tokens=1e10)
    assert c.label.tolist() == ["12x3072", "24x2048"] and c.n_heads.tolist() == [48, 32]
    with pytest.raises(SelectionError, match="no D column"):
        candidates_from_table(path)
    path.write_text("n_layers\n12\n")
    with pytest.raises(SelectionError, match="missing the column"):
        candidates_from_table(path, tokens=1e10)
    path.write_text("n_layers,d_model,n_heads\n12,3072,7\n")
    with pytest.raises(ShapeError, match="do not divide"):
        candidates_from_table(path, tokens=1e10)


def test_impossible_budgets_say_what_to_relax(one_b):
    with pytest.raises(SelectionError, match=r"no candidate meets the 0\.5 s latency budget.*Relax the budget to at least"):
        select(one_b, 0.5)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(SelectionError, match="positive"):
            select(one_b, bad)
    with pytest.raises(SelectionError, match="no shape"):
        candidates_from_range(1.0, 2.0, tokens=1e9)
    for tokens in (-1, 0, np.inf):  # zero tokens train nothing
        with pytest.raises(SelectionError, match="positive, finite"):
            Candidates.from_arrays([12], [3072], tokens=tokens)
    with pytest.raises(SelectionError, match="compute budget"):
        candidates_from_flops(-1)


def test_compute_tradeoff_prices_speed():
    view = compute_tradeoff(1e21, "bian2025", enumerate_options={"d_model_max": 8192})
    table = view.table
    assert table.loc[0, "speedup"] == 1.0 and table.loc[0, "loss_penalty"] == pytest.approx(0.0)
    finite = table.dropna(subset=["loss_penalty"])
    assert (finite["loss_penalty"] >= 0).all() and finite["loss_penalty"].is_monotonic_increasing
    assert (finite["latency_s"] <= view.best["latency_s"] / finite["speedup"] + 1e-12).all()
    assert "faster model" in view.sentence(2.0)
    # A speed-up not in the table, or one no candidate reaches (NaN penalty), is said to have no candidate.
    assert view.sentence(7.0).startswith("no candidate is 7x faster")
    unreached = table.loc[table["loss_penalty"].isna(), "speedup"]
    if len(unreached):
        assert view.sentence(float(unreached.iloc[0])).startswith("no candidate is")


def test_price_of_speed_among_the_paper_candidates(one_b):
    table = price_of_speed(one_b, (1.0, 2.0, 100.0))
    best = int(np.argmin(one_b.loss))
    assert table.loc[0, "label"] == one_b.candidates.label[best] and table.loc[0, "loss_penalty"] == 0.0
    # by hand: the least loss among candidates at most half as slow as the best
    fast = one_b.latency_s <= one_b.latency_s[best] / 2
    pick = np.flatnonzero(fast)[np.argmin(one_b.loss[fast])]
    assert table.loc[1, "label"] == one_b.candidates.label[pick]
    assert table.loc[1, "loss_penalty"] == pytest.approx(one_b.loss[pick] - one_b.loss[best])
    assert table.loc[1, "relative_penalty"] == pytest.approx(one_b.loss[pick] / one_b.loss[best] - 1)
    assert pd.isna(table.loc[2, "label"]) and np.isnan(table.loc[2, "loss_penalty"])


def test_candidates_retrained_on_other_tokens_or_a_compute_budget():
    c = candidates_from_table(CANDIDATES_CSV)
    assert (c.with_tokens(1e10).D == 1e10).all() and (c.with_tokens(1e10).N == c.N).all()
    flops = 3e20
    assert np.allclose(6 * c.N * c.with_training_flops(flops).D, flops)
    grid = candidates_from_flops(flops, 1e9, 2e9)
    np.testing.assert_allclose(grid.D, flops / (6.0 * grid.N), rtol=1e-12)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(SelectionError):
            c.with_tokens(bad)
        with pytest.raises(SelectionError):
            c.with_training_flops(bad)


def test_compute_optimum_agrees_with_the_law():
    # At fixed aspect ratio the best candidate on the 6ND = C curve is close to the law's optimum.
    law = preset("bian2025")
    flops = 3e20
    best = law.compute_optimal(flops, 64.0)
    N = np.geomspace(best.N / 4, best.N * 4, 2001)
    assert N[np.argmin(law.predict(N, flops / (6 * N), 64.0))] == pytest.approx(float(best.N), rel=0.01)


def test_lifetime_accounting():
    f = lifetime_flops(1e9, 2e10, 1e12)
    assert f["training_flops"] == pytest.approx(1.2e20) and f["inference_flops"] == pytest.approx(2e21)
    opt0 = lifetime_optimal("bian2025", 3.0, 0.0, aspect_ratio=64.0)
    assert opt0.N == pytest.approx(opt0.chinchilla_N) and opt0.savings == pytest.approx(0.0)
    heavy = lifetime_optimal("bian2025", 3.0, 1e13, aspect_ratio=64.0)
    assert heavy.N < opt0.N and heavy.D > opt0.D and heavy.savings > 0
    law = preset("bian2025")
    assert float(law.predict(heavy.N, heavy.D, 64.0)) == pytest.approx(3.0, rel=1e-9)
    with pytest.raises(SelectionError, match="at or below what this law can reach"):
        lifetime_optimal("bian2025", 2.0, 0.0, aspect_ratio=64.0)


def test_lifetime_cost_favours_fast_shapes_when_serving_dominates(one_b):
    cost = lifetime_cost(one_b, inference_tokens=1e11)
    v1 = cost[cost.label == "1B_v1"].iloc[0]
    v8 = cost[cost.label == "1B_v8"].iloc[0]
    assert v8["serving_gpu_hours"] < v1["serving_gpu_hours"] * 0.6
    assert (cost["total_gpu_hours"] == cost["training_gpu_hours"] + cost["serving_gpu_hours"]).all()


def test_cli_frontier_json(cli):
    out = cli("frontier", "--candidates", str(CANDIDATES_CSV), "--latency-budget", "2.0", "--hardware", "a100-40gb",
              "--top", "3", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    first = payload["selected"][0]
    assert (first["n_layers"], first["d_model"]) == (12, 3072)
    for key in ("n_layers", "d_model", "N", "loss", "latency_s"):
        assert key in first and key in payload["frontier"][0]
    latencies = [row["latency_s"] for row in payload["frontier"]]
    assert latencies == sorted(latencies)
    assert all("reason" in row for row in payload["dropped"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--candidates", str(CANDIDATES_CSV), "--latency-budget", "0.1"], "no candidate meets"),
        (["--params-min", "1e9", "--latency-budget", "2"], "--params-min needs --params-max"),
        (["--params-min", "2e9", "--params-max", "1e9", "--tokens", "1e10", "--latency-budget", "2"], "below"),
        (["--params-min", "1e9", "--params-max", "2e9", "--latency-budget", "2"], "--tokens"),
        (["--flops", "1e21", "--tokens", "1e10", "--latency-budget", "2"], "drop --tokens"),
        (["--candidates", str(CANDIDATES_CSV), "--latency-budget", "2", "--hardware", "abacus"], "abacus"),
    ],
)
def test_cli_frontier_bad_input(args, message, cli):
    out = cli("frontier", *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize("seed", range(5))
def test_large_frontiers_match_the_plain_sort(seed):
    # Above the pre-filter's threshold the result must equal the exact sort's, ties and duplicates included.
    from morph.frontier import _sorted_frontier

    rng = np.random.default_rng(seed)
    n = 60_000
    t = np.round(rng.lognormal(0, 1, n), 3)
    y = np.round(3 + 1 / (t + rng.uniform(0, 2, n)), 3)
    t[:500], y[:500] = t[500:1000], y[500:1000]  # exact duplicates
    assert np.array_equal(np.sort(pareto_frontier(t, y)), np.sort(_sorted_frontier(t, y)))


def test_cli_frontier_prints_no_control_characters_from_a_table(tmp_path, capsys):
    from morph.cli import main

    table = pd.read_csv(CANDIDATES_CSV)
    # An escape sequence that would clear the screen and retitle the terminal, a backspace, a bidi override.
    table.loc[table["candidate"] == "1B_v8", "candidate"] = "\x1b[2J\x1b]0;owned\x07v8\x08X\u202e"
    path = tmp_path / "candidates.csv"
    table.to_csv(path, index=False)
    assert main(["frontier", "--candidates", str(path), "--latency-target", "2.0", "--hardware", "a100-40gb"]) == 0
    printed = capsys.readouterr().out
    assert "\ufffd[2J\ufffd]0;owned\ufffdv8\ufffdX\ufffd" in printed  # every control shown as U+FFFD, the rest kept
    assert not any(ord(c) < 32 and c not in "\n\t" or 127 <= ord(c) < 160 or c == "\u202e" for c in printed)


def test_the_selection_keeps_exactly_top_k_when_more_meet_the_budget(one_b):
    within = int(np.sum(one_b.latency_s <= 3.0))
    assert within > 3  # the paper's candidates: more than three meet 3 s
    assert len(select(one_b, 3.0, top_k=3).selected) == 3


def test_a_table_of_single_head_shapes_is_read():
    # One head is the smallest valid count: it divides any width.
    table = pd.DataFrame({"n_layers": [4, 8], "d_model": [256, 512], "n_heads": [1, 1]})
    assert candidates_from_table(table, tokens=1e9).n_heads.tolist() == [1, 1]


def test_the_compute_view_passes_its_enumeration_options_on():
    view = compute_tradeoff(1e21, "bian2025", enumerate_options={"d_model_max": 2048})
    assert view.evaluation.candidates.d_model.max() <= 2048
