"""Loading and validating tables: the shipped datasets and the user's own runs.

The published numbers live in the top-level ``data/`` folder (copied into the
wheel as ``morph/data``); ``data/README.md`` gives their provenance and the
meaning and unit of every column.

User tables are CSV with a header. What the reader accepts, so that every file
either loads with this meaning or fails with one sentence saying why:

- UTF-8 text, with or without a byte-order mark; comma, semicolon or tab
  delimited (detected from the header line);
- numbers in plain or scientific notation (``2.9e10``), optionally quoted, and
  with thousands separators only in the form ``28,991,029,248`` (inside quotes
  when the delimiter is a comma);
- column ``N`` (alias ``params`` or ``parameters``), ``D`` (alias ``tokens``)
  and ``loss`` (nats per token, at most 50) for a table of runs; the aspect
  ratio from an ``aspect_ratio`` column or from ``n_layers`` and ``d_model``.

Rejected, each with a message naming the column and row: missing columns, a
column named twice, empty cells, non-numeric text, NaN or infinity, zero or
negative values, and rows that repeat another row exactly.
"""

from __future__ import annotations

import csv
import io
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import IO, Iterable, Union

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = [
    "data_dir",
    "read_table",
    "load_runs",
    "validate_runs",
    "load_candidates",
    "load_models_1b",
    "load_sweep_shapes",
    "to_numeric",
    "fit_mask",
    "split_provenance",
    "read_with_provenance",
    "MAX_BYTES",
    "MAX_CELLS",
    "MAX_COLUMNS",
    "MAX_LOSS",
]

Source = Union[str, os.PathLike, bytes, IO[str], IO[bytes], pd.DataFrame]

MAX_BYTES = 50 * 1024 * 1024
"""Largest table read (bytes): far above any real set of training runs, small enough to parse in seconds."""

MAX_COLUMNS = 1000
"""Most columns a table may have: a table of runs has a dozen; a wide file is refused before parsing."""

MAX_CELLS = 2_000_000
"""Most cells (rows x columns) a table may have, counted from its delimiters before parsing (100,000 runs
of 20 columns fit)."""

MAX_LOSS = 50.0
"""Largest accepted loss (nats per token): a random guess over 50,432 tokens scores 10.8."""

_ALIASES = {
    "N": ("N", "params", "parameters", "n_params"),
    "D": ("D", "tokens", "n_tokens", "train_tokens"),
    "loss": ("loss",),
}
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")


def data_dir() -> Path:
    """Folder holding the shipped datasets and calibrations.

    ``MORPH_DATA`` overrides it; otherwise the copy inside an installed wheel,
    else the repository's top-level ``data/`` (editable installs).
    """
    return _data_dir(os.environ.get("MORPH_DATA") or "")


@lru_cache(maxsize=4)
def _data_dir(override: str) -> Path:
    # Looked up on every read of a shipped file (a dozen per slider move): once per process and setting.
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent
    for candidate in (here / "data", here.parent / "data"):
        if (candidate / "morph_runs.csv").is_file():
            return candidate
    raise DataError("the shipped data folder was not found; reinstall morph or set MORPH_DATA")


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start}); save it as a UTF-8 CSV"
        ) from None


def _read_text(source: Source, name: str) -> str:
    if isinstance(source, bytes):
        raw = source
    elif hasattr(source, "read"):
        raw = source.read(MAX_BYTES + 1)  # type: ignore[union-attr]
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
    else:
        path = Path(source)  # type: ignore[arg-type]
        if not path.is_file():
            raise DataError(f"{path} does not exist or is not a file")
        if path.stat().st_size > MAX_BYTES:
            raise DataError(f"{path} is larger than {MAX_BYTES // 2**20} MB; this is not a table Morph reads")
        raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise DataError(f"{name} is larger than {MAX_BYTES // 2**20} MB; this is not a table Morph reads")
    return _decode(raw, name)


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_table(source: Source, name: str | None = None) -> pd.DataFrame:
    """Read a CSV table into a DataFrame of strings, checking its structure.

    Parameters
    ----------
    source : path, bytes, file-like or DataFrame
        The table. A DataFrame is returned as a copy, unchanged.
    name : str, optional
        How to call the table in error messages (defaults to the file name).

    Returns
    -------
    DataFrame
        One column per header field, cells as stripped strings.

    Raises
    ------
    DataError
        Not UTF-8, empty, no rows, a column named twice, or rows of the wrong length.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy()
    label = name or (Path(source).name if isinstance(source, (str, os.PathLike)) else "the table")
    text = _read_text(source, label)
    if not text.strip():
        raise DataError(f"{label} is empty")
    if "\x00" in text:
        raise DataError(f"{label} holds NUL bytes; it is not a text table")
    header_line = re.search(r"[^\r\n]*\S[^\r\n]*", text).group(0)  # type: ignore[union-attr]
    sep = _delimiter(header_line)
    _check_size(text, header_line, sep, label)
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True))
    except csv.Error as exc:
        raise DataError(f"{label} is not a readable CSV table ({exc})") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{label} has no header line with column names")
    header = [h.strip() for h in rows[0]]
    if len(header) == 1 and re.search(r"[|: ]", header[0]):
        raise DataError(
            f"{label} has a single column named {header[0][:40]!r}; Morph reads comma-, semicolon- or "
            "tab-separated files"
        )
    if any(not h for h in header):
        position = next(i for i, h in enumerate(header, start=1) if not h)
        raise DataError(
            f"{label}: column {position} of the header has no name (a trailing delimiter?); name it or remove it"
        )
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise DataError(f"{label}: column {h!r} appears more than once in the header")
        seen.add(h)
    body = rows[1:]
    if not body:
        raise DataError(f"{label} has a header but no rows")
    for i, row in enumerate(body, start=1):
        if len(row) != len(header):
            raise DataError(
                f"{label}: row {i} has {len(row)} fields but the header has {len(header)} "
                f"(is the delimiter {sep!r} right?)"
            )
    frame = pd.DataFrame([[c.strip() for c in r] for r in body], columns=header, dtype=str)
    return _numeric_where_possible(frame)


def _check_size(text: str, header_line: str, sep: str, label: str) -> None:
    """Refuse a table too wide or too large before parsing it (counting characters is fast)."""
    columns = header_line.count(sep) + 1
    if columns > MAX_COLUMNS:
        raise DataError(f"{label} has {columns:,} columns; a table of runs has at most {MAX_COLUMNS:,}")
    cells = text.count(sep) + text.count("\n") + 1  # an upper bound: quoted delimiters count too
    if cells > MAX_CELLS:
        raise DataError(f"{label} has about {cells:,} cells; at most {MAX_CELLS:,} are read (rows x columns)")


def _numeric_where_possible(frame: pd.DataFrame) -> pd.DataFrame:
    # Columns whose every cell is a number become numbers (flags, labels of
    # shape), so users can filter the table as they would any DataFrame; the
    # rest stay text and the validators report their first bad cell.
    for column in frame.columns:
        converted = pd.to_numeric(frame[column], errors="coerce")
        # Only wholly finite columns convert, so an error quotes what the user wrote ('1e999', not 'inf').
        if np.isfinite(converted.to_numpy(dtype=np.float64, na_value=np.nan)).all():
            frame[column] = converted
    return frame


def to_numeric(values: pd.Series, column: str, label: str = "the table", positive: bool = True) -> np.ndarray:
    """Parse one column to float64, or raise naming the first bad cell.

    Parameters
    ----------
    values : Series
        Cells (strings or numbers).
    column : str
        Column name, for the message.
    label : str
        Table name, for the message.
    positive : bool
        Require every value to be greater than zero.
    """
    if values.dtype.kind in "fiu":
        numbers = values.to_numpy(dtype=np.float64)
        texts = values.astype(str)
    else:
        texts = values.astype(str).str.strip().str.strip("\"'")
        cleaned = texts.where(~texts.str.match(_THOUSANDS), texts.str.replace(",", "", regex=False))
        numbers = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raw = values.iloc[i]
        # pandas 3 keeps a missing cell missing even through astype(str).
        cell = None if pd.isna(raw) else str(raw).strip()
        if cell is None:
            what = "is missing (NaN)"
        elif cell == "":
            what = "is empty"
        else:
            what = f"holds {cell[:40]!r}, which is not a finite number"
            if _DECIMAL_COMMA.match(cell):
                what += (f" (a decimal comma? Morph reads a point as the decimal mark: write "
                         f"{cell.replace(',', '.')}, or export the CSV with '.' as the decimal separator)")
        raise DataError(f"{label}: column {column!r}, row {i + 1} {what}")
    if positive and (numbers <= 0).any():
        i = int(np.flatnonzero(numbers <= 0)[0])
        raise DataError(f"{label}: column {column!r}, row {i + 1} is {numbers[i]:g}; it must be greater than zero")
    return numbers


def _find_columns(frame: pd.DataFrame, canonical: str) -> list[str]:
    # N and D must match exactly (a column "n" or "d" could mean anything);
    # the longer aliases match regardless of case.
    lower = {c.lower(): c for c in frame.columns}
    found = []
    for alias in _ALIASES[canonical]:
        if alias in frame.columns:
            found.append(alias)
        elif len(alias) > 1 and alias.lower() in lower:
            found.append(lower[alias.lower()])
    return found


def validate_runs(frame: pd.DataFrame, label: str = "the table", require_aspect_ratio: bool = False) -> pd.DataFrame:
    """Canonical table of runs: float ``N``, ``D``, ``loss`` and, when known, ``aspect_ratio``.

    Other columns are kept as they are. Aliases ``params``/``tokens`` are
    renamed to ``N``/``D``.

    Raises
    ------
    DataError
        Missing or bad columns, or rows that repeat another row exactly.
    """
    frame = frame.copy()
    missing = []
    for canonical in ("N", "D", "loss"):
        found = _find_columns(frame, canonical)
        if not found:
            missing.append(" or ".join(_ALIASES[canonical][:2]) if canonical != "loss" else "loss")
        elif len(found) > 1:
            raise DataError(f"{label} has both {found[0]!r} and its alias {found[1]!r}; keep one")
        elif found[0] != canonical:
            frame = frame.rename(columns={found[0]: canonical})
    if missing:
        raise DataError(f"{label} is missing the column(s) {', '.join(missing)}")
    for column in ("N", "D", "loss"):
        frame[column] = to_numeric(frame[column], column, label)
    too_high = frame["loss"].to_numpy() > MAX_LOSS
    if too_high.any():
        i = int(np.flatnonzero(too_high)[0])
        raise DataError(
            f"{label}: column 'loss', row {i + 1} is {frame['loss'].iloc[i]:g}, above {MAX_LOSS:g} nats per "
            "token; is it a perplexity? Give the training loss (its natural logarithm)"
        )
    if "aspect_ratio" in frame.columns:
        frame["aspect_ratio"] = to_numeric(frame["aspect_ratio"], "aspect_ratio", label)
    elif {"n_layers", "d_model"} <= set(frame.columns):
        layers = to_numeric(frame["n_layers"], "n_layers", label)
        width = to_numeric(frame["d_model"], "d_model", label)
        frame["n_layers"], frame["d_model"] = layers.astype(np.int64), width.astype(np.int64)
        frame["aspect_ratio"] = width / layers
    elif require_aspect_ratio:
        raise DataError(f"{label} needs an aspect_ratio column, or n_layers and d_model, for a shape-aware law")
    duplicated = frame.astype(str).duplicated(keep="first").to_numpy()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated)[0])
        key = frame.astype(str).iloc[i].tolist()
        first = int(np.flatnonzero((frame.astype(str) == key).all(axis=1).to_numpy())[0])
        raise DataError(f"{label}: row {i + 1} repeats row {first + 1} exactly; remove the duplicate")
    return frame.reset_index(drop=True)


def load_runs(source: Source | None = None, name: str | None = None, require_aspect_ratio: bool = False) -> pd.DataFrame:
    """Read and validate a table of training runs.

    Parameters
    ----------
    source : path, bytes, file-like or DataFrame, optional
        The table; defaults to the paper's 76 runs (``data/morph_runs.csv``).
    name : str, optional
        How to call the table in messages.
    require_aspect_ratio : bool
        Fail if the table gives no aspect ratio.

    Returns
    -------
    DataFrame
        See :func:`validate_runs`.
    """
    if source is None:
        source = data_dir() / "morph_runs.csv"
    label = name or (Path(source).name if isinstance(source, (str, os.PathLike)) else "the table")
    return validate_runs(read_table(source, label), label, require_aspect_ratio)


def fit_mask(frame: pd.DataFrame, fit_set: str | Iterable[bool] | None, label: str = "the table") -> np.ndarray:
    """Boolean mask of the rows to fit on.

    Parameters
    ----------
    frame : DataFrame
        The runs.
    fit_set : str, boolean array or None
        A column of 0/1 (or true/false) flags, a mask, or None for every row.
    """
    if fit_set is None:
        return np.ones(len(frame), dtype=bool)
    if isinstance(fit_set, str):
        if fit_set not in frame.columns:
            flags = [c for c in frame.columns if c.startswith("in_fit")]
            hint = f"; the table has {', '.join(flags)}" if flags else ""
            raise DataError(f"{label} has no column {fit_set!r} to choose the fit set{hint}")
        text = frame[fit_set].astype(str).str.strip().str.lower()
        truthy, falsy = text.isin(["1", "1.0", "true", "yes"]), text.isin(["0", "0.0", "false", "no", ""])
        if not (truthy | falsy).all():
            i = int(np.flatnonzero(~(truthy | falsy).to_numpy())[0])
            raise DataError(f"{label}: column {fit_set!r}, row {i + 1} must be 0 or 1, got {frame[fit_set].iloc[i]!r}")
        mask = truthy.to_numpy()
    else:
        mask = np.asarray(list(fit_set) if not isinstance(fit_set, np.ndarray) else fit_set, dtype=bool)
        if mask.shape != (len(frame),):
            raise DataError(f"the fit-set mask has {mask.size} entries for {len(frame)} rows")
    if not mask.any():
        raise DataError(f"the fit set {fit_set if isinstance(fit_set, str) else ''} selects no rows".replace("  ", " "))
    return mask


def split_provenance(text: str, strict: bool = False, label: str = "the table") -> tuple[dict[str, str], str]:
    """Leading ``# key: value`` provenance lines as a dict (keys lower-cased), and the table after them.

    Blank lines among the header are skipped. A ``#`` line without a colon is
    gathered under ``"comment"``, or refused with ``strict=True`` (files Morph
    writes itself always use ``key: value``).

    Raises
    ------
    DataError
        With ``strict=True``, a header line not of the form ``# key: value``.
    """
    metadata: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    body_start = len(lines)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            body_start = i
            break
        comment = stripped.lstrip("#").strip()
        if ":" in comment:
            key, value = comment.split(":", 1)
            metadata[key.strip().lower()] = value.strip()
        elif comment and strict:
            raise DataError(f"{label}: header line {i + 1} is not of the form '# key: value'")
        elif comment:
            metadata["comment"] = (metadata.get("comment", "") + " " + comment).strip()
    return metadata, "".join(lines[body_start:])


def read_with_provenance(
    source: Source, name: str | None = None, strict: bool = False, required_keys: Iterable[str] = ()
) -> tuple[dict[str, str], pd.DataFrame]:
    """A table after leading ``# key: value`` provenance lines: the lines as a dict, and the table.

    The one reader of measurement files, for the calibration and for the
    measurement harness's own files.

    Parameters
    ----------
    source : path, bytes, file-like or DataFrame
        A DataFrame is returned as a copy, with ``attrs["metadata"]`` as its provenance.
    name : str, optional
        How to call the table in error messages (defaults to the file name).
    strict : bool
        Refuse header lines not of the form ``# key: value`` (see :func:`split_provenance`).
    required_keys : iterable of str
        Provenance keys the header must have (checked before the table is read).

    Raises
    ------
    DataError
        A missing, oversized or non-UTF-8 file, a missing provenance key, no table after the
        header, or a malformed table.
    """
    if isinstance(source, pd.DataFrame):
        return dict(source.attrs.get("metadata", {})), source.copy()
    label = name or (Path(source).name if isinstance(source, (str, os.PathLike)) else "the table")
    metadata, body = split_provenance(_read_text(source, label), strict=strict, label=label)
    missing = [key for key in required_keys if key not in metadata]
    if missing:
        raise DataError(f"{label}: the provenance header lacks {', '.join(missing)}")
    if not body.strip():
        raise DataError(f"{label} holds no table after its provenance lines")
    return metadata, read_table(body.encode("utf-8"), label)


def _load_shipped(filename: str) -> pd.DataFrame:
    return pd.read_csv(data_dir() / filename)


def load_candidates() -> pd.DataFrame:
    """The 15 shapes the authors considered at 1B (``data/morph_1b_candidates.csv``)."""
    return _load_shipped("morph_1b_candidates.csv")


def load_models_1b() -> pd.DataFrame:
    """Published latency (A100 40GB) and accuracy of open 1B models and Morph-1B."""
    return _load_shipped("models_1b_eval.csv")


def load_sweep_shapes() -> pd.DataFrame:
    """Shapes of the paper's latency sweeps (no timings were published)."""
    return _load_shipped("latency_sweep_shapes.csv")
