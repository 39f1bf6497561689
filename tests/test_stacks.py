"""Serving stacks, calibration errors, latency bands and memory feasibility."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from morph import Workload, predict_latency
from morph.cli import main
from morph.errors import LatencyError
from morph.latency import load_calibration
from morph.latency.hardware import get_hardware
from morph.latency.memory import serving_memory
from morph.latency.published import (
    GRAPH_SHAPE_ALLOWANCE,
    calibrate_cuda_graphs,
    calibrate_h100_graphs,
    calibrate_hf_eager,
    graph_measurements,
    hf_eager_spread,
    load_published_timings,
)
from morph.latency.model import generation_work
from morph.latency.uncertainty import coefficient_draws, draw_latency, uncertainty_of
from morph.latency.measure import read_measurements
from morph.data import data_dir
from morph.latency.stacks import (
    STACKS,
    TRANSFER_ERROR,
    stack_calibration,
)
from morph.shapes import parameter_count

PAPER = ([24, 12], [2048, 3072])


def test_every_published_timing_cites_its_source_file_column_and_licence():
    table = load_published_timings()
    for column in ("source_url", "source_file", "source_column", "licence"):
        assert table[column].notna().all() and (table[column].str.len() > 3).all(), column
    assert set(table["stack"]) == set(STACKS)


def test_hf_eager_error_is_the_spread_of_the_published_24x2048_timings():
    # Hand: the 24x2048 timings are 3.61, 2.55, 3.99, 2.54 s; the farthest from 3.61 in log is 2.54: ln(3.61/2.54).
    assert hf_eager_spread() == pytest.approx(np.log(3.61 / 2.54), rel=1e-12)
    shipped = load_calibration("a100-40gb-hf-generate")
    assert shipped.stack == "hf-eager" and shipped.uncertainty["basis"] == "published spread"
    # The band's half-width: that gap plus a twentieth, x/(3.61/2.54)^1.05.
    assert shipped.relative_error == pytest.approx((3.61 / 2.54) ** 1.05 - 1, rel=1e-12)


def test_graph_timings_become_whole_call_latencies():
    # gpt-fast: 200 new tokens at 104.9 tokens/s; torchao: 105.13 tokens/s.
    np.testing.assert_allclose(graph_measurements()["latency_s"], [200 / 104.9, 200 / 105.13], rtol=1e-12)


def test_graph_bandwidth_efficiency_matches_the_hand_computed_weight_stream():
    # Llama-2-7B streams every parameter but the input embedding per step:
    # 32 layers x 4096 x (4 x 4096 + 3 x 11008 + 2) + 4096 + 4096 x 32000 = 6,607,343,616.
    streamed = 32 * 4096 * (4 * 4096 + 3 * 11008 + 2) + 4096 + 4096 * 32000
    seconds_per_token = (200 / 104.9 + 200 / 105.13) / 2 / 200
    eta = streamed * 2 / (seconds_per_token * 2039e9)
    shipped = load_calibration("a100-80gb-cuda-graphs")
    # With no per-layer device cost (the prior's low end) all of the time is weight streaming.
    # 2%: the hand figure leaves out the KV cache reads, the prefill and the overlap penalty, each < 1%.
    assert shipped.uncertainty["prior"]["follow"]["eta_bw"][0] == pytest.approx(eta, rel=0.02)
    assert shipped.c_layer_s == 0.0 and shipped.fitted == ("eta_bw",) and shipped.stack == "cuda-graphs"
    assert shipped.relative_error >= GRAPH_SHAPE_ALLOWANCE >= shipped.loo_max_error


def test_shipped_stack_calibrations_are_rebuilt_from_the_public_table():
    for rebuilt in (calibrate_hf_eager(), calibrate_cuda_graphs()):
        shipped = load_calibration(rebuilt.name)
        assert rebuilt.coefficients == pytest.approx(shipped.coefficients, rel=1e-9)
        assert rebuilt.relative_error == pytest.approx(shipped.relative_error, rel=1e-9)
        assert (rebuilt.stack, rebuilt.error_basis) == (shipped.stack, shipped.error_basis)


def test_the_shipped_h100_graph_calibration_is_rebuilt_from_the_shipped_sweep():
    # The point fit only: the shipped file's 100 bootstrap refits take seconds and do not move it.
    rebuilt, shipped = calibrate_h100_graphs(bootstrap=0), load_calibration("h100-sxm-cuda-graphs")
    # 1e-6: a least-squares refit of nine timings, whose last digits follow the CPU's SIMD path (the host's
    # time per step, which these timings cannot tell, is fixed at its prior: a free fit moved by 5x between paths).
    assert rebuilt.coefficients == pytest.approx(shipped.coefficients, rel=1e-6)
    assert rebuilt.fitted == shipped.fitted == ("c_layer_device_s", "eta_bw")
    assert shipped.provenance["gpu"] == "NVIDIA H100 80GB HBM3" and shipped.provenance["driver"]


def test_graph_stack_differs_by_device_and_shrinks_the_paper_speedup():
    eager = predict_latency(*PAPER, workload=Workload(stack="hf-eager")).latency_s
    a100 = predict_latency(*PAPER, workload=Workload(hardware="a100-40gb", stack="cuda-graphs")).latency_s
    h200 = predict_latency(*PAPER, workload=Workload(hardware="h200", stack="cuda-graphs")).latency_s
    h100 = predict_latency(*PAPER, workload=Workload(hardware="h100-sxm", stack="cuda-graphs")).latency_s
    assert eager[0] > eager[1]  # eager: the deeper 24x2048 is the slower
    # Both borrow the A100-80GB's coefficients; decode is bandwidth-bound: 4.8 TB/s against 1.555 TB/s.
    assert np.all(h200 < 0.6 * a100)
    for graph in (a100, h200, h100):  # the H100's own measured coefficients too
        assert graph[0] / graph[1] < eager[0] / eager[1]


def test_a_device_without_timings_borrows_with_a_wider_flagged_distribution():
    graph = load_calibration("a100-80gb-cuda-graphs")
    own = uncertainty_of(graph, get_hardware("a100-80gb"))
    borrowed = Workload(hardware="h200", stack="cuda-graphs").latency_uncertainty()
    assert own.basis == "prior" and borrowed.basis == "transfer"
    # The transfer's factor (x/1.25 at 95%) adds in quadrature to the calibration's own.
    expected = math.hypot(own.log_sigma, math.log(1 + TRANSFER_ERROR) / 1.959963984540054)
    assert borrowed.log_sigma == pytest.approx(expected, rel=1e-12)
    assert "a100-80gb" in borrowed.reasoning and "25%" in borrowed.reasoning


def test_gpu_stack_on_the_cpu_and_unknown_stacks_are_refused():
    with pytest.raises(LatencyError, match="no calibration for a cpu"):
        stack_calibration("cuda-graphs", get_hardware("cpu"))
    with pytest.raises(LatencyError, match="unknown serving stack"):
        Workload(stack="tensorrt-magic")


def test_calibration_relative_error_is_validated():
    shipped = load_calibration("a100-80gb-cuda-graphs")
    for bad in (1.5, -0.1, math.nan, True):
        with pytest.raises(LatencyError, match="relative_error"):
            shipped.replace(relative_error=bad)


def test_band_brackets_the_prediction_and_respects_the_roofline():
    for settings in (dict(hardware="a100-40gb"), dict(hardware="l4"), dict(stack="cuda-graphs", hardware="a100-80gb")):
        p = predict_latency([24, 12, 64], [2048, 3072, 8192], **settings)
        assert np.all(p.latency_low_s <= p.latency_s) and np.all(p.latency_s <= p.latency_high_s)
        assert np.all(p.latency_low_s >= p.roofline_s * (1 - 1e-6))


def test_a_shared_factor_moves_every_shape_together():
    # Eager on the A100 40GB: only the shared factor varies, so in every draw 12x3072 stays faster.
    calibration = load_calibration("a100-40gb-hf-generate")
    hardware = get_hardware("a100-40gb")
    drawn = coefficient_draws(calibration, hardware)
    assert drawn.shared_only
    work = generation_work(np.array([24, 12]), np.array([2048, 3072]), None, None, hardware, 1, 128, 256, "bf16",
                           50432)
    latency = draw_latency(work, drawn)["latency_s"]
    assert np.all(latency[:, 1] < latency[:, 0])
    # And the ratio is the point prediction's in every draw (the factor cancels): 3.61 / 1.96.
    np.testing.assert_allclose(latency[:, 0] / latency[:, 1], 3.61 / 1.96, rtol=2e-3)


def test_kv_cache_of_the_long_context_case_by_hand():
    workload = Workload(batch=512, input_tokens=8192, output_tokens=8192)
    check = serving_memory(*PAPER, workload=workload)
    # 2 x 24 x 2048 x 16,384 tokens x 512 sequences x 2 bytes = 1,649,267,441,664 bytes.
    assert check.kv_cache_gb[0] == pytest.approx(1_649_267_441_664 / 1e9, rel=1e-12)
    assert check.kv_cache_gb[1] == pytest.approx(2 * 12 * 3072 * 16384 * 512 * 2 / 1e9, rel=1e-12)
    assert not check.feasible.any()
    assert all("a100-40gb has 40 GB" in reason for reason in check.reasons())


def test_feasibility_boundary_by_hand():
    # 12x3072 at 128 + 256 tokens: 2 x 12 x 3072 x 384 x 2 = 56,623,104 bytes of cache per sequence.
    weights = float(parameter_count(12, 3072)) * 2
    largest = math.floor((40e9 - weights) / 56_623_104)
    fits = serving_memory(12, 3072, workload=Workload(batch=largest))
    over = serving_memory(12, 3072, workload=Workload(batch=largest + 1))
    assert fits.feasible.all() and not over.feasible.any()
    assert fits.reasons() == [""]


def test_cli_latency_json_has_bands_memory_and_stack(capsys):
    assert main(["latency", "--shape", "24x2048", "--shape", "12x3072", "--stack", "cuda-graphs",
                 "--hardware", "h200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stack"] == "cuda-graphs" and out["transferred"] is True
    for row in out["shapes"]:
        assert row["latency_low_s"] <= row["latency_s"] <= row["latency_high_s"]
        assert row["feasible"] is True and row["memory_gb"] > 0


def test_cli_long_context_case_is_infeasible_with_the_reason(capsys):
    assert main(["latency", "--shape", "24x2048", "--batch", "512", "--input-tokens", "8192",
                 "--output-tokens", "8192", "--hardware", "a100-40gb", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["shapes"][0]
    assert row["feasible"] is False and "KV cache" in row["infeasible_reason"]


def test_cli_rejects_an_unknown_stack(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["latency", "--shape", "24x2048", "--stack", "magic"])
    assert exc.value.code == 2


def test_cli_latency_cost_per_million_tokens(capsys):
    assert main(["latency", "--shape", "12x3072", "--batch", "8", "--price-per-gpu-hour", "2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["shapes"][0]
    # 2 per hour for the call's seconds, over 8 x 256 generated tokens, per million (7 digits printed).
    assert row["cost_per_million_tokens"] == pytest.approx(2 / 3600 * row["latency_s"] / (8 * 256) * 1e6, rel=1e-6)
    assert row["ttft_s"] == row["prefill_s"]


# --- the H100 depth sweep: graph capture measured, not assumed ------------------------------------------------


def _h100_graph_rows():
    frame, _ = read_measurements(data_dir() / "measurements" / "h100-sxm-gpu-depth.csv")
    return frame[frame["stack"] == "cuda-graphs"].reset_index(drop=True)


def test_the_h100_graph_calibration_is_measured_and_its_band_holds_every_timing_it_was_fitted_to():
    rows = _h100_graph_rows()
    workload = Workload(hardware="h100-sxm", stack="cuda-graphs", batch=1, input_tokens=128, output_tokens=256,
                        dtype="bf16")
    assert workload.latency_uncertainty().basis == "measured"
    p = predict_latency(rows["n_layers"].to_numpy(), rows["d_model"].to_numpy(), workload=workload)
    measured = rows["latency_s"].to_numpy()
    assert np.all(p.latency_low_s <= measured) and np.all(measured <= p.latency_high_s)


def test_the_h100_per_layer_device_cost_is_the_sweeps_slope_in_depth():
    rows = _h100_graph_rows()
    same_size = rows[rows["d_model"] != 2048]  # the eight ~1.3B shapes; 24x2048 is the paper's, 1.44B
    assert same_size["N"].max() / same_size["N"].min() < 1.06
    # At nearly equal N the weights take the same time to stream at every depth, so the least-squares slope of
    # one call's time in depth, over the 256 decode steps, is the device time one layer adds to one step.
    slope_per_step = np.polyfit(same_size["n_layers"], same_size["latency_s"], 1)[0] / 256
    fitted = load_calibration("h100-sxm-cuda-graphs").c_layer_device_s
    # 10%: the slope ignores the 5% spread of N across the sweep, which the model's bandwidth term absorbs.
    assert fitted == pytest.approx(slope_per_step, rel=0.10)
    # Above the A100 prior's 0-54 us: unfused kernels cost more per layer than the fused gpt-fast stack allows.
    assert fitted > load_calibration("a100-80gb-cuda-graphs").uncertainty["prior"]["high"]


def test_under_measured_graph_capture_the_paper_pick_stays_faster_than_24x2048():
    rows = _h100_graph_rows()
    measured = dict(zip(zip(rows["n_layers"], rows["d_model"]), rows["latency_s"]))
    workload = Workload(hardware="h100-sxm", stack="cuda-graphs", batch=1, input_tokens=128, output_tokens=256,
                        dtype="bf16")
    pick = predict_latency([12], [3072], workload=workload)
    # 12x3072 was not timed. Bounds from timed shapes: it is slower than 12x2688 (same depth, fewer weights) and
    # at most that time scaled by the ratio of parameters (only the streaming part grows with N).
    low = measured[(12, 2688)]
    high = low * parameter_count(12, 3072) / parameter_count(12, 2688)
    assert low < pick.latency_s[0] < high
    assert high < measured[(24, 2048)]  # so the paper's pick stays the faster, measured 24x2048 against it
    assert pick.latency_high_s[0] < measured[(24, 2048)]
