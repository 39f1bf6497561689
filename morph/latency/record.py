"""The calibration record: the latency model's coefficients for one hardware and software stack.

A :class:`Calibration` is a frozen, validated value with its JSON layout
(:meth:`Calibration.to_dict`, :meth:`Calibration.from_dict`,
:meth:`Calibration.save`); the shipped and saved ones live in
``data/calibrations/<name>.json`` (:func:`calibrations_dir`) and are read by
name with :func:`load_calibration`. :mod:`morph.latency.calibration` fits new
ones from timings.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..data import data_dir
from ..errors import LatencyError
from ..userdata import user_calibrations_dir
from .hardware import Hardware

__all__ = [
    "COEFFICIENTS",
    "Calibration",
    "calibrations",
    "calibrations_dir",
    "load_calibration",
    "resolve_calibration",
]

COEFFICIENTS = ("c_fixed_s", "c_layer_s", "eta_bw", "eta_flops", "overlap_p", "c_layer_device_s")
"""The latency model's coefficients, in the order calibrations list them."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Calibration:
    """Coefficients of the latency model for one hardware and software stack.

    Parameters
    ----------
    name : str
        Slug; the file is ``data/calibrations/<name>.json``.
    hardware : str
        Slug of the hardware it was fitted on.
    c_fixed_s : float
        Host time per forward pass, independent of depth (seconds, >= 0).
    c_layer_s : float
        Host time per layer per forward pass (seconds, >= 0).
    eta_bw : float
        Fraction of the datasheet memory bandwidth reached (0 < eta_bw <= 1).
    eta_flops : float
        Fraction of the datasheet matrix throughput reached (0 < eta_flops <= 1).
    overlap_p : float
        Exponent of :func:`overlap` (>= 1; 1 = host and device time add).
    c_layer_device_s : float
        Device time per layer per forward pass that no bandwidth or throughput
        explains (seconds, >= 0): the gaps between a layer's kernels and each
        small kernel's start-up and tail. It adds to the device time, so
        overlap cannot hide it; it matters where a captured graph has removed
        the host work (default 0).
    framework, protocol, source : str
        What was timed, how, and where the numbers come from.
    fitted : tuple of str
        Which coefficients were fitted; the others were fixed (see ``notes``).
    fit_mape, fit_max_error : float, optional
        Mean and worst absolute relative error of the fit on its measurements.
    loo_mape, loo_max_error : float, optional
        The same, each row predicted by a fit without it (leave-one-out).
    n_measurements : int
        Measurements fitted.
    notes : str
        Why the fixed coefficients have their values, and caveats.
    provenance : dict
        Free-form metadata of the measurements (machine, versions).
    stack : str
        The serving stack it describes (``hf-eager``, ``cuda-graphs``, ...;
        see :mod:`morph.latency.stacks`); empty for an unnamed one.
    relative_error : float, optional
        Half-width of the latency band as a fraction of the prediction
        (0 <= error < 1), stated with its basis in ``error_basis``; None
        falls back to the leave-one-out worst error.
    error_basis : str
        Where ``relative_error`` comes from.
    uncertainty : dict
        The distribution of the predictions it makes
        (:class:`morph.latency.uncertainty.LatencyUncertainty` as a dict):
        its basis (measured, published spread, prior), the spread, and the
        reasoning; empty for a calibration made before it was recorded.
    """

    name: str
    hardware: str
    c_fixed_s: float
    c_layer_s: float
    eta_bw: float
    eta_flops: float
    overlap_p: float
    c_layer_device_s: float = 0.0
    framework: str = ""
    protocol: str = ""
    source: str = ""
    fitted: tuple[str, ...] = ()
    fit_mape: float | None = None
    fit_max_error: float | None = None
    loo_mape: float | None = None
    loo_max_error: float | None = None
    n_measurements: int = 0
    notes: str = ""
    provenance: dict[str, str] = field(default_factory=dict, hash=False)
    stack: str = ""
    relative_error: float | None = None
    error_basis: str = ""
    uncertainty: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise LatencyError(
                f"calibration name {self.name!r} must start with a letter or digit and hold only letters, "
                "digits, '-', '_' and '.'"
            )
        values = {name: getattr(self, name) for name in COEFFICIENTS}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise LatencyError(f"calibration {self.name!r}: {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.c_fixed_s < 0 or self.c_layer_s < 0 or self.c_layer_device_s < 0:
            raise LatencyError(
                f"calibration {self.name!r}: overheads c_fixed_s, c_layer_s and c_layer_device_s must be >= 0"
            )
        for name in ("eta_bw", "eta_flops"):
            if not 0 < getattr(self, name) <= 1:
                raise LatencyError(f"calibration {self.name!r}: {name} must lie in (0, 1], got {getattr(self, name)}")
        if self.overlap_p < 1:
            raise LatencyError(f"calibration {self.name!r}: overlap_p must be >= 1, got {self.overlap_p}")
        unknown = [f for f in self.fitted if f not in COEFFICIENTS]
        if unknown:
            raise LatencyError(f"calibration {self.name!r}: unknown fitted coefficient(s) {', '.join(unknown)}")
        object.__setattr__(self, "fitted", tuple(self.fitted))
        if self.relative_error is not None:
            error = self.relative_error
            if isinstance(error, bool) or not isinstance(error, (int, float, np.floating, np.integer)) or not (
                math.isfinite(error) and 0 <= error < 1
            ):
                raise LatencyError(f"calibration {self.name!r}: relative_error must lie in [0, 1), got {error!r}")
            object.__setattr__(self, "relative_error", float(error))
        object.__setattr__(self, "provenance", {str(k): str(v) for k, v in dict(self.provenance).items()})
        if not isinstance(self.uncertainty, Mapping):
            raise LatencyError(f"calibration {self.name!r}: uncertainty must be a mapping")
        object.__setattr__(self, "uncertainty", dict(self.uncertainty))

    @property
    def coefficients(self) -> dict[str, float]:
        """``{name: value}`` of the five coefficients."""
        return {name: getattr(self, name) for name in COEFFICIENTS}

    def replace(self, **changes: Any) -> "Calibration":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary; :meth:`from_dict` reads it back."""
        raw = asdict(self)
        return {
            "name": self.name,
            "hardware": self.hardware,
            "framework": self.framework,
            "protocol": self.protocol,
            "source": self.source,
            "coefficients": self.coefficients,
            "fitted": list(self.fitted),
            "fit_error": {
                "n_measurements": self.n_measurements,
                "mape": raw["fit_mape"],
                "max_error": raw["fit_max_error"],
                "loo_mape": raw["loo_mape"],
                "loo_max_error": raw["loo_max_error"],
            },
            "notes": self.notes,
            "provenance": dict(self.provenance),
            "stack": self.stack,
            "relative_error": self.relative_error,
            "error_basis": self.error_basis,
            "uncertainty": dict(self.uncertainty),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], label: str = "the calibration") -> "Calibration":
        """Build from :meth:`to_dict`'s layout.

        Raises
        ------
        LatencyError
            If a required entry is missing or holds a bad value.
        """
        try:
            coefficients = payload["coefficients"]
            errors = payload.get("fit_error", {}) or {}
            known = {f.name for f in fields(cls)}
            extra = {
                k: payload[k]
                for k in ("framework", "protocol", "source", "notes", "provenance", "stack", "relative_error", "error_basis",
                          "uncertainty")
                if k in payload
            }
            # Files written before the per-layer device cost existed have none: it was zero.
            optional = {"c_layer_device_s": 0.0}
            return cls(
                name=payload["name"],
                hardware=payload["hardware"],
                **{name: coefficients.get(name, optional.get(name)) if name in optional else coefficients[name]
                   for name in COEFFICIENTS},
                fitted=tuple(payload.get("fitted", ())),
                fit_mape=errors.get("mape"),
                fit_max_error=errors.get("max_error"),
                loo_mape=errors.get("loo_mape"),
                loo_max_error=errors.get("loo_max_error"),
                n_measurements=int(errors.get("n_measurements", 0) or 0),
                **{k: v for k, v in extra.items() if k in known},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise LatencyError(f"{label} is not a calibration file (missing or bad entry {exc})") from None

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the calibration as JSON; by default to the user's ``calibrations/<name>.json``.

        The default folder is :func:`morph.userdata.user_calibrations_dir`
        (``~/.local/share/morph/calibrations``, or under ``$MORPH_DATA_HOME``
        or ``$XDG_DATA_HOME``), never the installed package.

        Returns
        -------
        Path
            The file written.
        """
        target = Path(path) if path is not None else user_calibrations_dir() / f"{self.name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        _read_calibration.cache_clear()
        return target


def calibrations_dir() -> Path:
    """Folder of the shipped and saved calibrations (``data/calibrations``)."""
    return data_dir() / "calibrations"


def calibrations() -> list[str]:
    """Names of the user's and the shipped calibrations, sorted."""
    folders = [f for f in (user_calibrations_dir(), calibrations_dir()) if f.is_dir()]
    return sorted({p.stem for folder in folders for p in folder.glob("*.json")})


def _named_calibration(name: str) -> Path | None:
    # The user's own calibration of a name comes first: it was made on their machine.
    for folder in (user_calibrations_dir(), calibrations_dir()):
        if (folder / f"{name}.json").is_file():
            return folder / f"{name}.json"
    return None


@lru_cache(maxsize=32)
def _read_calibration(path: str, mtime_ns: int) -> Calibration:
    label = Path(path).name
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LatencyError(f"{label} could not be read as JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise LatencyError(f"{label} is not a calibration file (expected a JSON object)")
    return Calibration.from_dict(payload, label)


def load_calibration(name_or_path: str | os.PathLike) -> Calibration:
    """A calibration by name (the user's ``calibrations/<name>.json``, else the shipped one) or from a JSON file.

    Raises
    ------
    LatencyError
        For an unknown name (listing the known ones) or a bad file.
    """
    text = str(name_or_path)
    path = Path(text)
    if not path.is_file():
        if _NAME.match(text) and not text.endswith(".json"):
            path = _named_calibration(text) or path
        if not path.is_file():
            known = ", ".join(calibrations()) or "none"
            raise LatencyError(f"unknown calibration {text!r}; known calibrations: {known}, or give a JSON file")
    return _read_calibration(str(path.resolve()), path.stat().st_mtime_ns)


def resolve_calibration(calibration: str | os.PathLike | Calibration | None, hardware: Hardware) -> Calibration:
    """The calibration a prediction uses: the one given, else the hardware's default.

    Raises
    ------
    LatencyError
        If none is given and the hardware has no default, or its default has
        not been produced yet.
    """
    if isinstance(calibration, Calibration):
        return calibration
    if calibration is not None:
        return load_calibration(calibration)
    default = hardware.default_calibration
    if not default:
        raise LatencyError(
            f"hardware {hardware.name!r} has no default calibration; name one "
            f"(known: {', '.join(calibrations()) or 'none'})"
        )
    if _named_calibration(default) is None:
        raise LatencyError(
            f"the default calibration {default!r} of hardware {hardware.name!r} has not been made yet; fit it from "
            f"timings with `morph latency calibrate MEASUREMENTS.csv --hardware {hardware.name} --save {default}`, "
            "or name another calibration"
        )
    return load_calibration(default)
