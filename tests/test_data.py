"""Reading tables of runs: the documented meaning, or one clear error."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from morph import DataError, load_runs
from morph.data import data_dir, fit_mask, load_candidates, load_models_1b, load_sweep_shapes, read_table

GOOD = "N,D,loss\n1e8,2e9,3.5\n2e8,4e9,3.2\n"


def test_shipped_tables_load_with_their_documented_counts():
    runs = load_runs()
    assert len(runs) == 76 and runs["N"].dtype == np.float64
    assert runs["aspect_ratio"].iloc[0] == pytest.approx(512 / 8)
    assert runs.groupby("budget_label").size().to_dict() == {"160N": 18, "20N": 35, "40N": 23}
    assert (runs["in_fit_A"].sum(), runs["in_fit_B"].sum(), runs["in_fit_T1"].sum()) == (24, 27, 6)
    assert runs["variant"].nunique() == 35
    assert (runs.loc[runs.size_label == "1B", "D"] == 28_991_029_248).all()
    assert len(load_candidates()) == 15 and len(load_models_1b()) == 7 and len(load_sweep_shapes()) == 418
    assert (data_dir() / "README.md").is_file()


def test_budgets_are_exact_multiples():
    runs = load_runs()
    for variant, group in runs.groupby("variant"):
        d = dict(zip(group.budget_label, group.D))
        if "20N" in d and "40N" in d:
            assert d["40N"] == 2 * d["20N"], variant
        if "20N" in d and "160N" in d:
            assert d["160N"] == 8 * d["20N"], variant


@pytest.mark.parametrize(
    "text, meaning",
    [
        (GOOD, [1e8, 2e8]),
        ("\ufeff" + GOOD, [1e8, 2e8]),  # byte-order mark
        ("N;D;loss\n1e8;2e9;3.5\n2e8;4e9;3.2\n", [1e8, 2e8]),  # semicolons
        ("N\tD\tloss\n1e8\t2e9\t3.5\n2e8\t4e9\t3.2\n", [1e8, 2e8]),  # tabs
        ('N,D,loss\n"100,000,000",2e9,3.5\n"200,000,000",4e9,3.2\n', [1e8, 2e8]),  # thousands
        ('N,D,loss\n"1E+08",2e9,3.5\n 2.0e8 ,4e9,3.2\n', [1e8, 2e8]),  # quoted, spaced, scientific
        ("params,tokens,loss\n1e8,2e9,3.5\n2e8,4e9,3.2\n", [1e8, 2e8]),  # aliases
        ("N,D,loss\r\n1e8,2e9,3.5\r\n2e8,4e9,3.2\r\n\r\n", [1e8, 2e8]),  # CRLF, trailing blank line
    ],
)
def test_accepted_forms_load_with_their_documented_meaning(text, meaning):
    frame = load_runs(text.encode("utf-8"))
    assert frame["N"].tolist() == meaning
    assert frame["D"].tolist() == [2e9, 4e9]


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "is empty"),
        (b"N,D,loss\n", "no rows"),
        (b"N,D\n1,2\n", "missing the column\\(s\\) loss"),
        (b"x,y,z\n1,2,3\n", "N or params, D or tokens, loss"),
        (b"N,D,loss\n1e8,abc,3\n", "column 'D', row 1 holds 'abc'"),
        (b"N,D,loss\n1e8,2e9,\n", "column 'loss', row 1 is empty"),
        (b"N,D,loss\n1e8,2e9,nan\n", "row 1 holds 'nan', which is not a finite number"),
        (b"N,D,loss\n1e8,inf,3\n", "not a finite number"),
        (b"N,D,loss\n1e8,2e9,3\n-5,2e9,3\n", "column 'N', row 2 is -5; it must be greater than zero"),
        (b"N,D,loss\n0,2e9,3\n", "greater than zero"),
        (b"N,D,loss\n1e8,2e9,3\n1e8,2e9,3\n", "row 2 repeats row 1"),
        (b"N,D,loss,N\n1,2,3,4\n", "'N' appears more than once"),
        (b"N,D,loss\n1,2\n", "row 1 has 2 fields but the header has 3"),
        (b"N,D,loss\n\xff\xfe1,2,3\n", "not UTF-8"),
        (b"N,D,loss,params\n1,2,3,4\n", "both 'N' and its alias 'params'"),
        (b"N,D,loss\n1,2,3\x00\n", "NUL"),
    ],
)
def test_bad_tables_fail_with_one_clear_line(raw, message):
    with pytest.raises(DataError, match=message) as info:
        load_runs(raw, name="runs.csv")
    assert "\n" not in str(info.value)


def test_shape_aware_laws_need_the_aspect_ratio():
    with pytest.raises(DataError, match="aspect_ratio column, or n_layers and d_model"):
        load_runs(GOOD.encode(), require_aspect_ratio=True)
    with_shape = load_runs(b"N,D,loss,n_layers,d_model\n1e8,2e9,3,8,512\n")
    assert with_shape["aspect_ratio"].tolist() == [64.0]


def test_sources_path_file_object_and_frame(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(GOOD)
    assert len(load_runs(path)) == len(load_runs(str(path))) == len(load_runs(io.StringIO(GOOD))) == 2
    assert len(load_runs(io.BytesIO(GOOD.encode()))) == 2
    assert len(load_runs(pd.DataFrame({"N": [1e8], "D": [2e9], "loss": [3.0]}))) == 1
    with pytest.raises(DataError, match="does not exist"):
        load_runs(tmp_path / "missing.csv")


def test_fit_set_flags():
    runs = load_runs()
    assert fit_mask(runs, "in_fit_B").sum() == 27
    assert fit_mask(runs, None).all()
    with pytest.raises(DataError, match="no column 'in_fit_C'.*in_fit_A, in_fit_B, in_fit_T1"):
        fit_mask(runs, "in_fit_C")
    bad = runs.assign(flag=["yes"] * 75 + ["maybe"])
    with pytest.raises(DataError, match="row 76 must be 0 or 1"):
        fit_mask(bad, "flag")
    with pytest.raises(DataError, match="selects no rows"):
        fit_mask(runs.assign(flag=0), "flag")


def test_read_table_keeps_text_columns_as_text():
    frame = read_table(b"name,N\nabc,1\n")
    assert frame["name"].tolist() == ["abc"] and frame["N"].tolist() == [1]


def test_missing_values_in_numeric_frames_are_reported():
    frame = pd.DataFrame({"N": [1e8, np.nan], "D": [2e9, 3e9], "loss": [3.0, 2.9]})
    with pytest.raises(DataError, match=r"column 'N', row 2 is missing \(NaN\)"):
        load_runs(frame)


def test_provenance_headers_split_from_the_table():
    from morph.data import split_provenance

    header, body = split_provenance("# Machine: AMD EPYC\n\n# note without colon\nn_layers,d_model\n1,64\n")
    assert header == {"machine": "AMD EPYC", "comment": "note without colon"}
    assert body == "n_layers,d_model\n1,64\n"
    with pytest.raises(DataError, match="header line 3 is not of the form"):
        split_provenance("# a: 1\n\n# oops\nx\n", strict=True, label="m.csv")
    assert split_provenance("# only: header\n") == ({"only": "header"}, "")
