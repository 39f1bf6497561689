"""Parameter counts, aspect ratio, FLOPs and shape enumeration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from morph import ShapeError
from morph.data import data_dir
from morph.shapes import (
    VOCAB_SIZE,
    Shape,
    ShapeGrid,
    aspect_ratio,
    embedding_parameters,
    enumerate_shapes,
    ffn_hidden,
    inference_flops_per_token,
    non_embedding_parameters,
    parameter_count,
    parse_shape,
    training_flops,
)


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return pd.read_csv(data_dir() / "morph_runs.csv")


def test_every_published_parameter_count_is_reproduced(runs):
    counts = parameter_count(runs["n_layers"], runs["d_model"], runs["n_heads"])
    assert (counts == runs["N"].to_numpy()).all()
    assert (ffn_hidden(runs["d_model"]) == runs["ffn_hidden"].to_numpy()).all()


def test_every_candidate_parameter_count_is_reproduced():
    candidates = pd.read_csv(data_dir() / "morph_1b_candidates.csv")
    assert len(candidates) == 15
    assert (parameter_count(candidates["n_layers"], candidates["d_model"]) == candidates["N"]).all()


def test_paper_examples():
    assert int(parameter_count(8, 512)) == 78_914_048
    assert Shape(12, 3072).N == 1_668_885_504  # Morph-1B
    assert Shape(24, 2048, 16).N == 1_439_795_200  # Open-LM-1B shape


def test_ffn_rule_by_hand():
    # int(8*3072/3) = 8192, already a multiple of 256; int(8*720/3) = 1920 -> 2048
    assert int(ffn_hidden(3072)) == 8192
    assert int(ffn_hidden(720)) == 2048
    assert int(ffn_hidden(512)) == 1536


def test_embedding_and_non_embedding_add_up():
    d = np.array([512, 1024, 3072])
    layers = np.array([8, 16, 12])
    total = parameter_count(layers, d)
    assert (total == non_embedding_parameters(layers, d) + embedding_parameters(d)).all()
    assert (embedding_parameters(d) == 2 * VOCAB_SIZE * d).all()
    assert (parameter_count(layers, d, tied_embeddings=True) == total - VOCAB_SIZE * d).all()


def test_grouped_query_attention_shrinks_key_value_projections():
    mha = int(parameter_count(12, 3072, 24))
    gqa = int(parameter_count(12, 3072, 24, 8))
    # K and V shrink from d x d to d x d/3 in each of 12 layers.
    assert mha - gqa == 12 * 2 * (3072 * 3072 - 3072 * 1024)
    assert Shape(12, 3072, 24, 8).N == gqa


def test_aspect_ratio_and_flops():
    assert float(aspect_ratio(12, 3072)) == 256.0
    assert Shape(24, 2048).aspect_ratio == pytest.approx(2048 / 24)
    assert float(training_flops(1e9, 2e10)) == pytest.approx(1.2e20)
    n = Shape(12, 3072).N
    flops0 = float(inference_flops_per_token(12, 3072, context=0))
    assert flops0 == pytest.approx(2 * (n - VOCAB_SIZE * 3072))
    assert float(inference_flops_per_token(12, 3072, context=100)) - flops0 == pytest.approx(4 * 12 * 100 * 3072)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_layers=0, d_model=512), "n_layers"),
        (dict(n_layers=4, d_model=-64), "d_model"),
        (dict(n_layers=4, d_model=512, n_heads=7), "do not divide"),
        (dict(n_layers=4, d_model=512, n_heads=8, n_kv_heads=3), "key/value heads"),
        (dict(n_layers=4.5, d_model=512), "whole number"),
        (dict(n_layers=4, d_model=500), "multiple of 64"),
    ],
)
def test_invalid_shapes_are_refused(kwargs, message):
    with pytest.raises(ShapeError, match=message):
        Shape(**kwargs)


def test_parse_shape():
    assert parse_shape("12x3072") == Shape(12, 3072)
    assert parse_shape("12x3072x16").n_heads == 16
    assert str(parse_shape(" 24X2048 ")) == "24x2048"
    for bad in ("12", "12x", "x3072", "twelve x 3072", "12x3072x16x2", "-1x64"):
        with pytest.raises(ShapeError):
            parse_shape(bad)


def _brute_force(lo: float, hi: float, n_heads: int = 16) -> set[tuple[int, int]]:
    found = set()
    for d in range(64, 4097, 64):
        if d % n_heads:
            continue
        for layers in range(1, 257):
            n = int(parameter_count(layers, d))
            if lo <= n <= hi:
                found.add((layers, d))
    return found


@pytest.mark.parametrize("lo, hi", [(1.3e9, 1.7e9), (7.5e7, 8.5e7), (1e8, 1.01e8)])
def test_enumeration_matches_brute_force(lo, hi):
    grid = enumerate_shapes(lo, hi, d_model_max=4096)
    got = set(zip(grid.n_layers.tolist(), grid.d_model.tolist()))
    assert got == _brute_force(lo, hi)
    assert (grid.N == parameter_count(grid.n_layers, grid.d_model)).all()
    assert ((grid.N >= lo) & (grid.N <= hi)).all()
    assert (grid.d_model % 64 == 0).all() and (grid.d_model % grid.n_heads == 0).all()


def test_enumeration_contains_the_paper_candidates():
    grid = enumerate_shapes(1.3e9, 2.2e9, d_model_max=6144)
    shapes = set(zip(grid.n_layers.tolist(), grid.d_model.tolist()))
    candidates = pd.read_csv(data_dir() / "morph_1b_candidates.csv")
    assert set(zip(candidates["n_layers"], candidates["d_model"])) <= shapes


def test_enumeration_with_head_dim_and_large_grids():
    grid = enumerate_shapes(1e8, 1e12, head_dim=128, d_model_max=32768, n_layers_max=1024)
    assert len(grid) > 100_000
    assert (grid.d_model == grid.n_heads * 128).all()
    assert ((grid.N >= 1e8) & (grid.N <= 1e12)).all()
    frame = grid.to_frame()
    assert list(frame.columns) == ["n_layers", "d_model", "n_heads", "N", "aspect_ratio"]
    assert grid.shape(0).N == int(grid.N[0])


def test_enumeration_refuses_bad_ranges():
    for lo, hi in [(0, 1e9), (2e9, 1e9), (float("nan"), 1e9), (1e9, float("inf"))]:
        with pytest.raises(ShapeError):
            enumerate_shapes(lo, hi)
    assert len(enumerate_shapes(1.0, 2.0)) == 0  # nothing that small exists


def test_shape_grid_round_trip():
    shapes = [Shape(24, 2048, 16), Shape(12, 3072, 16)]
    grid = ShapeGrid.from_shapes(shapes)
    assert [grid.shape(i) for i in range(len(grid))] == shapes


@given(
    layers=st.integers(1, 200),
    width=st.integers(1, 256).map(lambda k: 64 * k),
)
def test_parameter_count_is_monotone_in_depth_and_width(layers, width):
    n = int(parameter_count(layers, width))
    assert int(parameter_count(layers + 1, width)) > n
    assert int(parameter_count(layers, width + 64)) > n
    assert n == Shape(layers, width).N


def test_inference_flops_count_the_output_head_even_when_tied():
    untied = float(inference_flops_per_token(12, 3072))
    tied = float(inference_flops_per_token(12, 3072, tied_embeddings=True))
    assert tied == untied
    assert untied == 2 * (non_embedding_parameters(12, 3072) + VOCAB_SIZE * 3072)
