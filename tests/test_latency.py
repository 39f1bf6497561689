"""Tests of the latency model, hardware presets, calibration and ``morph latency``."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

import morph.latency.model as latency_module
from morph.shapes import parameter_count
from morph.latency.calibration import (
    A100_CALIBRATION,
    additive_host_coefficients,
    calibrate,
    calibrate_published_a100,
    leave_one_out,
    load_measurements,
    published_a100_measurements,
)
from morph.cli import main
from morph.data import data_dir
from morph.errors import LatencyError, MorphError, ShapeError
from morph.latency.hardware import Hardware, get_hardware, hardware_presets, load_hardware, probe_cpu
from morph.latency import (
    Calibration,
    calibrations,
    load_calibration,
    overlap,
    predict_latency,
    roofline_latency,
)
from morph.latency.model import evaluate, _max_affine_sum, _streamed_parameters, decode_lines, generation_work
from morph.shapes import parameter_count

REPO = Path(__file__).resolve().parents[1]

# A device and coefficients with round numbers, for figures worked by hand.
TOY = Hardware(name="toy", memory_bandwidth_gb_s=100, bf16_tflops=2, fp32_tflops=1, memory_gb=16)
TOY_SUM = Calibration("toy-sum", "toy", c_fixed_s=1e-3, c_layer_s=1e-4, eta_bw=0.5, eta_flops=0.25, overlap_p=1)


def _calibration(c_fixed_s=1e-3, c_layer_s=5e-4, eta_bw=0.7, eta_flops=0.5, overlap_p=8.0) -> Calibration:
    return Calibration("test", "a100-40gb", c_fixed_s, c_layer_s, eta_bw, eta_flops, overlap_p)


# --- hardware presets -------------------------------------------------------------------------

DATASHEETS = {
    # name: (memory bandwidth GB/s, bf16 dense TFLOP/s, fp32 TFLOP/s, memory GB)
    "a100-40gb": (1555, 312, 19.5, 40),
    "a100-80gb": (2039, 312, 19.5, 80),
    "a30": (933, 165, 10.3, 24),
    "h100-sxm": (3350, 989, 67, 80),
    "h100-pcie": (2000, 756, 51, 80),
    "h200": (4800, 989, 67, 141),
    "l4": (300, 121, 30.3, 24),
    "rtx-4090": (1008, 165.2, 82.6, 24),
}


def test_presets_are_the_documented_slugs():
    assert list(hardware_presets()) == [*DATASHEETS, "cpu"]


@pytest.mark.parametrize("name", list(DATASHEETS))
def test_gpu_presets_hold_datasheet_figures(name):
    hw = get_hardware(name)
    bandwidth, bf16, fp32, memory = DATASHEETS[name]
    assert hw.memory_bandwidth == bandwidth * 1e9  # bytes/s
    assert hw.peak_flops("bf16") == bf16 * 1e12  # FLOP/s, dense
    assert hw.peak_flops("fp16") == bf16 * 1e12
    assert hw.peak_flops("fp32") == pytest.approx(fp32 * 1e12)
    assert hw.memory_gb == memory
    assert hw.kind == "gpu" and not hw.synchronous
    assert ("datasheet" in hw.source or "whitepaper" in hw.source) and "https://" in hw.source
    assert hw.default_calibration == A100_CALIBRATION


def test_cpu_preset_names_the_machine_it_was_measured_on():
    cpu = get_hardware("CPU")
    assert cpu.kind == "cpu" and cpu.synchronous
    assert "morph latency probe-cpu" in cpu.source and "this" not in cpu.label.lower()
    # The machine and day recorded in the CPU sweep's own header.
    from morph.latency.calibration import load_measurements

    header = load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv").attrs["metadata"]
    model, cores = re.match(r"(.+), (\d+) logical cores", header["machine"]).groups()
    assert model in cpu.label and f"{cores} logical cores" in cpu.label
    assert header["date"][:10] in cpu.label and header["date"][:10] in cpu.source
    assert cpu.bf16_tflops is None
    assert 1 < cpu.memory_bandwidth_gb_s < 1000 and 0.001 < cpu.fp32_tflops < 100
    with pytest.raises(LatencyError, match="no bf16 throughput"):
        cpu.peak_flops("bf16")


def test_unknown_hardware_lists_the_valid_names():
    with pytest.raises(LatencyError, match="a100-40gb, a100-80gb, a30, h100-sxm, h100-pcie, h200, l4, rtx-4090, cpu"):
        get_hardware("tpu-v5")


def test_hardware_from_a_users_csv(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "name,label,kind,memory_bandwidth_gb_s,bf16_tflops,fp32_tflops,memory_gb,default_calibration,source\n"
        "My-GPU,My GPU,gpu,800,100,20,32,a100-40gb-hf-generate,my datasheet\n"
        "box,My box,cpu,50,,1.5,64,,measured\n"
    )
    presets = load_hardware(path)
    assert presets["my-gpu"].memory_bandwidth == 8e11 and presets["my-gpu"].peak_flops("bf16") == 1e14
    assert presets["box"].bf16_tflops is None and presets["box"].default_calibration is None
    # A Hardware object works wherever a slug does.
    p = predict_latency(12, 3072, hardware=presets["my-gpu"])
    assert p.roofline_s > roofline_latency(12, 3072, hardware="a100-40gb")
    with pytest.raises(LatencyError, match="no default calibration"):
        predict_latency(12, 3072, hardware=presets["box"])
    (tmp_path / "bad.csv").write_text("name,memory_gb\nx,3\n")
    with pytest.raises(LatencyError, match="missing the column"):
        load_hardware(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    "changes, message",
    [({"memory_bandwidth_gb_s": -1}, "memory_bandwidth_gb_s"), ({"fp32_tflops": float("nan")}, "fp32_tflops"),
     ({"kind": "tpu"}, "kind"), ({"name": ""}, "name")],
)
def test_hardware_rejects_bad_figures(changes, message):
    fields = dict(name="x", memory_bandwidth_gb_s=1, bf16_tflops=1, fp32_tflops=1, memory_gb=1)
    with pytest.raises(LatencyError, match=message):
        Hardware(**{**fields, **changes})


def test_probe_cpu_measures_plausible_figures():
    hw = probe_cpu(copy_bytes=16 * 2**20, matmul_size=256, repeats=2)
    assert hw.name == "cpu" and hw.kind == "cpu" and hw.default_calibration == "cpu-torch-eager"
    assert 0.5 < hw.memory_bandwidth_gb_s < 5000
    assert 1e-4 < hw.fp32_tflops < 1000
    assert hw.memory_gb > 0.5
    assert "morph latency probe-cpu" in hw.source


# --- the model --------------------------------------------------------------------------------


def test_hand_worked_case():
    # 2 x 64, vocab 1000, fp32 on TOY (100 GB/s, 1 TFLOP/s fp32), batch 1, 4 prompt + 3 output tokens.
    # ffn(64) = 256 * ceil(int(512 / 3) / 256) = 256; per layer 4*64^2 + 3*64*256 + 2*64 = 65,664;
    # streamed P = 2 * 65,664 + 64 (final norm) + 1000 * 64 (head) = 195,392 -> 781,568 bytes.
    # Cache: 2 * 2 * 64 * 4 = 1,024 bytes per token; attention 4 * 2 * 64 = 512 FLOPs per cached token.
    # Rates: 0.5 * 1e11 = 5e10 bytes/s, 0.25 * 1e12 = 2.5e11 FLOP/s; host 1e-3 + 2 * 1e-4 = 1.2e-3 s.
    # Prefill: FLOPs 4 * 390,784 + 512 * (1+2+3+4) = 1,568,256 -> 6.273024e-6 s;
    #          bytes 781,568 + 4 * 1,024 = 785,664 -> 1.571328e-5 s (memory-bound).
    #          p = 1: 1.2e-3 + 1.571328e-5 = 1.21571328e-3 s.
    # Decode: 2 steps at context 5 and 6, memory-bound (compute is a tenth):
    #          (786,688 + 787,712) / 5e10 = 3.1488e-5 s, plus 2 * 1.2e-3 of host: 2.431488e-3 s.
    # Roofline at 1e11 B/s: prefill 7.85664e-6 + decode (786,688 + 787,712) / 1e11 = 2.360064e-5 s.
    p = predict_latency(2, 64, hardware=TOY, calibration=TOY_SUM, batch=1, input_tokens=4, output_tokens=3,
                        dtype="fp32", vocab=1000)
    assert float(p.prefill_s) == pytest.approx(1.21571328e-3, rel=1e-6)
    assert float(p.ttft_s) == float(p.prefill_s)
    assert float(p.decode_s) == pytest.approx(2.431488e-3, rel=1e-6)
    assert float(p.latency_s) == pytest.approx(3.64720128e-3, rel=1e-6)
    assert float(p.ms_per_token) == pytest.approx(1.215744, rel=1e-6)
    assert float(p.tokens_per_s) == pytest.approx(3 / 3.64720128e-3, rel=1e-6)
    assert float(p.roofline_s) == pytest.approx(2.360064e-5, rel=1e-6)
    assert float(roofline_latency(2, 64, hardware=TOY, input_tokens=4, output_tokens=3, dtype="fp32",
                                  vocab=1000)) == pytest.approx(2.360064e-5, rel=1e-6)


def test_overlap_combines_host_and_device_time():
    assert overlap(3.0, 4.0, 2) == pytest.approx(5.0)
    assert overlap(3.0, 4.0, 1) == 7.0
    assert overlap(3.0, 4.0, math.inf) == 4.0
    assert overlap(1.0, 1.0, 8) == pytest.approx(2 ** (1 / 8))
    assert overlap(2.0, 1.0, 3) == pytest.approx((8 + 1) ** (1 / 3))  # not a power of two
    assert overlap(0.0, 0.0, 8) == 0.0
    values = overlap(np.array([1e-3, 1e-3]), np.array([1e-4, 2e-3]), 8)
    assert values[0] == pytest.approx(1e-3 * (1 + 0.1**8) ** (1 / 8))
    assert values[1] == pytest.approx(2e-3 * (1 + 0.5**8) ** (1 / 8))
    with pytest.raises(LatencyError, match="p must be >= 1"):
        overlap(1.0, 1.0, 0.5)


def test_streamed_parameters_are_morphs_parameter_count_without_the_input_embedding():
    layers = np.array([1, 8, 24, 12, 40, 7])
    width = np.array([64, 512, 2048, 3072, 5120, 896])
    heads = np.array([1, 8, 16, 48, 40, 14])
    kv = np.array([1, 2, 16, 8, 8, 2])
    for vocab in (50432, 32000):
        expected = parameter_count(layers, width, heads, kv, vocab=vocab) - vocab * width
        got = _streamed_parameters(layers.astype(float), width.astype(float), kv / heads, float(vocab))
        np.testing.assert_array_equal(got, expected.astype(float))


def test_reproduces_the_published_a100_timings():
    # True by construction: the shipped calibration fits its two host coefficients to exactly these two timings
    # (derived by hand in test_shipped_a100_calibration_is_made_from_the_two_published_timings). Asserted once,
    # here, as the check that the model evaluates the file the fit wrote; no other test repeats it.
    p = predict_latency([24, 12], [2048, 3072], hardware="a100-40gb")
    assert p.latency_s[0] == pytest.approx(3.61, rel=1e-5)  # Open-LM-1B
    assert p.latency_s[1] == pytest.approx(1.96, rel=1e-5)  # Morph-1B
    # Morph-1B streams more weights, so its roofline is higher: the roofline alone ranks them wrongly.
    assert p.roofline_s[1] > p.roofline_s[0]
    # Host-bound: most of the time is not the roofline (the paper's 1.9 ms floor vs 7.7-15.6 ms measured).
    assert np.all(p.latency_s > 3 * p.roofline_s)


def test_latency_is_about_linear_in_depth_and_weak_in_width():
    p = predict_latency([12, 24, 24], [3072, 3072, 2048])
    depth = p.decode_s[1] / p.decode_s[0]  # 12 -> 24 layers at width 3072
    width = p.decode_s[1] / p.decode_s[2]  # 2048 -> 3072 (+50%) at 24 layers
    assert 1.75 < depth < 2.0
    assert abs(width - 1) < 0.03


def test_a_pure_sum_needs_an_unphysical_bandwidth_efficiency():
    measurements = published_a100_measurements()
    for eta_bw in (0.5, 0.7, 1.0):
        c_fixed, c_layer = additive_host_coefficients(measurements, "a100-40gb", eta_bw=eta_bw)
        assert c_fixed < 0 < c_layer
    threshold = brentq(lambda e: additive_host_coefficients(measurements, "a100-40gb", eta_bw=e)[0], 1.0, 3.0)
    assert 1.7 < threshold < 1.9
    # With asynchronous overlap the same two timings give positive coefficients.
    shipped = load_calibration(A100_CALIBRATION)
    assert shipped.c_fixed_s > 0 and shipped.c_layer_s > 0 and shipped.overlap_p == 8


def test_other_gpus_transfer_the_host_coefficients():
    a100 = predict_latency([24, 12], [2048, 3072], hardware="a100-40gb", batch=64)
    h100 = predict_latency([24, 12], [2048, 3072], hardware="h100-sxm", batch=64)
    assert np.all(h100.roofline_s < a100.roofline_s)
    assert np.all(h100.latency_s < a100.latency_s)
    # At batch 1 both are host-bound: the same host coefficients give the same time within 1%.
    a100_1 = predict_latency(12, 3072, hardware="a100-40gb")
    h100_1 = predict_latency(12, 3072, hardware="h100-sxm")
    assert float(h100_1.latency_s) == pytest.approx(float(a100_1.latency_s), rel=0.01)


def test_fp32_streams_twice_the_bytes_of_bf16():
    # A one-token prompt keeps every pass memory-bound: twice the bytes, twice the time.
    bf16 = roofline_latency(24, 2048, dtype="bf16", input_tokens=1)
    fp32 = roofline_latency(24, 2048, dtype="fp32", input_tokens=1)
    assert float(fp32 / bf16) == pytest.approx(2.0, rel=1e-5)
    # A 128-token prefill at the A100's 19.5 fp32 TFLOP/s is compute-bound instead: more than twice.
    assert float(roofline_latency(24, 2048, dtype="fp32") / roofline_latency(24, 2048, dtype="bf16")) > 2.01


def test_grouped_query_attention_shrinks_the_cache_time():
    full = roofline_latency(24, 2048, 16, 16, batch=64, input_tokens=2048, output_tokens=512)
    grouped = roofline_latency(24, 2048, 16, 2, batch=64, input_tokens=2048, output_tokens=512)
    assert grouped < 0.5 * full


def test_one_output_token_is_all_prefill():
    p = predict_latency([12, 24], [3072, 2048], output_tokens=1)
    np.testing.assert_array_equal(p.decode_s, 0.0)
    np.testing.assert_allclose(p.latency_s, p.prefill_s)
    two = predict_latency([12, 24], [3072, 2048], output_tokens=2)
    # With no decode step, ms_per_token is what the next step would cost: the one step of a 2-token call.
    np.testing.assert_allclose(p.ms_per_token, two.ms_per_token, rtol=1e-4)


def test_broadcasting_and_vectorisation_match_scalar_calls():
    layers = np.array([[4], [16], [48]])
    widths = np.array([512, 2048, 4096, 8192])
    p = predict_latency(layers, widths, batch=8, hardware="l4")
    assert p.latency_s.shape == (3, 4) and p.latency_s.dtype == np.float64
    for i in range(3):
        for j in range(4):
            one = predict_latency(int(layers[i, 0]), int(widths[j]), batch=8, hardware="l4")
            assert p.latency_s[i, j] == pytest.approx(float(one.latency_s), rel=1e-6)
            assert p.roofline_s[i, j] == pytest.approx(float(one.roofline_s), rel=1e-6)


def test_chunked_evaluation_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    layers, widths = rng.integers(1, 64, 500), rng.integers(1, 64, 500) * 64
    batches = rng.integers(1, 512, 500)
    whole = predict_latency(layers, widths, batch=batches, output_tokens=700)
    monkeypatch.setattr(latency_module, "CHUNK", 37)
    chunked = predict_latency(layers, widths, batch=batches, output_tokens=700)
    for name in ("latency_s", "prefill_s", "decode_s", "ms_per_token", "tokens_per_s", "roofline_s"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"n_layers": 12.5}, ShapeError, "whole numbers"),
        ({"n_layers": 0}, ShapeError, "positive"),
        ({"d_model": [3072, -64]}, ShapeError, "positive"),
        ({"n_heads": 5}, ShapeError, "divide d_model"),
        ({"n_heads": 16, "n_kv_heads": 3}, ShapeError, "n_kv_heads must divide"),
        ({"batch": 0}, LatencyError, "batch"),
        ({"output_tokens": 2.5}, LatencyError, "output_tokens"),
        ({"dtype": "int4"}, LatencyError, "dtype"),
        ({"hardware": "abacus"}, LatencyError, "unknown hardware"),
        ({"calibration": "nonexistent"}, LatencyError, "unknown calibration"),
    ],
)
def test_bad_input_raises_one_clear_error(kwargs, error, message):
    arguments = {"n_layers": 12, "d_model": 3072, **kwargs}
    with pytest.raises(error, match=message):
        predict_latency(**arguments)


def test_cpu_without_its_calibration_says_how_to_make_it(tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(data_dir(), data)
    for extra in (data / "calibrations").glob("cpu-*.json"):
        extra.unlink()
    monkeypatch.setenv("MORPH_DATA", str(data))
    with pytest.raises(LatencyError, match="morph latency calibrate MEASUREMENTS.csv --hardware cpu --save cpu-torch-eager"):
        predict_latency(4, 256, hardware="cpu", dtype="fp32")
    # The roofline needs no calibration, and a named calibration works.
    assert float(roofline_latency(4, 256, hardware="cpu", dtype="fp32")) > 0
    assert float(predict_latency(4, 256, hardware="cpu", dtype="fp32", calibration=_calibration(overlap_p=1)).latency_s) > 0


# Strategies for property tests: shapes, workloads and physical coefficients.
layers_st = st.integers(1, 96)
width_st = st.integers(1, 128).map(lambda k: 64 * k)
batch_st = st.integers(1, 1024)
tokens_st = st.integers(1, 4096)
calibration_st = st.builds(
    _calibration,
    c_fixed_s=st.floats(0, 5e-3),
    c_layer_s=st.floats(0, 2e-3),
    eta_bw=st.floats(0.05, 1.0),
    eta_flops=st.floats(0.05, 1.0),
    overlap_p=st.sampled_from([1.0, 1.5, 2.0, 3.0, 8.0, 16.0]),
)
hardware_st = st.sampled_from(["a100-40gb", "h100-sxm", "l4", "rtx-4090", "cpu"])


@settings(max_examples=150, deadline=None)
@given(layers_st, width_st, batch_st, tokens_st, tokens_st, calibration_st, hardware_st)
def test_never_below_the_roofline_floor(layers, width, batch, prompt, output, calibration, hardware):
    dtype = "fp32" if hardware == "cpu" else "bf16"
    p = predict_latency(layers, width, hardware=hardware, calibration=calibration, batch=batch,
                        input_tokens=prompt, output_tokens=output, dtype=dtype)
    # float32 arithmetic: allow its rounding, nothing more.
    assert float(p.latency_s) >= float(p.roofline_s) * (1 - 1e-6)
    assert float(p.latency_s) >= float(p.prefill_s) > 0


@settings(max_examples=100, deadline=None)
@given(layers_st, width_st, batch_st, tokens_st, st.integers(2, 4096), calibration_st)
def test_monotone_in_depth_batch_and_output_length(layers, width, batch, prompt, output, calibration):
    def predict(**changes):
        args = dict(n_layers=layers, d_model=width, batch=batch, input_tokens=prompt, output_tokens=output)
        args.update(changes)
        return predict_latency(**args, calibration=calibration)

    base = predict()
    tolerance = 1 - 1e-6  # float32 rounding: a host-bound change can be smaller than that
    for changes in ({"n_layers": layers + 1}, {"batch": batch + 1}, {"output_tokens": output + 1},
                    {"input_tokens": prompt + 1}):
        assert float(predict(**changes).latency_s) >= float(base.latency_s) * tolerance, changes
    # The device floor itself grows by a real margin with depth, batch and output length.
    assert float(predict(n_layers=2 * layers).roofline_s) > float(base.roofline_s) * 1.001
    assert float(predict(output_tokens=2 * output).roofline_s) > float(base.roofline_s) * 1.001
    assert float(predict(batch=2 * batch).roofline_s) > float(base.roofline_s)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 10), min_size=4, max_size=4),
    st.integers(1, 300),
    st.integers(0, 300),
)
# A subnormal slope difference overflows -alpha / beta: found by this property.
@example([1.0, 0.0, 0.5, 5e-324], 1, 10)
@example([0.5, 5e-324, 1.0, 0.0], 1, 10)
def test_closed_form_sum_of_the_larger_line_is_exact(coefficients, first, length):
    compute_a, compute_b, memory_a, memory_b = (np.array(c) for c in coefficients)
    last = first + length - 1
    steps = np.arange(first, last + 1)
    brute = np.maximum(compute_a + compute_b * steps, memory_a + memory_b * steps).sum()
    got = _max_affine_sum(compute_a, compute_b, memory_a, memory_b, float(first), float(last))
    assert float(got) == pytest.approx(brute, rel=1e-12, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(layers_st, width_st, batch_st, tokens_st, st.integers(2, 2048), calibration_st)
def test_decode_time_matches_the_step_by_step_sum(layers, width, batch, prompt, output, calibration):
    work = generation_work(layers, width, None, None, get_hardware("a100-40gb"), batch, prompt, output, "bf16", 50432)
    host = calibration.c_fixed_s + calibration.c_layer_s * layers
    compute_a, compute_b, memory_a, memory_b = decode_lines(work, calibration.eta_bw, calibration.eta_flops)
    k = np.arange(1, output)
    device = np.maximum(compute_a + compute_b * k, memory_a + memory_b * k)
    stepwise = overlap(np.full(k.shape, host), device, calibration.overlap_p).sum()
    decode = float(evaluate(work, calibration)[2])
    # Combining host and device time over runs of steps never exceeds the step-by-step sum
    # (Minkowski) and stays within 1% of it; exactly equal when times add.
    assert decode <= stepwise * (1 + 1e-9)
    assert decode >= stepwise * 0.99
    if calibration.overlap_p == 1:
        assert decode == pytest.approx(stepwise, rel=1e-9)


# --- calibrations -----------------------------------------------------------------------------


def test_shipped_a100_calibration_is_made_from_the_two_published_timings():
    shipped = load_calibration(A100_CALIBRATION)
    rebuilt = calibrate_published_a100()
    assert rebuilt.calibration.coefficients == pytest.approx(shipped.coefficients, rel=1e-9)
    for text in ("name", "hardware", "framework", "protocol", "source", "notes", "provenance", "fitted"):
        assert getattr(rebuilt.calibration, text) == getattr(shipped, text), text
    assert shipped.fitted == ("c_fixed_s", "c_layer_s")
    assert (shipped.eta_bw, shipped.eta_flops, shipped.overlap_p) == (0.7, 0.5, 8.0)
    assert shipped.n_measurements == 2 and shipped.fit_max_error < 1e-9
    assert shipped.hardware == "a100-40gb" and "3.61" in shipped.source and "1.96" in shipped.source
    np.testing.assert_allclose(rebuilt.table["measured_s"], [3.61, 1.96])
    # By hand: at batch 1 the host time h dominates, and with p = 8 the overlap
    # (h^8 + g^8)^(1/8) is h within (g/h)^8 / 8. One call is 256 forward passes
    # (the prefill and 255 decode steps), each costing c_fixed + L * c_layer:
    #   3.61 s = 256 (c_fixed + 24 c_layer),  1.96 s = 256 (c_fixed + 12 c_layer)
    #   c_layer = (3.61 - 1.96) / (256 * 12) = 0.5371 ms,  c_fixed = 1.96 / 256 - 12 c_layer = 1.2109 ms.
    # What the sketch leaves out: 12x3072 streams 3.3 GB of bf16 weights per step, 3.1 ms at
    # 0.7 x 1555 GB/s against 7.7 ms of host time, so g/h = 0.4 adds 0.4^8 / 8 = 4e-5 to its
    # time; the fit takes that out of c_fixed (about 5e-4 of it). 1e-3 relative covers it.
    c_layer = (3.61 - 1.96) / (256 * 12)
    c_fixed = 1.96 / 256 - 12 * c_layer
    assert shipped.c_layer_s == pytest.approx(c_layer, rel=1e-3)
    assert shipped.c_fixed_s == pytest.approx(c_fixed, rel=1e-3)


def test_published_measurements_come_from_the_shipped_table():
    models = pd.read_csv(data_dir() / "models_1b_eval.csv").set_index("model")
    frame = published_a100_measurements()
    assert frame["latency_s"].tolist() == [models.loc["Open-LM-1B", "latency_s"], models.loc["Morph-1B", "latency_s"]]
    assert frame[["n_layers", "d_model"]].values.tolist() == [[24, 2048], [12, 3072]]
    assert set(frame["batch"]) == {1} and set(frame["input_tokens"]) == {128} and set(frame["output_tokens"]) == {256}


def test_calibration_round_trips_through_json(tmp_path):
    original = _calibration().replace(name="round-trip", fitted=("c_fixed_s",), fit_mape=0.01, notes="n",
                                      provenance={"machine": "m"})
    path = original.save(tmp_path / "round-trip.json")
    assert json.loads(path.read_text())["coefficients"]["eta_bw"] == 0.7
    assert load_calibration(path) == original
    assert A100_CALIBRATION in calibrations()


@pytest.mark.parametrize(
    "changes, message",
    [({"eta_bw": 0.0}, "eta_bw"), ({"eta_flops": 1.5}, "eta_flops"), ({"c_fixed_s": -1e-3}, "c_fixed_s"),
     ({"overlap_p": 0.5}, "overlap_p"), ({"name": "../evil"}, "name"), ({"fitted": ("speed",)}, "speed")],
)
def test_calibration_rejects_unphysical_values(changes, message):
    with pytest.raises(LatencyError, match=message):
        _calibration().replace(**changes)


def test_unknown_calibration_lists_the_known_ones():
    with pytest.raises(LatencyError, match=A100_CALIBRATION):
        load_calibration("nope")


def _synthetic(truth: Calibration, hardware: str, noise: float, seed: int = 0) -> pd.DataFrame:
    """Timings generated from known coefficients (for testing the fit, not measurements)."""
    dtype = "fp32" if hardware == "cpu" else "bf16"
    rows = [
        dict(n_layers=layers, d_model=width, batch=batch, input_tokens=prompt, output_tokens=32, dtype=dtype)
        for layers in (2, 6, 12, 24) for width in (256, 768, 2048) for batch in (1, 8, 64) for prompt in (16, 256)
    ]
    frame = pd.DataFrame(rows)
    p = predict_latency(frame["n_layers"], frame["d_model"], hardware=hardware, calibration=truth,
                        batch=frame["batch"], input_tokens=frame["input_tokens"], output_tokens=32, dtype=dtype)
    rng = np.random.default_rng(seed)
    frame["latency_s"] = p.latency_s * np.exp(rng.normal(0.0, noise, len(frame)))
    return frame


def test_calibrate_recovers_known_cpu_coefficients():
    truth = Calibration("truth", "cpu", c_fixed_s=2e-3, c_layer_s=4e-4, eta_bw=0.6, eta_flops=0.4, overlap_p=1)
    result = calibrate(_synthetic(truth, "cpu", noise=0.02), "cpu", bootstrap=0)
    got = result.calibration
    assert got.overlap_p == 1.0 and "overlap_p" not in got.fitted  # fixed: a CPU runs synchronously
    for name in ("c_fixed_s", "c_layer_s", "eta_bw", "eta_flops"):
        assert getattr(got, name) == pytest.approx(getattr(truth, name), rel=0.1), name
        assert 0 < result.stderr[name] < 0.1 * getattr(truth, name)
    assert 0.005 < result.mape < 0.04 and result.below_roofline == 0


def test_calibrate_recovers_all_five_gpu_coefficients_without_noise():
    truth = Calibration("truth", "a100-40gb", c_fixed_s=1.5e-3, c_layer_s=3e-4, eta_bw=0.8, eta_flops=0.6, overlap_p=6)
    five = tuple(name for name in truth.coefficients if name != "c_layer_device_s")  # the sixth is 0 in eager stacks
    result = calibrate(_synthetic(truth, "a100-40gb", noise=0.0), "a100-40gb", fit=five, bootstrap=0)
    assert result.calibration.coefficients == pytest.approx(truth.coefficients, rel=1e-3)
    assert result.max_error < 1e-5


def test_leave_one_out_predicts_each_row_from_the_others():
    truth = Calibration("truth", "cpu", c_fixed_s=2e-3, c_layer_s=4e-4, eta_bw=0.6, eta_flops=0.4, overlap_p=1)
    frame = _synthetic(truth, "cpu", noise=0.0).iloc[::3].reset_index(drop=True)
    exact = leave_one_out(frame, "cpu")
    assert len(exact.table) == len(frame) and exact.max_error < 1e-4
    # A 30% outlier is fitted poorly when held out, and leave-one-out names it.
    frame.loc[5, "latency_s"] *= 1.3
    loo = leave_one_out(frame, "cpu")
    assert loo.worst_row == 5 and loo.max_error > 0.2
    assert loo.mape > calibrate(frame, "cpu", bootstrap=0).mape


def test_leave_one_out_refits_equal_refits_from_calibrates_own_starting_points():
    # Each held-out refit starts from the full fit's optimum; calibrate() on the same rows starts from its
    # three starting points. Where both reach the optimum they agree to the optimiser's tolerance (1e-12 in
    # cost): 1e-6 relative on the held-out prediction leaves room for any CPU's rounding.
    measurements = load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv")
    loo = leave_one_out(measurements, "cpu")
    for i in (0, 7, 19):
        rest = measurements.drop(index=measurements.index[i])
        rest.attrs = dict(measurements.attrs)
        fresh = calibrate(rest, "cpu", bootstrap=0).calibration
        row = measurements.iloc[i]
        predicted = predict_latency(int(row["n_layers"]), int(row["d_model"]), calibration=fresh, batch=int(row["batch"]),
                                    input_tokens=int(row["input_tokens"]), output_tokens=int(row["output_tokens"]),
                                    dtype=row["dtype"], hardware="cpu", band=False).latency_s
        assert loo.table["predicted_s"][i] == pytest.approx(float(predicted), rel=1e-6)


def test_leave_one_out_needs_spare_rows():
    with pytest.raises(LatencyError, match="leave-one-out needs more measurements"):
        leave_one_out(published_a100_measurements(), "a100-40gb", fit=("c_fixed_s", "c_layer_s"))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"fit": ("speed",)}, "unknown coefficient"), ({"fit": ("eta_bw",), "fixed": {"eta_bw": 0.5}}, "both fitted"),
     ({"fit": ("c_fixed_s",), "fixed": {"eta_bw": 2.0}}, r"fixed eta_bw = 2 is outside its physical range \(0, 1\]"),
     ({"fit": ("c_fixed_s",), "fixed": {"overlap_p": 0.5}}, r"overlap_p = 0.5 is outside"),
     ({"fit": ()}, "at least one")],
)
def test_calibrate_rejects_bad_requests(kwargs, message):
    with pytest.raises(LatencyError, match=message):
        calibrate(published_a100_measurements(), "a100-40gb", **kwargs)


def test_rows_faster_than_the_roofline_are_counted():
    frame = published_a100_measurements()
    frame.loc[0, "latency_s"] = 0.1  # below the 0.448 s weight-streaming floor
    assert calibrate(frame, "a100-40gb", fit=("c_fixed_s", "c_layer_s")).below_roofline == 1


# --- measurement tables -----------------------------------------------------------------------

CSV = """# machine: AMD EPYC, 2 cores
# torch: 2.13.0
# protocol: median of 5 runs after a warm-up
#
n_layers,d_model,n_heads,batch,input_tokens,output_tokens,dtype,latency_s,latency_iqr_s,trials
2,256,4,1,32,64,fp32,0.150,0.002,5
4,512,,1,32,64,float32,0.420,,5
"""


def test_measurement_table_with_provenance(tmp_path):
    path = tmp_path / "timings.csv"
    path.write_text(CSV)
    frame = load_measurements(path)
    assert frame.attrs["metadata"] == {"machine": "AMD EPYC, 2 cores", "torch": "2.13.0",
                                       "protocol": "median of 5 runs after a warm-up"}
    assert frame.attrs["source"] == "timings.csv"
    assert frame["n_layers"].tolist() == [2, 4] and frame["latency_s"].tolist() == [0.15, 0.42]
    assert frame["dtype"].tolist() == ["fp32", "fp32"] and frame["vocab"].tolist() == [50432, 50432]
    assert frame["n_heads"].iloc[0] == 4 and np.isnan(frame["n_heads"].iloc[1])
    assert np.isnan(frame["latency_iqr_s"].iloc[1])
    assert load_measurements(CSV.encode()).shape == frame.shape


@pytest.mark.parametrize(
    "text, message",
    [
        ("n_layers,d_model,batch\n2,256,1\n", "missing the column(s) input_tokens, output_tokens, latency_s"),
        ("# a: b\n", "holds no table"),
        ("n_layers,d_model,batch,input_tokens,output_tokens,latency_s\n2,256,1,32,64,\n", "'latency_s', row 1 is empty"),
        ("n_layers,d_model,batch,input_tokens,output_tokens,latency_s\n2.5,256,1,32,64,0.1\n", "whole number"),
        ("n_layers,d_model,batch,input_tokens,output_tokens,latency_s\n2,256,0,32,64,0.1\n", "'batch', row 1"),
        ("n_layers,d_model,batch,input_tokens,output_tokens,latency_s,dtype\n2,256,1,32,64,0.1,int8\n", "dtype"),
        ("n_layers,d_model,n_heads,batch,input_tokens,output_tokens,latency_s\n2,256,3,1,32,64,0.1\n", "do not divide"),
        ("n_layers,d_model,batch,input_tokens,output_tokens,latency_s\n2,256,1,32,64,fast\n", "not a finite number"),
    ],
)
def test_measurement_table_errors_name_the_problem(text, message):
    with pytest.raises(LatencyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_measurements(text.encode())


def test_missing_measurement_file():
    with pytest.raises(LatencyError, match="does not exist"):
        load_measurements("no/such/file.csv")


def test_hardware_can_come_from_the_table():
    truth = Calibration("truth", "cpu", c_fixed_s=2e-3, c_layer_s=4e-4, eta_bw=0.6, eta_flops=0.4, overlap_p=1)
    frame = _synthetic(truth, "cpu", noise=0.0).iloc[:12]
    frame.attrs["metadata"] = {"hardware": "cpu"}
    assert calibrate(frame, fit=("c_fixed_s", "c_layer_s")).calibration.hardware == "cpu"
    frame.attrs["metadata"] = {}
    with pytest.raises(LatencyError, match="--hardware"):
        calibrate(frame, fit=("c_fixed_s", "c_layer_s"))


# --- the command line -------------------------------------------------------------------------


def test_cli_json_keeps_the_order_of_the_shapes(capsys):
    assert main(["latency", "--shape", "12x3072", "--shape", "24x2048", "--shape", "16x2560x20", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["hardware"] == "a100-40gb" and payload["calibration"] == A100_CALIBRATION
    assert [(s["n_layers"], s["d_model"], s["n_heads"]) for s in payload["shapes"]] == [
        (12, 3072, 48), (24, 2048, 32), (16, 2560, 20)]
    keys = {"n_layers", "d_model", "n_heads", "N", "latency_s", "ms_per_token", "prefill_s", "tokens_per_s", "roofline_s"}
    assert all(keys <= set(s) for s in payload["shapes"])
    direct = predict_latency([12, 24, 16], [3072, 2048, 2560], [48, 32, 20], band=False).latency_s
    assert [s["latency_s"] for s in payload["shapes"]] == pytest.approx(direct, rel=1e-6)  # printed to 7 digits
    assert payload["shapes"][0]["N"] == 1668885504


def test_cli_table(capsys):
    assert main(["latency", "--shape", "24x2048", "--shape", "12x3072", "--hardware", "h100-sxm", "--batch", "8"]) == 0
    out = capsys.readouterr().out
    assert "transferred" in out and "batch 8" in out
    assert out.index("24x2048") < out.index("12x3072")


@pytest.mark.parametrize(
    "argv",
    [
        ["latency", "--shape", "12x3072", "--hardware", "tpu"],
        ["latency", "--shape", "12x3072", "--calibration", "nope"],
        ["latency", "--shape", "12.5x3072"],
        ["latency", "--shape", "0x3072"],
        ["latency", "--shape", "12x3072x5"],
        ["latency", "--shape", "12x3000"],
        ["latency"],
        ["latency", "calibrate", "no-such-file.csv", "--hardware", "cpu"],
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("morph: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_non_positive_batch_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["latency", "--shape", "12x3072", "--batch", "0"])
    assert exit_info.value.code == 2
    assert "must be > 0" in capsys.readouterr().err


def test_cli_calibrate_reports_coefficients_and_leave_one_out(tmp_path, capsys):
    truth = Calibration("truth", "cpu", c_fixed_s=2e-3, c_layer_s=4e-4, eta_bw=0.6, eta_flops=0.4, overlap_p=1)
    frame = _synthetic(truth, "cpu", noise=0.01).iloc[::4]
    path = tmp_path / "synthetic.csv"
    path.write_text("# machine: synthetic, for a test\n# framework: none\n" + frame.to_csv(index=False))
    target = tmp_path / "mine.json"
    assert main(["latency", "calibrate", str(path), "--hardware", "cpu", "--save", str(target), "--json",
                 "--bootstrap", "10"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["coefficients"]) == {"c_fixed_s", "c_layer_s", "eta_bw", "eta_flops", "overlap_p",
                                            "c_layer_device_s"}
    assert payload["latency_basis"] == "measured"
    assert payload["coefficients"]["c_layer_s"] == pytest.approx(4e-4, rel=0.1)
    assert 0 < payload["loo_mape"] < 0.05 and payload["loo_mape"] <= payload["loo_max_error"] < 0.2
    assert len(payload["rows"]) == len(frame) and {"measured_s", "predicted_s", "loo_error"} <= set(payload["rows"][0])
    saved = load_calibration(target)
    assert saved.name == "mine" and saved.loo_mape == pytest.approx(payload["loo_mape"])
    assert saved.provenance["machine"] == "synthetic, for a test" and saved.framework == "none"
    # The saved calibration drives predictions by path.
    assert main(["latency", "--shape", "4x512", "--hardware", "cpu", "--dtype", "fp32", "--calibration",
                 str(target), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibration"] == "mine"


def test_cli_calibrate_text_report(tmp_path, capsys):
    truth = Calibration("truth", "cpu", c_fixed_s=2e-3, c_layer_s=4e-4, eta_bw=0.6, eta_flops=0.4, overlap_p=1)
    path = tmp_path / "t.csv"
    path.write_text(_synthetic(truth, "cpu", noise=0.0).iloc[::4].to_csv(index=False))  # all four depths
    assert main(["latency", "calibrate", str(path), "--hardware", "cpu", "--fit", "c_fixed_s,c_layer_s",
                 "--fix", "eta_bw=0.6", "--fix", "eta_flops=0.4"]) == 0
    out = capsys.readouterr().out
    assert "c_fixed_s  0.002 s" in out and "(fixed)" in out and "leave-one-out error: mean 0.00%" in out


def _small_sweep(folder: Path, rows: int = 8) -> str:
    """The shipped CPU sweep's header and its first ``rows`` timings: enough for the options, quick to fit."""
    lines = (data_dir() / "measurements" / "cpu-torch-eager.csv").read_text(encoding="utf-8").splitlines()
    comments = [line for line in lines if line.startswith("#")]
    table = [line for line in lines if not line.startswith("#")]
    path = folder / "small-sweep.csv"
    path.write_text("\n".join(comments + table[: rows + 1]) + "\n", encoding="utf-8")
    return str(path)


def test_cli_json_before_the_calibrate_word_is_kept(capsys, tmp_path):
    sweep = _small_sweep(tmp_path)
    for argv in (["latency", "--json", "calibrate", sweep, "--bootstrap", "10"],
                 ["latency", "calibrate", sweep, "--json", "--bootstrap", "10"]):
        assert main(argv) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["hardware"] == "cpu" and payload["n_measurements"] == 8
    assert main(["latency", "calibrate", sweep, "--bootstrap", "10"]) == 0
    assert capsys.readouterr().out.startswith("calibration fitted for cpu")


def test_calibrate_reads_the_device_from_the_header(tmp_path):
    """The shipped CPU sweep says `device: cpu` in its header; no --hardware is needed."""
    from morph.latency.calibration import calibrate, load_measurements

    sweep = load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv")
    assert sweep.attrs["metadata"]["device"] == "cpu"
    assert calibrate(sweep, bootstrap=0).calibration.hardware == "cpu"
    # A header alone is enough (no device column), and a GPU header still asks.
    truth = Calibration("truth", "cpu", c_fixed_s=2e-3, c_layer_s=4e-4, eta_bw=0.6, eta_flops=0.4, overlap_p=1)
    body = _synthetic(truth, "cpu", noise=0.0).iloc[::4].drop(columns=["device"], errors="ignore").to_csv(index=False)
    (tmp_path / "cpu.csv").write_text("# device: cpu\n" + body)
    assert calibrate(tmp_path / "cpu.csv", bootstrap=0).calibration.hardware == "cpu"
    (tmp_path / "gpu.csv").write_text("# device: cuda (NVIDIA H200, CUDA 12.8)\n" + body)
    with pytest.raises(LatencyError, match="--hardware NAME"):
        calibrate(tmp_path / "gpu.csv")


def test_calibrate_save_goes_to_the_user_data_folder(tmp_path, monkeypatch, capsys):
    from morph.userdata import user_data_dir

    home = tmp_path / "home"
    monkeypatch.setenv("MORPH_DATA_HOME", str(home))
    shipped = sorted(p.name for p in (data_dir() / "calibrations").iterdir())
    sweep = _small_sweep(tmp_path)
    assert main(["latency", "calibrate", sweep, "--save", "my-laptop", "--json", "--bootstrap", "10"]) == 0
    saved = json.loads(capsys.readouterr().out)["saved"]
    assert Path(saved) == home / "calibrations" / "my-laptop.json" and Path(saved).is_file()
    assert sorted(p.name for p in (data_dir() / "calibrations").iterdir()) == shipped  # the package is untouched
    # Found again by name, and listed with the shipped ones.
    assert "my-laptop" in calibrations() and A100_CALIBRATION in calibrations()
    assert load_calibration("my-laptop").hardware == "cpu"
    assert main(["latency", "--shape", "4x512", "--hardware", "cpu", "--dtype", "fp32", "--calibration", "my-laptop",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibration"] == "my-laptop"
    # Where the folder is when MORPH_DATA_HOME is not set.
    monkeypatch.delenv("MORPH_DATA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir() == tmp_path / "xdg" / "morph"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert user_data_dir() == tmp_path / "user" / ".local" / "share" / "morph"


def test_cli_calibrate_missing_columns_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("n_layers,d_model\n2,256\n")
    assert main(["latency", "calibrate", str(path), "--hardware", "cpu"]) == 2
    assert "missing the column(s) batch" in capsys.readouterr().err


def test_cli_probe_cpu_prints_a_hardware_row(monkeypatch, capsys):
    import morph.cli.latency as cli_latency

    fixed = Hardware(name="cpu", label="test", kind="cpu", memory_bandwidth_gb_s=20.0, bf16_tflops=None,
                     fp32_tflops=0.1, memory_gb=8.0, default_calibration="cpu-torch-eager", source="measured")
    monkeypatch.setattr(cli_latency, "probe_cpu", lambda: fixed)
    assert main(["latency", "probe-cpu"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split(",")[:4] == ["name", "label", "kind", "memory_bandwidth_gb_s"]
    assert row.split(",") == ["cpu", "test", "cpu", "20.0", "", "0.1", "8.0", "cpu-torch-eager", "measured"]


@pytest.mark.parametrize("argv, code", [(["latency", "--shape", "24x2048", "--json"], 0),
                                        (["latency", "--shape", "24x2048", "--hardware", "tpu"], 2)])
def test_python_dash_m_morph_latency(argv, code):
    result = subprocess.run([sys.executable, "-m", "morph", *argv], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == code
    if code == 0:
        assert json.loads(result.stdout)["shapes"][0]["shape"] == "24x2048"
    else:
        assert result.stderr.count("\n") == 1 and "unknown hardware 'tpu'" in result.stderr


def test_errors_are_morph_errors():
    assert issubclass(LatencyError, MorphError) and issubclass(ShapeError, MorphError)


def test_shipped_cpu_calibration_meets_its_leave_one_out_target():
    """The CPU sweep is predicted within 10% on average by a model fitted without each shape."""
    from morph.latency.calibration import leave_one_out, load_measurements

    measurements = load_measurements(data_dir() / "measurements" / "cpu-torch-eager.csv")
    loo = leave_one_out(measurements, "cpu")
    assert len(measurements) >= 24
    assert loo.mape <= 0.10
    shipped = load_calibration("cpu-torch-eager")
    assert shipped.loo_mape == pytest.approx(loo.mape, rel=1e-3)
    assert shipped.overlap_p == 1.0  # synchronous: host and arithmetic share the cores
    # The calibrated model reproduces the same-size spread of the sweep (3.3x measured).
    n = parameter_count(measurements["n_layers"], measurements["d_model"])
    same_size = measurements[(n >= 1.45e8) & (n <= 1.55e8)]
    assert len(same_size) >= 6
    predicted = predict_latency(same_size["n_layers"], same_size["d_model"], hardware="cpu", batch=1,
                                input_tokens=64, output_tokens=32, dtype="fp32").latency_s
    assert predicted.max() / predicted.min() == pytest.approx(
        same_size["latency_s"].max() / same_size["latency_s"].min(), rel=0.15)


def test_the_optimisers_bounds_lie_inside_the_physical_ranges():
    from morph.latency import COEFFICIENTS
    from morph.latency.calibration import _BOUNDS, _RANGES

    assert set(_BOUNDS) == set(_RANGES) == set(COEFFICIENTS)
    for name, (low, open_low, high) in _RANGES.items():
        lower, upper = _BOUNDS[name]
        assert (lower > low if open_low else lower >= low) and upper <= high and lower < upper, name


def test_a_long_prompts_prefill_is_its_flops_at_peak_by_hand():
    # No host time and full efficiency: the prefill of 8 x 1024 over 8,192 prompt tokens is compute-bound and takes
    # its FLOPs over the A100's 312 TFLOPS (bf16). By the paper's formula, ffn(1024) = 2816 and
    # N = 8 (4 1024^2 + 3 1024 2816 + 2 1024) + 1024 + 2 50432 1024 = 206,062,592, of which all but the input
    # embedding (50432 x 1024) is streamed: P = 154,420,224. FLOPs = 2 P 8192 for the products plus
    # 2 L d 8192 x 8193 for causal attention.
    ideal = Calibration("ideal", "a100-40gb", c_fixed_s=0.0, c_layer_s=0.0, eta_bw=1.0, eta_flops=1.0, overlap_p=1.0)
    streamed = 206_062_592 - 50_432 * 1024
    flops = 2 * streamed * 8192 + 2 * 8 * 1024 * 8192 * 8193
    p = predict_latency(8, 1024, calibration=ideal, input_tokens=8192, output_tokens=1, band=False)
    # float32 arithmetic: 1e-6 relative.
    assert float(p.prefill_s) == pytest.approx(flops / 312e12, rel=1e-6)
