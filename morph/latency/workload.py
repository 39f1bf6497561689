"""The serving workload: where and how a model generates, in one value.

A latency prediction needs six settings besides the model's shape: the
hardware, the calibration of its software stack, the batch, the prompt and
output lengths, and the dtype. :class:`Workload` holds them, validated once,
so the latency model, the calibration, the measurements, the frontier, the
figures, the dashboard and the command line all pass one value instead of six.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..errors import LatencyError
from .hardware import DTYPES, Hardware, canonical_dtype, get_hardware
from .record import Calibration, resolve_calibration
from .stacks import get_stack, stack_calibration

__all__ = ["PAPER_WORKLOAD", "WORKLOAD_FIELDS", "Workload"]

WORKLOAD_FIELDS = ("hardware", "calibration", "batch", "input_tokens", "output_tokens", "dtype", "stack")
"""The settings of a :class:`Workload`, in order."""


def _count(name: str, value: object) -> int:
    """``value`` as a whole number >= 1 (Python or numpy integer, or a whole float)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise LatencyError(f"{name} must be a whole number >= 1, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise LatencyError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Workload:
    """One serving setting: hardware, calibration, batch, prompt and output tokens, dtype.

    Parameters
    ----------
    hardware : str or Hardware
        Preset slug (see :func:`morph.latency.hardware.hardware_presets`) or a
        :class:`~morph.latency.hardware.Hardware`.
    calibration : str, path or Calibration, optional
        Coefficients of the latency model; None takes the hardware's default.
    batch : int
        Sequences generated together (>= 1).
    input_tokens, output_tokens : int
        Prompt length and tokens generated per sequence (tokens, >= 1).
    dtype : {"fp32", "bf16", "fp16"}
        Weight, activation and cache dtype (aliases such as ``"bfloat16"``
        are accepted and stored by their short name).
    stack : str, optional
        Serving stack (``"hf-eager"``, ``"cuda-graphs"``; see
        :mod:`morph.latency.stacks`): picks the stack's calibration for the
        hardware, transferred from another device where it has none. None
        takes the hardware's default calibration. A named ``calibration``
        wins over the stack.

    Raises
    ------
    LatencyError
        For an unknown hardware or dtype, or a count that is not a whole
        number >= 1. A named calibration is checked when it is first used.
    """

    hardware: str | Hardware = "a100-40gb"
    calibration: str | os.PathLike | Calibration | None = None
    batch: int = 1
    input_tokens: int = 128
    output_tokens: int = 256
    dtype: str = "bf16"
    stack: str | None = None

    def __post_init__(self) -> None:
        get_hardware(self.hardware)
        if self.stack is not None:
            get_stack(self.stack)
        if not isinstance(self.dtype, str):
            raise LatencyError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        object.__setattr__(self, "dtype", canonical_dtype(self.dtype))
        for name in ("batch", "input_tokens", "output_tokens"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))

    @property
    def device(self) -> Hardware:
        """The :class:`~morph.latency.hardware.Hardware` this workload runs on (looked up once per workload)."""
        found = self.__dict__.get("_device")
        if found is None:
            found = get_hardware(self.hardware)
            object.__setattr__(self, "_device", found)
        return found

    @property
    def hardware_name(self) -> str:
        """Slug of the hardware."""
        return self.device.name

    @property
    def calibration_name(self) -> str | None:
        """Name of the calibration given (None: the hardware's default)."""
        if self.calibration is None:
            return None
        return getattr(self.calibration, "name", None) or str(self.calibration)

    def resolved_calibration(self) -> Calibration:
        """The calibration a prediction uses: the one given, else the hardware's default.

        Raises
        ------
        LatencyError
            For an unknown calibration, or hardware without a default one.
        """
        if self.calibration is None and self.stack is not None:
            return stack_calibration(self.stack, self.device)
        return resolve_calibration(self.calibration, self.device)

    @property
    def stack_name(self) -> str:
        """The serving stack of the calibration used (``"custom"`` for one without a stack)."""
        if self.stack is not None and self.calibration is None:
            return self.stack
        return self.resolved_calibration().stack or "custom"

    def latency_uncertainty(self) -> Any:
        """The distribution of this workload's latency predictions (:class:`~morph.latency.uncertainty.LatencyUncertainty`)."""
        from .uncertainty import uncertainty_of

        return uncertainty_of(self.resolved_calibration(), self.device)

    def timed_like(self, other: "Workload") -> bool:
        """Whether timings of one stand for the other: same hardware, batch, tokens and dtype.

        The calibration is left out: it predicts timings, it does not change them.
        """
        return self.hardware_name == other.hardware_name and self.stack_name == other.stack_name and (
            self.batch, self.input_tokens, self.output_tokens, self.dtype
        ) == (other.batch, other.input_tokens, other.output_tokens, other.dtype)

    def replace(self, **changes: Any) -> "Workload":
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings: hardware and calibration by name."""
        return {**asdict(self), "hardware": self.hardware_name, "calibration": self.calibration_name}

    def describe(self) -> str:
        """One line for titles and reports: batch, tokens and dtype."""
        return f"batch {self.batch}, {self.input_tokens} in + {self.output_tokens} out tokens, {self.dtype}"


PAPER_WORKLOAD = Workload(
    hardware="a100-40gb",
    calibration="a100-40gb-hf-generate",
    batch=1,
    input_tokens=128,
    output_tokens=256,
    dtype="bf16",
)
"""The paper's timing setting (section 6): Hugging Face ``generate`` on an A100 40GB in bf16,
batch 1, 128 prompt and 256 output tokens."""


def workload_arguments(workload: Workload | None, **overrides: Any) -> dict[str, Any]:
    """The six settings of ``workload`` (default :class:`Workload`), with the non-None ``overrides``.

    The latency functions take array-valued batch, tokens and dtype as
    overrides (they broadcast against the shapes), which a :class:`Workload`
    cannot hold; this merges both into keyword arguments.
    """
    unknown = set(overrides) - set(WORKLOAD_FIELDS)
    if unknown:
        raise TypeError(f"unknown workload setting(s): {', '.join(sorted(unknown))}")
    base = workload if workload is not None else Workload()
    if not isinstance(base, Workload):
        raise LatencyError(f"workload must be a morph.Workload, got {type(base).__name__}")
    settings = {name: getattr(base, name) for name in WORKLOAD_FIELDS}
    settings.update({name: value for name, value in overrides.items() if value is not None})
    return settings


def as_workload(workload: Workload | None = None, **overrides: Any) -> Workload:
    """A :class:`Workload` from ``workload`` with the non-None scalar ``overrides`` applied."""
    return Workload(**workload_arguments(workload, **overrides))
