"""Measurement tables: ``generate`` timings as read from a CSV, checked, and turned into model inputs.

A measurement table is a CSV of ``generate`` timings, optionally preceded by
provenance lines of the form ``# key: value`` (the format is described in
:mod:`morph.latency.calibration`, which fits the latency model to them).
:func:`load_measurements` reads and checks one; :func:`hardware_for` finds the
device it was timed on, :func:`one_stack` the rows of one serving stack, and
:func:`generation_work_for` the model's inputs for its rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import DataError, read_with_provenance, to_numeric
from ..errors import LatencyError
from ..shapes import VOCAB_SIZE
from .hardware import Hardware, canonical_dtype, get_hardware
from .model import GenerationWork, generation_work
from .workload import Workload

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "load_measurements",
    "timed_under",
    "as_measurements",
    "hardware_for",
    "stack_of",
    "one_stack",
    "generation_work_for",
]

REQUIRED_COLUMNS = ("n_layers", "d_model", "batch", "input_tokens", "output_tokens", "latency_s")
OPTIONAL_COLUMNS = (
    "n_heads", "n_kv_heads", "vocab", "dtype", "latency_min_s", "latency_max_s", "latency_iqr_s",
    "trials", "warmup", "device", "hardware", "framework", "stack",
)
_INTEGER_COLUMNS = ("n_layers", "d_model", "batch", "input_tokens", "output_tokens")
_OPTIONAL_NUMBERS = ("latency_min_s", "latency_max_s", "latency_iqr_s", "trials", "warmup")


def load_measurements(source: str | os.PathLike | bytes | pd.DataFrame) -> pd.DataFrame:
    """Read and check a table of ``generate`` timings.

    Parameters
    ----------
    source : path, bytes or DataFrame
        CSV with optional leading ``# key: value`` provenance lines (format in
        the module docstring), or a DataFrame with the same columns.

    Returns
    -------
    DataFrame
        One row per measurement: the required columns (integers and
        ``latency_s`` in seconds), ``n_heads``/``n_kv_heads`` (float, NaN
        where not given), ``vocab``, canonical ``dtype``, and any optional
        columns present. ``frame.attrs["metadata"]`` holds the provenance
        lines, ``frame.attrs["source"]`` the file name.

    Raises
    ------
    LatencyError
        A missing required column, an empty or non-numeric cell, a
        non-positive or fractional count, an unknown dtype, or heads that do
        not divide ``d_model``; the message names the column and row.
    """
    if isinstance(source, pd.DataFrame):
        label = str(source.attrs.get("source", "the measurements"))
    else:
        label = Path(source).name if isinstance(source, (str, os.PathLike)) else "the measurements"
    try:
        metadata, frame = read_with_provenance(source, label)
    except DataError as exc:
        raise LatencyError(str(exc)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise LatencyError(
            f"{label} is missing the column(s) {', '.join(missing)}; a measurement table needs "
            f"{', '.join(REQUIRED_COLUMNS)}"
        )
    out = pd.DataFrame(index=range(len(frame)))
    try:
        for column in _INTEGER_COLUMNS:
            values = to_numeric(frame[column].reset_index(drop=True), column, label)
            _check_whole(values, column, label)
            out[column] = values.astype(np.int64)
        out["latency_s"] = to_numeric(frame["latency_s"].reset_index(drop=True), "latency_s", label)
        for column in ("n_heads", "n_kv_heads", "vocab", *_OPTIONAL_NUMBERS):
            if column in frame.columns:
                out[column] = _optional_numbers(frame[column].reset_index(drop=True), column, label)
    except DataError as exc:
        raise LatencyError(str(exc)) from None
    out["vocab"] = out["vocab"].fillna(VOCAB_SIZE).astype(np.int64) if "vocab" in out else VOCAB_SIZE
    for column in ("n_heads", "n_kv_heads"):
        if column not in out:
            out[column] = np.nan
    _check_heads(out, label)
    out["dtype"] = _dtypes(frame, label)
    for column in ("device", "hardware", "framework", "stack"):
        if column in frame.columns:
            out[column] = frame[column].reset_index(drop=True).astype(str).str.strip()
    out.attrs["metadata"] = metadata
    out.attrs["source"] = label
    return out


def timed_under(measurements: pd.DataFrame, workload: Workload) -> pd.DataFrame:
    """The rows of ``measurements`` timed under ``workload``: its hardware, batch, tokens and dtype.

    Columns a table lacks are not checked (a table without ``hardware`` may
    come from any machine); the calibration plays no part (see
    :meth:`~morph.latency.Workload.timed_like`).
    """
    mask = np.ones(len(measurements), dtype=bool)
    for column in ("batch", "input_tokens", "output_tokens"):
        if column in measurements.columns:
            mask &= measurements[column].to_numpy() == getattr(workload, column)
    for column, value in (("dtype", workload.dtype), ("hardware", workload.hardware_name)):
        if column in measurements.columns:
            mask &= measurements[column].astype(str).to_numpy() == value
    return measurements[mask]


def _check_whole(values: np.ndarray, column: str, label: str) -> None:
    fractional = values != np.round(values)
    if fractional.any():
        i = int(np.flatnonzero(fractional)[0])
        raise LatencyError(f"{label}: column {column!r}, row {i + 1} is {values[i]:g}; it must be a whole number")


def _optional_numbers(values: pd.Series, column: str, label: str) -> np.ndarray:
    text = values.astype(str).str.strip()
    empty = (values.isna() | text.isna() | text.isin(["", "nan", "NaN", "None"])).to_numpy()
    numbers = np.full(len(values), np.nan)
    if (~empty).any():
        numbers[~empty] = to_numeric(values[~empty].reset_index(drop=True), column, label)
    if column in ("n_heads", "n_kv_heads", "vocab", "trials", "warmup"):
        given = ~np.isnan(numbers)
        _check_whole(np.where(given, numbers, 0.0), column, label)
    return numbers


def _check_heads(frame: pd.DataFrame, label: str) -> None:
    d = frame["d_model"].to_numpy()
    heads = frame["n_heads"].to_numpy()
    kv = frame["n_kv_heads"].to_numpy()
    needs_default = np.isnan(heads) & ~np.isnan(kv)
    if (needs_default & (d % 64 != 0)).any():
        i = int(np.flatnonzero(needs_default & (d % 64 != 0))[0])
        raise LatencyError(f"{label}: row {i + 1} gives n_kv_heads but not n_heads, and d_model {d[i]} is not a multiple of 64")
    heads = np.where(needs_default, d // 64, heads)
    for i in range(len(frame)):
        if not np.isnan(heads[i]) and d[i] % heads[i]:
            raise LatencyError(f"{label}: row {i + 1}: {int(heads[i])} heads do not divide d_model {d[i]}")
        if not np.isnan(kv[i]) and heads[i] % kv[i]:
            raise LatencyError(f"{label}: row {i + 1}: {int(kv[i])} key/value heads do not divide {int(heads[i])} heads")
    frame["n_heads"] = heads


def _dtypes(frame: pd.DataFrame, label: str) -> list[str]:
    if "dtype" not in frame.columns:
        return ["fp32"] * len(frame)
    result = []
    for i, value in enumerate(frame["dtype"].astype(str).str.strip()):
        try:
            result.append(canonical_dtype(value or "fp32"))
        except LatencyError as exc:
            raise LatencyError(f"{label}: column 'dtype', row {i + 1}: {exc}") from None
    return result


def as_measurements(measurements: str | os.PathLike | bytes | pd.DataFrame) -> pd.DataFrame:
    # Checking again is cheap and idempotent, and a DataFrame may come from anywhere.
    return load_measurements(measurements)


def hardware_for(frame: pd.DataFrame, hardware: str | Hardware | None) -> Hardware:
    if hardware is not None:
        return get_hardware(hardware)
    named = set(frame["hardware"]) if "hardware" in frame else set()
    from_metadata = frame.attrs.get("metadata", {}).get("hardware")
    if from_metadata:
        named.add(from_metadata)
    if not named:
        # A sweep from `morph measure --device cpu` says so in its header and rows:
        # the only device that names a preset by itself is the CPU.
        devices = set(frame["device"]) if "device" in frame else set()
        device = frame.attrs.get("metadata", {}).get("device")
        if device:
            devices.add(device.strip())
        if devices == {"cpu"}:
            named.add("cpu")
    if len(named) == 1:
        return get_hardware(named.pop())
    raise LatencyError(
        f"say which hardware the timings in {frame.attrs.get('source', 'the table')} were taken on (--hardware NAME)"
    )


def stack_of(frame: pd.DataFrame) -> str:
    stacks = set(frame["stack"]) if "stack" in frame else set()
    return stacks.pop() if len(stacks) == 1 else ""


def one_stack(frame: pd.DataFrame, stack: str | None) -> pd.DataFrame:
    """The rows of ``stack``; a table that mixes stacks must say which to fit."""
    stacks = sorted(set(frame["stack"])) if "stack" in frame else []
    if stack is None:
        if len(stacks) > 1:
            raise LatencyError(f"{frame.attrs.get('source', 'the table')} holds timings of the stacks "
                               f"{', '.join(stacks)}: say which to fit (--stack NAME)")
        return frame
    if not stacks:
        return frame
    rows = frame[frame["stack"] == stack]
    if rows.empty:
        raise LatencyError(f"{frame.attrs.get('source', 'the table')} has no timings of the {stack} stack "
                           f"(it has {', '.join(stacks)})")
    rows = rows.reset_index(drop=True)
    rows.attrs = dict(frame.attrs)
    return rows


def generation_work_for(frame: pd.DataFrame, hardware: Hardware) -> GenerationWork:
    heads = frame["n_heads"].to_numpy()
    kv = frame["n_kv_heads"].to_numpy()
    if np.isnan(heads).all() and np.isnan(kv).all():
        heads_arg = kv_arg = None
    else:
        # Only the ratio n_kv_heads / n_heads matters: rows without heads get 1/1.
        heads_arg = np.where(np.isnan(heads), 1, heads).astype(np.int64)
        kv_arg = np.where(np.isnan(kv), heads_arg, kv).astype(np.int64)
    return generation_work(
        frame["n_layers"].to_numpy(), frame["d_model"].to_numpy(), heads_arg, kv_arg, hardware,
        frame["batch"].to_numpy(), frame["input_tokens"].to_numpy(), frame["output_tokens"].to_numpy(),
        np.asarray(frame["dtype"], dtype=object), frame["vocab"].to_numpy(),
    )
