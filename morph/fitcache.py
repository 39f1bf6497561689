"""Fits of the shipped runs, computed once per machine and kept on disk.

A bootstrap of the paper's fit (200 refits) takes about a second and loads
``scipy.optimize``; every dashboard page needs the same one. :func:`cached_fit`
computes it the first time and stores it as JSON in a per-user cache folder;
later calls, in any process, read it back instead. ``morph serve`` fills the
cache before its first page, so a dashboard kernel neither fits nor imports
scipy.

What is stored is every number :func:`morph.fitting.fit` returned, written
with Python's shortest round-tripping float repr, so a stored fit equals the
fit it came from to the last bit. The table and its fit mask are not stored:
they are read again from the shipped CSV, whose SHA-256 is part of the key.
So are the fit's options, the file format, and the versions of Morph, numpy
and scipy: a fit computed by other code is never returned. A file that is
unreadable, malformed or for another key is ignored and rewritten; a cache
folder that cannot be written only costs the time of fitting.

The folder is, in order: ``$MORPH_CACHE_HOME``; ``$XDG_CACHE_HOME/morph``;
``~/.cache/morph``. Deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from .data import data_dir, fit_mask, load_runs
from .fitting import FitResult, fit
from .laws import law_class
from .userdata import user_cache_dir

__all__ = ["cached_fit", "cache_dir", "fit_key"]

FORMAT = 1
"""Version of the stored layout; a change makes older files unreadable (and so recomputed)."""

RUNS_FILE = "morph_runs.csv"


def cache_dir() -> Path:
    """The per-user cache folder (:func:`morph.userdata.user_cache_dir`)."""
    return user_cache_dir()


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def fit_key(law: str, variant: str, method: str, fit_set: str | None, bootstrap: int, confidence: float,
            seed: int) -> dict[str, Any]:
    """Everything a stored fit depends on: the shipped runs' digest, the fit's options, the code's versions."""
    from . import __version__

    digest = hashlib.sha256((data_dir() / RUNS_FILE).read_bytes()).hexdigest()
    return {
        "format": FORMAT, "runs_sha256": digest, "law": law, "variant": variant, "method": method,
        "fit_set": fit_set, "bootstrap": int(bootstrap), "confidence": float(confidence), "seed": int(seed),
        "morph": __version__, "numpy": _version("numpy"), "scipy": _version("scipy"),
    }


def cached_fit(
    law: str = "inference-efficient",
    variant: str = "tied",
    *,
    method: str = "paper",
    fit_set: str | None = None,
    bootstrap: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> FitResult:
    """:func:`morph.fitting.fit` of the shipped runs, read from the cache when it was computed before.

    Parameters are those of :func:`~morph.fitting.fit` (the data is always
    the paper's 76 runs, ``data/morph_runs.csv``; ``fit_set`` names one of its
    0/1 columns). The first call with given options fits and stores the
    result; later ones, in this process or another, return the stored copy.

    Returns
    -------
    FitResult
        Equal, number for number, to what ``fit`` returns for the same options.
    """
    key = fit_key(law, variant, method, fit_set, bootstrap, confidence, seed)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24] + ".json"
    path = cache_dir() / "fits" / name
    stored = _read(path, key)
    if stored is not None:
        return stored
    result = fit(law=law, variant=variant, method=method, fit_set=fit_set,  # type: ignore[arg-type]
                 bootstrap=bootstrap, confidence=confidence, seed=seed)
    _write(path, {"key": key, "fit": _to_record(result)})
    return result


def _to_record(result: FitResult) -> dict[str, Any]:
    def array(values: np.ndarray | None) -> list | None:
        return None if values is None else np.asarray(values, dtype=np.float64).tolist()

    return {
        "params": result.law.params, "family": result.family, "variant": result.variant, "method": result.method,
        "free_parameters": list(result.free_parameters), "stderr": result.stderr, "objective": result.objective,
        "success": bool(result.success), "message": result.message, "warnings": list(result.warnings),
        "conf_int": result.conf_int, "confidence": result.confidence,
        "bootstrap_params": array(result.bootstrap_params), "covariance": array(result.covariance),
        "fit_set": result.fit_set, "n_bootstrap_failed": int(result.n_bootstrap_failed),
    }


def _from_record(record: dict[str, Any]) -> FitResult:
    cls = law_class(record["family"])
    frame = load_runs(require_aspect_ratio=cls.needs_aspect_ratio)
    boot, cov = record["bootstrap_params"], record["covariance"]
    conf = record["conf_int"]
    result = FitResult(
        law=cls.from_values({k: float(v) for k, v in record["params"].items()}),
        family=str(record["family"]), variant=str(record["variant"]), method=str(record["method"]),
        free_parameters=tuple(map(str, record["free_parameters"])),
        stderr=None if record["stderr"] is None else {k: float(v) for k, v in record["stderr"].items()},
        data=frame, fit_mask=fit_mask(frame, record["fit_set"]), objective=float(record["objective"]),
        success=bool(record["success"]), message=str(record["message"]), warnings=list(map(str, record["warnings"])),
        conf_int=None if conf is None else {k: (float(lo), float(hi)) for k, (lo, hi) in conf.items()},
        confidence=float(record["confidence"]),
        bootstrap_params=None if boot is None else np.array(boot, dtype=np.float64).reshape(len(boot), -1),
        covariance=None if cov is None else np.array(cov, dtype=np.float64),
        fit_set=record["fit_set"], n_bootstrap_failed=int(record["n_bootstrap_failed"]),
    )
    if result.bootstrap_params is not None and result.bootstrap_params.shape[1:] != (len(cls.parameter_names()),):
        raise ValueError("bootstrap draws of the wrong width")
    return result


def _read(path: Path, key: dict[str, Any]) -> FitResult | None:
    """The stored fit at ``path`` when it is for ``key`` and well formed; None otherwise."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") != key:
            return None
        return _from_record(stored["fit"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # missing, truncated or foreign: fit again


def _write(path: Path, content: dict[str, Any]) -> None:
    """Write atomically (a reader never sees half a file); a folder that cannot be written is no error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".fit-", suffix=".json")
    except OSError:
        return
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(content, out)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
