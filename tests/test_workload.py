"""The Workload value: one serving setting, validated once, taken by every layer."""

from __future__ import annotations

import numpy as np
import pytest

from morph import PAPER_WORKLOAD, Workload, load_candidates, predict_latency
from morph.cli import build_parser
from morph.cli.common import workload_from_args
from morph.errors import LatencyError
from morph.frontier import candidates_from_table, evaluate_candidates
from morph.latency.calibration import published_a100_measurements, timed_under
from morph.latency.measure import PAPER_PROTOCOL


def test_paper_workload_is_the_papers_timing_setting():
    # Section 6: Hugging Face generate on an A100 40GB, bf16, batch 1, 128 prompt and 256 output tokens.
    assert (PAPER_WORKLOAD.hardware_name, PAPER_WORKLOAD.dtype, PAPER_WORKLOAD.batch) == ("a100-40gb", "bf16", 1)
    assert (PAPER_WORKLOAD.input_tokens, PAPER_WORKLOAD.output_tokens) == (128, 256)
    assert PAPER_WORKLOAD.resolved_calibration().name == "a100-40gb-hf-generate"




@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(hardware="abacus"), "abacus"),
        (dict(dtype="int3"), "int3"),
        (dict(dtype=16), "dtype"),
        (dict(batch=0), "batch must be a whole number >= 1"),
        (dict(input_tokens=1.5), "input_tokens must be a whole number"),
        (dict(output_tokens=True), "output_tokens must be a whole number"),
        (dict(batch=float("nan")), "batch"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(changes, message):
    with pytest.raises(LatencyError, match=message):
        Workload(**changes)


def test_aliases_and_numpy_counts_are_normalised():
    workload = Workload(dtype="bfloat16", batch=np.int64(4), input_tokens=64.0)
    assert (workload.dtype, workload.batch, workload.input_tokens) == ("bf16", 4, 64)
    assert type(workload.batch) is int


def test_an_override_changes_one_setting_and_broadcasts():
    # Keyword arguments override the workload; arrays broadcast against the shapes.
    batches = np.array([1, 8])
    over = predict_latency(12, 3072, workload=PAPER_WORKLOAD, batch=batches)
    one_by_one = [float(predict_latency(12, 3072, workload=PAPER_WORKLOAD.replace(batch=b)).latency_s) for b in batches]
    np.testing.assert_array_equal(over.latency_s, one_by_one)


def test_the_default_workload_is_the_paper_setting_with_the_hardware_default_calibration():
    assert Workload().replace(calibration="a100-40gb-hf-generate") == PAPER_WORKLOAD
    np.testing.assert_array_equal(predict_latency(12, 3072).latency_s, predict_latency(12, 3072, workload=PAPER_WORKLOAD).latency_s)


def test_timed_like_ignores_the_calibration_only():
    assert Workload().timed_like(PAPER_WORKLOAD)
    assert not PAPER_WORKLOAD.replace(batch=2).timed_like(PAPER_WORKLOAD)
    assert len(timed_under(published_a100_measurements(), PAPER_WORKLOAD)) == 2
    assert len(timed_under(published_a100_measurements(), PAPER_WORKLOAD.replace(dtype="fp16"))) == 0
    assert PAPER_PROTOCOL.workload("a100-40gb").timed_like(PAPER_WORKLOAD)


def test_an_evaluation_keeps_its_workload():
    candidates = candidates_from_table(load_candidates())
    evaluation = evaluate_candidates(candidates, "bian2025", workload=PAPER_WORKLOAD.replace(batch=4))
    assert evaluation.workload.batch == 4 and evaluation.law == "bian2025"
    assert evaluation.settings == {"law": "bian2025", **PAPER_WORKLOAD.replace(batch=4).to_dict()}


_SERVING = ["--hardware", "h100-sxm", "--calibration", "cpu-torch-eager", "--batch", "4", "--input-tokens", "64",
            "--output-tokens", "32", "--dtype", "fp16"]


@pytest.mark.parametrize("command", [["latency", "--shape", "12x3072"],
                                     ["frontier", "--candidates", "x.csv", "--latency-budget", "2"]])
def test_subcommands_with_a_workload_take_the_same_options(command):
    args = build_parser().parse_args([*command, *_SERVING])
    assert workload_from_args(args) == Workload(hardware="h100-sxm", calibration="cpu-torch-eager", batch=4,
                                                input_tokens=64, output_tokens=32, dtype="fp16")


def test_measure_takes_the_protocol_part_of_the_workload():
    # Measurements time a protocol on the machine at hand: no hardware preset or calibration to name;
    # unset options follow the device (None here).
    args = build_parser().parse_args(["measure", "--shape", "6x512", *_SERVING[4:]])
    assert (args.batch, args.input_tokens, args.output_tokens, args.dtype) == (4, 64, 32, "fp16")
    assert build_parser().parse_args(["measure", "--shape", "6x512"]).batch is None
