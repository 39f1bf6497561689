"""Latency measurement: the torch model, its KV cache, the file format and the CLI."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from morph.cli import build_parser, main
from morph.cli.measure import _stacks
from morph.latency import measure as measure_module
from morph.latency.calibration import load_measurements
from morph.latency.measure import (
    COLUMNS,
    CPU_PROTOCOL,
    FRAMEWORKS,
    PROVENANCE_KEYS,
    STACKS,
    Measurement,
    MeasurementProtocol,
    measure_shape,
    named_sweep,
    provenance,
    read_measurements,
    read_shapes_csv,
    summarise_times,
    write_measurements,
)
from morph.latency.stacks import stack_names
from morph.errors import DataError, LatencyError, ShapeError
from morph.shapes import Shape, parameter_count

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "data" / "measurements" / "cpu-torch-eager.csv"
# PyTorch is in the measure extra, which the test install includes: a missing torch is a broken install.
import torch  # noqa: E402


# --- the model -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [
        Shape(2, 64),
        Shape(8, 512),  # a shape of the paper's runs (N = 78,914,048)
        Shape(3, 384, 6),
        Shape(4, 256, 8, 2),  # grouped-query attention, 4 query heads per key/value head
        Shape(2, 128, 4, 1),  # multi-query attention
        Shape(3, 192, tied_embeddings=True),
        Shape(12, 3072),  # Morph-1B, built on the meta device (no memory)
    ],
    ids=str,
)
def test_torch_parameter_count_equals_formula(shape):
    from morph.latency.decoder import Decoder

    with torch.device("meta"):
        model = Decoder(shape)
    counted = sum(p.numel() for p in model.parameters())
    formula = int(
        parameter_count(
            shape.n_layers, shape.d_model, shape.n_heads, shape.n_kv_heads, tied_embeddings=shape.tied_embeddings
        )
    )
    assert counted == formula == shape.N
    if shape == Shape(8, 512):
        assert counted == 78_914_048
    if shape == Shape(12, 3072):
        assert counted == 1_668_885_504


def test_built_model_keeps_tied_head_and_unit_gains():
    from morph.latency.decoder import build_decoder

    tied = build_decoder(Shape(2, 64, tied_embeddings=True))
    assert tied.head.weight.data_ptr() == tied.embedding.weight.data_ptr()
    assert sum(p.numel() for p in tied.parameters()) == Shape(2, 64, tied_embeddings=True).N
    model = build_decoder(Shape(2, 64), seed=3)
    assert torch.all(model.norm.weight == 1)
    std = float(model.head.weight.std())
    assert 0.019 < std < 0.021  # INIT_STD over 3.2M draws
    again = build_decoder(Shape(2, 64), seed=3)
    assert torch.equal(model.head.weight, again.head.weight)  # the seed fixes the weights


@pytest.mark.parametrize("shape", [Shape(2, 64), Shape(3, 128, 4, 2)], ids=str)
def test_kv_cache_decode_matches_full_recomputation(shape):
    from morph.latency.decoder import build_decoder, greedy_generate

    model = build_decoder(shape, seed=1)
    prompt = torch.randint(0, shape.vocab, (2, 7), generator=torch.Generator().manual_seed(0))
    output_tokens = 6
    with torch.inference_mode():
        new, logits = greedy_generate(model, prompt, output_tokens, return_logits=True)
        full = model(torch.cat([prompt, new], dim=1))  # no cache reused: one causal pass
    assert new.shape == (2, output_tokens)
    assert logits.shape == (2, output_tokens, shape.vocab)
    # Position 6 + i of the full pass predicts new token i.
    recomputed = full[:, prompt.shape[1] - 1 : prompt.shape[1] - 1 + output_tokens]
    assert float((recomputed - logits).abs().max()) < 1e-4
    assert torch.equal(recomputed.argmax(dim=-1), new)


def test_chunked_prefill_after_cache_matches_one_pass():
    from morph.latency.decoder import KVCache, build_decoder

    model = build_decoder(Shape(2, 128, 2), seed=2)
    tokens = torch.randint(0, 50432, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        full = model(tokens)
        cache = KVCache.allocate(model, 1, 9)
        first = model(tokens[:, :4], cache, 0)
        rest = model(tokens[:, 4:], cache, 4)  # several tokens after a filled cache: explicit mask
    assert float((torch.cat([first, rest], dim=1) - full).abs().max()) < 1e-4


def test_generate_rejects_zero_output_tokens():
    from morph.latency.decoder import build_decoder, greedy_generate

    with pytest.raises(ValueError):
        greedy_generate(build_decoder(Shape(1, 64)), torch.zeros((1, 3), dtype=torch.long), 0)


# --- statistics and protocol -----------------------------------------------------------------------------------


def test_summarise_times():
    stats = summarise_times([0.5, 0.1, 0.3, 0.2, 0.4])
    assert stats == pytest.approx({"median": 0.3, "min": 0.1, "max": 0.5, "iqr": 0.2})
    with pytest.raises(LatencyError):
        summarise_times([])


@pytest.mark.parametrize(
    "kwargs", [{"trials": 0}, {"batch": -1}, {"warmup": -1}, {"output_tokens": 1.5}, {"dtype": "fp8"}, {"threads": 0}]
)
def test_protocol_rejects_bad_values(kwargs):
    with pytest.raises(LatencyError):
        MeasurementProtocol(**kwargs)


def test_protocol_sentence_says_what_is_timed():
    text = CPU_PROTOCOL.sentence()
    for fragment in ("1 untimed warm-up", "5 kept trials", "median", "64 random token ids", "32 new tokens",
                     "scaled down", "CPU"):
        assert fragment in text


# --- shapes from files -----------------------------------------------------------------------------------------


def test_cpu_default_sweep_design():
    shapes = named_sweep("cpu-default")
    assert len(shapes) >= 24
    assert len(set(shapes)) == len(shapes)
    depth = sorted(s.n_layers for s in shapes if s.d_model == 512)
    assert depth[0] <= 2 and depth[-1] >= 24
    widths = sorted(s.d_model for s in shapes if s.n_layers == 6)
    assert widths[0] <= 256 and widths[-1] >= 1536
    same = [(63, 384), (42, 448), (29, 512), (17, 640), (10, 768), (6, 896), (4, 1024), (1, 1280)]
    n = np.array([Shape(layers, d).N for layers, d in same])
    assert np.all(np.abs(n / n.mean() - 1) < 0.03)  # about equal size, aspect ratio 6 to 1280


def test_read_shapes_csv_filters_and_defaults_heads(tmp_path):
    shapes = read_shapes_csv(ROOT / "data" / "latency_sweep_shapes.csv", sweep="head_dim", gpu="A100")
    assert Shape(4, 4096, 32) in shapes and Shape(4, 6144) in shapes
    table = tmp_path / "shapes.csv"
    table.write_text("n_layers,d_model,n_heads\n4,256,\n4,256,\n2,256,2\n")
    assert read_shapes_csv(table) == [Shape(4, 256), Shape(2, 256, 2)]
    table.write_text("n_layers,d_model\n4,250\n")
    with pytest.raises(ShapeError, match="row 1"):
        read_shapes_csv(table)
    with pytest.raises(DataError, match="no rows with sweep"):
        read_shapes_csv(ROOT / "data" / "latency_sweep_shapes.csv", sweep="nope")


# --- a real tiny measurement and the file format --------------------------------------------------------------


def test_tiny_measurement_round_trip(tmp_path, capsys):
    out = tmp_path / "m.csv"
    argv = ["measure", "--shape", "2x64", "--shape", "1x128x2", "--trials", "2", "--output-tokens", "4",
            "--input-tokens", "8", "--device", "cpu", "--output", str(out), "--quiet"]
    assert main(argv) == 0
    lines = out.read_text().splitlines()
    header_lines = [line for line in lines if line.startswith("#")]
    assert lines[: len(header_lines)] == header_lines  # the header comes first
    assert all(line.startswith("# ") and ": " in line for line in header_lines)
    assert lines[len(header_lines)] == ",".join(COLUMNS)
    frame, prov = read_measurements(out)
    assert list(frame.columns) == list(COLUMNS)
    assert set(PROVENANCE_KEYS) <= set(prov)
    assert prov["command"] == "morph " + " ".join(argv)
    assert prov["device"] == "cpu" and prov["dtype"] == "fp32" and int(prov["threads"]) >= 1
    assert len(prov["load_before"].split()) == 3
    assert frame[["n_layers", "d_model", "n_heads", "n_kv_heads"]].values.tolist() == [[2, 64, 1, 1], [1, 128, 2, 2]]
    assert frame["N"].tolist() == [Shape(2, 64).N, Shape(1, 128, 2).N]
    assert (frame["output_tokens"] == 4).all() and (frame["input_tokens"] == 8).all() and (frame["trials"] == 2).all()
    assert (frame["framework"] == "torch-eager").all() and (frame["device"] == "cpu").all()
    assert (frame["stack"] == "hf-eager").all() and prov["stack"] == "hf-eager"
    assert (frame["latency_min_s"] > 0).all()
    assert (frame["latency_min_s"] <= frame["latency_s"]).all() and (frame["latency_s"] <= frame["latency_max_s"]).all()
    # With two trials the quartiles interpolate to a quarter and three quarters of the range.
    assert np.allclose(frame["latency_iqr_s"], 0.5 * (frame["latency_max_s"] - frame["latency_min_s"]), atol=2e-6)
    assert "2x64x1" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]  # no temporary file left behind


def test_read_measurements_rejects_a_file_without_provenance(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(",".join(COLUMNS) + "\n")
    with pytest.raises(DataError, match="provenance"):
        read_measurements(bad)


# --- the committed CPU sweep -----------------------------------------------------------------------------------


def test_committed_cpu_sweep():
    frame, prov = read_measurements(COMMITTED)
    assert len(frame) >= 24
    assert (frame["stack"] == "hf-eager").all()  # written before stacks were recorded: eager
    assert set(PROVENANCE_KEYS) <= set(prov)
    assert prov["device"] == "cpu" and "sweep cpu-default" in prov["command"]
    assert (frame[["latency_s", "latency_min_s", "latency_max_s"]] > 0).all().all()
    assert (frame["latency_min_s"] <= frame["latency_s"]).all() and (frame["latency_s"] <= frame["latency_max_s"]).all()
    assert (frame["N"] == [Shape(int(L), int(d)).N for L, d in zip(frame["n_layers"], frame["d_model"])]).all()
    for _, group in frame.groupby("d_model"):
        ordered = group.sort_values("n_layers")
        if len(ordered) > 1:  # deeper at the same width is always slower
            assert np.all(np.diff(ordered["latency_s"].to_numpy()) > 0), ordered
    # Depth costs about linearly: a straight line explains the layers sweep at d_model 512.
    layers = frame[frame["d_model"] == 512].sort_values("n_layers")
    slope, intercept = np.polyfit(layers["n_layers"], layers["latency_s"], 1)
    fitted = slope * layers["n_layers"] + intercept
    r2 = 1 - np.sum((layers["latency_s"] - fitted) ** 2) / np.sum((layers["latency_s"] - layers["latency_s"].mean()) ** 2)
    assert slope > 0 and intercept > 0 and r2 > 0.98
    # The trials agree: the typical interquartile range is a few percent of the median.
    assert float(np.median(frame["latency_iqr_s"] / frame["latency_s"])) < 0.05
    # Same size, different aspect ratio: the deepest, narrowest variant is the slowest by far.
    same = frame[(frame["N"] > 1.45e8) & (frame["N"] < 1.56e8)].assign(R=lambda f: f["d_model"] / f["n_layers"])
    assert len(same) >= 6
    assert same.sort_values("R")["latency_s"].iloc[0] > 2 * same.sort_values("R")["latency_s"].iloc[-1]


# --- CLI errors: one line, exit 2, no file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--shape", "2x65"],  # no heads given and not a multiple of 64
        ["--shape", "2x96x5"],  # 5 heads do not divide 96
        ["--shape", "12-3072"],
        ["--shape", "2x64", "--trials", "0"],
        ["--shape", "2x64", "--output-tokens", "-3"],
        ["--shape", "2x64", "--device", "tpu"],
        ["--sweep", "no-such-sweep"],
        ["--shape", "2x64", "--sweep", "cpu-default"],
        ["--shape", "2x64", "--stack", "tensorrt"],
        [],
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(args, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert _status(["measure", *args, "--output", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("morph: error: ")
    assert not any(tmp_path.iterdir())


def test_cli_refuses_unwritable_output_before_measuring(tmp_path, capsys):
    missing = tmp_path / "no-such-folder" / "out.csv"
    assert main(["measure", "--shape", "2x64", "--output", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["measure", "--shape", "2x64", "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_without_torch_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    out = tmp_path / "out.csv"
    assert main(["measure", "--shape", "2x64", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pip install -e .[measure]" in err
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_measurement(tmp_path):
    out = tmp_path / "gpu.csv"
    assert main(["measure", "--shape", "2x128", "--device", "cuda", "--trials", "2", "--output-tokens", "4",
                 "--output", str(out), "--quiet"]) == 0
    frame, prov = read_measurements(out)
    assert (frame["device"] == "cuda").all() and (frame["dtype"] == "bf16").all()
    assert prov["device"].startswith("cuda (")
    assert (frame["latency_min_s"] <= frame["latency_s"]).all()
    both = tmp_path / "both.csv"
    assert main(["measure", "--shape", "2x128", "--device", "cuda", "--stack", "both", "--trials", "2",
                 "--output-tokens", "4", "--output", str(both), "--quiet"]) == 0
    frame, prov = read_measurements(both)
    assert frame["stack"].tolist() == ["hf-eager", "cuda-graphs"] and prov["gpu"] and prov["driver"]
    # Replaying the captured step chooses the tokens of the same step run eagerly, and of eager decoding.
    from morph.latency.decoder import build_decoder, greedy_generate
    from morph.latency.graphs import GraphDecoder, static_greedy_generate

    model = build_decoder(Shape(3, 128, 4, 2), device="cuda", seed=1)
    prompt = torch.randint(0, 50432, (2, 5), generator=torch.Generator().manual_seed(0)).cuda()
    with torch.inference_mode():
        replayed = GraphDecoder(model, 2, 5 + 12).generate(prompt, 12)
        assert torch.equal(replayed, static_greedy_generate(model, prompt, 12))
        assert torch.equal(replayed, greedy_generate(model, prompt, 12))


def _status(argv: list[str]) -> int:
    """Exit status of the CLI, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


# --- the cuda-graphs stack -------------------------------------------------------------------------------------


def _paper_parameters(n_layers: int, d_model: int) -> int:
    """The paper's N(d, L) = L (4 d^2 + 3 d ffn(d) + 2 d) + d + 2 V d, ffn(d) = 256 ceil(int(8d/3) / 256)."""
    ffn = 256 * -(-int(8 * d_model / 3) // 256)
    return n_layers * (4 * d_model**2 + 3 * d_model * ffn + 2 * d_model) + d_model + 2 * 50432 * d_model


def test_stacks_are_the_serving_stacks_of_the_latency_model():
    assert set(STACKS) == set(stack_names())
    assert FRAMEWORKS == {"hf-eager": "torch-eager", "cuda-graphs": "torch-cuda-graphs"}


@pytest.mark.parametrize(
    "given, expected",
    [
        ([], ["hf-eager"]),
        (["--stack", "cuda-graphs"], ["cuda-graphs"]),
        (["--stack", "both"], ["hf-eager", "cuda-graphs"]),
        (["--stack", "cuda-graphs", "--stack", "hf-eager", "--stack", "both"], ["cuda-graphs", "hf-eager"]),
    ],
)
def test_stack_argument(given, expected):
    args = build_parser().parse_args(["measure", "--shape", "2x64", *given])
    assert _stacks(args) == expected


@pytest.mark.parametrize("stack", [["--stack", "cuda-graphs"], ["--stack", "both"]])
def test_cuda_graphs_on_a_cpu_is_refused_in_one_line(stack, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert _status(["measure", "--shape", "2x64", "--device", "cpu", *stack, "--output", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "morph: error: the cuda-graphs stack needs a CUDA device; on a CPU use --stack hf-eager"
    assert not any(tmp_path.iterdir())
    with pytest.raises(LatencyError, match="needs a CUDA device"):
        measure_shape(Shape(1, 64), CPU_PROTOCOL, stack="cuda-graphs")


def test_graph_decoder_refuses_a_cpu_model():
    from morph.latency.decoder import build_decoder
    from morph.latency.graphs import GraphDecoder

    with pytest.raises(LatencyError, match="needs a CUDA device"):
        GraphDecoder(build_decoder(Shape(1, 64)), 1, 8)


def test_gpu_depth_sweep_design():
    shapes = named_sweep("gpu-depth")
    assert len(set(shapes)) == len(shapes)
    assert Shape(24, 2048) in shapes and Shape(12, 3072) in shapes  # the paper's two shapes
    same = [s for s in shapes if s not in (Shape(24, 2048), Shape(12, 3072))]
    assert sorted(s.n_layers for s in same) == [4, 8, 12, 16, 24, 32, 40, 48]
    for s in same:
        assert s.d_model % 128 == 0 and s.d_model // s.n_heads == 64 and s.n_kv_heads == s.n_heads
        n = _paper_parameters(s.n_layers, s.d_model)
        assert s.N == n and 0.9 * 1.3e9 <= n <= 1.1 * 1.3e9, s
    assert _paper_parameters(24, 2048) == 1_439_795_200 and _paper_parameters(12, 3072) == 1_668_885_504


@pytest.mark.parametrize(
    "shape, batch, input_tokens, output_tokens",
    [(Shape(2, 64), 2, 7, 9), (Shape(3, 128, 4, 2), 1, 5, 12), (Shape(2, 128, 4, 1), 3, 4, 6)],
    ids=str,
)
def test_static_cache_decoding_equals_eager_decoding(shape, batch, input_tokens, output_tokens):
    from morph.latency.decoder import build_decoder, greedy_generate
    from morph.latency.graphs import StaticDecoder, static_greedy_generate

    model = build_decoder(shape, seed=1)
    prompt = torch.randint(0, shape.vocab, (batch, input_tokens), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        eager = greedy_generate(model, prompt, output_tokens)
        assert torch.equal(static_greedy_generate(model, prompt, output_tokens), eager)
        # The graph path reuses one static cache for every call: a second call must not see the first.
        decoder = StaticDecoder(model, batch, input_tokens + output_tokens)
        first = decoder.generate(prompt, output_tokens)
        other = torch.randint(0, shape.vocab, (batch, input_tokens), generator=torch.Generator().manual_seed(5))
        decoder.generate(other, output_tokens)
        assert torch.equal(first, eager) and torch.equal(decoder.generate(prompt, output_tokens), eager)
        assert int(decoder.position) == input_tokens + output_tokens - 1


def test_table_of_both_stacks_round_trips(tmp_path):
    protocol = MeasurementProtocol(input_tokens=8, output_tokens=4, trials=3, device="cpu")
    measurements = [
        Measurement(shape, protocol, times, stack)
        for shape in (Shape(2, 64), Shape(4, 128))
        for stack, times in (("hf-eager", (0.30, 0.20, 0.25)), ("cuda-graphs", (0.05, 0.04, 0.06)))
    ]
    header = provenance(protocol, command="morph measure", load_before="0 0 0", load_after="0 0 0",
                        stacks=STACKS)
    assert header["stack"] == "hf-eager, cuda-graphs" and "stack cuda-graphs: eager prefill" in header["protocol"]
    out = write_measurements(tmp_path / "both.csv", measurements, header)
    frame, prov = read_measurements(out)
    assert list(frame.columns) == list(COLUMNS) and prov["stack"] == header["stack"]
    assert frame["stack"].tolist() == ["hf-eager", "cuda-graphs"] * 2
    assert frame["framework"].tolist() == ["torch-eager", "torch-cuda-graphs"] * 2
    assert frame["latency_s"].tolist() == pytest.approx([0.25, 0.05, 0.25, 0.05])
    loaded = load_measurements(out)
    assert len(loaded) == 4 and loaded["latency_s"].tolist() == pytest.approx([0.25, 0.05, 0.25, 0.05])
    assert loaded["framework"].tolist() == frame["framework"].tolist()
    if "stack" in loaded.columns:
        assert loaded["stack"].tolist() == frame["stack"].tolist()
    out.write_text(out.read_text().replace(",cuda-graphs\n", ",tensorrt\n"))
    with pytest.raises(DataError, match="unknown stack"):
        read_measurements(out)


# --- a sweep stopped part-way ------------------------------------------------------------------------------------


def _stopping_on_call(monkeypatch, call: int, stop: Callable[[], None]) -> None:
    """Make the ``call``-th shape of a sweep stop it with ``stop()``; the others are timed for real."""
    real = measure_module.measure_shape
    calls = []

    def measure(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            stop()
        return real(*args, **kwargs)

    monkeypatch.setattr(measure_module, "measure_shape", measure)


def _interrupt() -> None:
    raise KeyboardInterrupt


def _terminate() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("stop", [_interrupt, _terminate], ids=["ctrl-c", "sigterm"])
def test_a_stopped_sweep_keeps_the_shapes_it_finished_and_says_so(stop, monkeypatch, tmp_path, capsys):
    out = tmp_path / "out.csv"
    _stopping_on_call(monkeypatch, 3, stop)
    before = signal.getsignal(signal.SIGTERM)
    argv = ["measure", "--shape", "1x64", "--shape", "2x64", "--shape", "3x64", "--output-tokens", "2",
            "--trials", "1", "--device", "cpu", "--output", str(out)]
    assert main(argv) == 130  # 128 + SIGINT, what a shell reports for Ctrl-C
    assert signal.getsignal(signal.SIGTERM) is before
    frame, prov = read_measurements(out)
    assert frame["n_layers"].tolist() == [1, 2]  # two of three shapes finished before the stop
    assert prov["interrupted"] == "after 2 of 3 runs"
    captured = capsys.readouterr()
    assert "interrupted after 2 of 3 runs" in captured.err
    assert "2 of 3 runs in " in captured.out and "3 shape(s)" not in captured.out


def test_a_sweep_stopped_before_any_shape_finished_writes_nothing(monkeypatch, tmp_path, capsys):
    out = tmp_path / "out.csv"
    _stopping_on_call(monkeypatch, 1, _interrupt)
    assert main(["measure", "--shape", "1x64", "--device", "cpu", "--output", str(out)]) == 130
    assert not out.exists()
    assert "nothing written" in capsys.readouterr().err
