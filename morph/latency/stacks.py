"""Serving stacks, the error of each calibration, and latency bands.

A *serving stack* is the software that runs a model: Hugging Face ``generate``
in eager PyTorch pays host work for every layer of every step, while a
graph-captured stack (CUDA graphs: ``torch.compile(mode="reduce-overhead")``
as in gpt-fast and torchao; vLLM's and TensorRT-LLM's decode paths capture
graphs too) replays a whole decode step with one launch, so its per-layer host
time is near zero and decode is bound by memory bandwidth.

Each stack has calibrations fitted on the devices that have public timings
(:data:`STACKS`). A device without its own borrows the reference device's
coefficients with its own datasheet: a *transfer*, flagged as such, whose
error is widened by :data:`TRANSFER_ERROR`.

Every prediction carries a band ``[latency / (1 + e), latency * (1 + e)]``
(never below the roofline) with ``e`` the calibration's relative error, and
"meets the budget" becomes a probability: the latency is taken as log-normal
with the band as its central 95% interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import LatencyError
from .hardware import Hardware
from .record import Calibration, calibrations, load_calibration

_ERFC = np.frompyfunc(math.erfc, 1, 1)

__all__ = [
    "STACKS",
    "Stack",
    "TRANSFER_ERROR",
    "BAND_Z",
    "CalibrationError",
    "stack_names",
    "stack_calibration",
    "calibration_error",
    "latency_band",
    "probability_within",
]

TRANSFER_ERROR = 0.25
"""Relative error added when a device borrows another device's coefficients.

Host overhead is CPU-side framework work that changes with the host CPU and the
software versions more than with the GPU, and the fraction of datasheet
bandwidth reached differs between GPU generations and power limits (gpt-fast's
A100-80GB at 330 W reaches 68% of its datasheet bandwidth, while the same
README puts the card's empirical peak at 1,700 GB/s, 83%). A quarter covers
that gap; it is a stated allowance, not a measurement."""

BAND_Z = 1.959963984540054
"""The band is read as the central 95% interval of a log-normal latency (normal quantile 0.975)."""


@dataclass(frozen=True)
class Stack:
    """One serving stack: its slug, a label, and its calibration per device.

    Attributes
    ----------
    name : str
        Slug used by ``--stack`` and dashboard links.
    label : str
        Human-readable name.
    calibrations : mapping of str to str
        Hardware slug -> calibration name, for the devices with public timings;
        the first is the reference other devices borrow from.
    """

    name: str
    label: str
    calibrations: Mapping[str, str]

    @property
    def reference_hardware(self) -> str:
        """The device other devices borrow this stack's coefficients from."""
        return next(iter(self.calibrations))


STACKS: Mapping[str, Stack] = {
    "hf-eager": Stack(
        "hf-eager",
        "Hugging Face generate (eager PyTorch)",
        {"a100-40gb": "a100-40gb-hf-generate", "cpu": "cpu-torch-eager"},
    ),
    "cuda-graphs": Stack(
        "cuda-graphs",
        "graph-captured decode (CUDA graphs: torch.compile reduce-overhead, vLLM, TensorRT-LLM)",
        {"a100-80gb": "a100-80gb-cuda-graphs"},
    ),
}
"""The serving stacks with shipped calibrations."""


def stack_names() -> tuple[str, ...]:
    """Slugs of :data:`STACKS`."""
    return tuple(STACKS)


def get_stack(name: str) -> Stack:
    """The :class:`Stack` called ``name``.

    Raises
    ------
    LatencyError
        For an unknown stack, listing the known ones.
    """
    if not isinstance(name, str) or name not in STACKS:
        raise LatencyError(f"unknown serving stack {name!r}; known stacks: {', '.join(STACKS)}")
    return STACKS[name]


def stack_calibration(stack: str, hardware: Hardware) -> Calibration:
    """The calibration of ``stack`` for ``hardware``: its own, else the reference device's (a transfer).

    A calibration the user saved as ``<hardware>-<stack>`` (for example
    ``h100-sxm-cuda-graphs``, from ``morph measure --stack cuda-graphs`` and
    ``morph latency calibrate --save``) comes first: it was measured on that
    device, so it replaces a prior or a transfer there.

    Raises
    ------
    LatencyError
        For an unknown stack, or a device of another kind (a GPU stack on the
        CPU) than every device the stack was calibrated on.
    """
    entry = get_stack(stack)
    measured = _user_stack_calibration(stack, hardware)
    if measured is not None:
        return measured
    if hardware.name in entry.calibrations:
        return load_calibration(entry.calibrations[hardware.name])
    for device, name in entry.calibrations.items():
        if _kind_of(device) == hardware.kind:
            return load_calibration(name)
    raise LatencyError(
        f"the {stack} stack has no calibration for a {hardware.kind} and none to transfer from; "
        f"it is calibrated on {', '.join(entry.calibrations)}"
    )


def _user_stack_calibration(stack: str, hardware: Hardware) -> Calibration | None:
    from ..userdata import user_calibrations_dir

    path = user_calibrations_dir() / f"{hardware.name}-{stack}.json"
    return load_calibration(path) if path.is_file() else None


def _kind_of(device: str) -> str:
    return "cpu" if device == "cpu" else "gpu"


@dataclass(frozen=True)
class CalibrationError:
    """How far a prediction may be off.

    Attributes
    ----------
    relative : float
        Half-width of the band as a fraction of the prediction.
    transferred : bool
        Whether the coefficients were fitted on another device.
    basis : str
        One sentence: where the number comes from.
    """

    relative: float
    transferred: bool
    basis: str


def calibration_error(calibration: Calibration, hardware: Hardware) -> CalibrationError:
    """The relative error of ``calibration``'s predictions on ``hardware``.

    The calibration's stated ``relative_error`` or else its leave-one-out
    worst error; plus :data:`TRANSFER_ERROR` when the coefficients were fitted
    on another device. Without either, the transfer error alone stands in.
    """
    own = calibration.relative_error if calibration.relative_error is not None else calibration.loo_max_error
    basis = calibration.error_basis or (
        "leave-one-out worst error" if calibration.loo_max_error is not None else "no error estimate"
    )
    transferred = calibration.hardware != hardware.name
    relative = float(own or 0.0)
    if transferred:
        relative += TRANSFER_ERROR
        basis = (
            f"{basis}; plus {TRANSFER_ERROR:.0%} for coefficients transferred from {calibration.hardware} "
            f"to {hardware.name}"
        )
    elif own is None:
        relative = TRANSFER_ERROR
        basis = f"no error estimate; the transfer allowance of {TRANSFER_ERROR:.0%} stands in"
    # The band's lower edge latency / (1 + e) stays positive for any e; cap at 0.99 for a sane upper edge.
    return CalibrationError(min(relative, 0.99), transferred, basis)


def latency_band(
    latency_s: ArrayLike, relative_error: float, roofline_s: ArrayLike | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Low and high edges of the latency band (seconds).

    ``[latency / (1 + e), latency * (1 + e)]``: symmetric in log space, so a
    prediction is off by the same factor either way. The low edge never goes
    below the roofline, a hard floor.
    """
    latency = np.asarray(latency_s, dtype=np.float64)
    factor = 1.0 + float(relative_error)
    low = latency / factor
    if roofline_s is not None:
        low = np.minimum(np.maximum(low, np.asarray(roofline_s, dtype=np.float64)), latency)
    return low, latency * factor


def probability_within(latency_s: ArrayLike, relative_error: float, budget: float | ArrayLike) -> NDArray[np.float64]:
    """Probability that the true latency is within ``budget`` (same unit as ``latency_s``).

    The latency is taken as log-normal around the prediction with the band
    ``latency * (1 + e) ** (+-1)`` as its central 95% interval; with no error
    the answer is 0 or 1.
    """
    latency = np.asarray(latency_s, dtype=np.float64)
    limit = np.asarray(budget, dtype=np.float64)
    if relative_error <= 0:
        return (latency <= limit).astype(np.float64)
    sigma = np.log1p(relative_error) / BAND_Z
    with np.errstate(divide="ignore"):
        z = (np.log(limit) - np.log(latency)) / sigma
    # The normal CDF from math.erfc, element by element: exact to rounding, and it keeps
    # scipy.special (about 27 MB) out of every dashboard kernel.
    return np.asarray(_ERFC(-z / math.sqrt(2.0)), dtype=np.float64) / 2.0


def shipped_stack_calibrations() -> list[str]:
    """Names of the stacks' calibrations that exist in the calibrations folder (for checks)."""
    known = set(calibrations())
    return [name for stack in STACKS.values() for name in stack.calibrations.values() if name in known]
