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

How far each prediction may be off, and on what basis, is
:mod:`morph.latency.uncertainty`: the bands and probabilities come from joint
draws of each calibration's stated distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


from ..errors import LatencyError
from .hardware import Hardware
from .record import Calibration, calibrations, load_calibration

__all__ = [
    "STACKS",
    "Stack",
    "TRANSFER_ERROR",
    "stack_names",
    "stack_calibration",
]

TRANSFER_ERROR = 0.25
"""Half-width (a factor ``x/1.25`` at 95%) of the further shared factor drawn when a device borrows
another device's coefficients.

Host overhead is CPU-side framework work that changes with the host CPU and the
software versions more than with the GPU, and the fraction of datasheet
bandwidth reached differs between GPU generations and power limits (gpt-fast's
A100-80GB at 330 W reaches 68% of its datasheet bandwidth, while the same
README puts the card's empirical peak at 1,700 GB/s, 83%). A quarter covers
that gap; it is a stated allowance, not a measurement."""


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
        {"a100-80gb": "a100-80gb-cuda-graphs", "h100-sxm": "h100-sxm-cuda-graphs"},
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


def shipped_stack_calibrations() -> list[str]:
    """Names of the stacks' calibrations that exist in the calibrations folder (for checks)."""
    known = set(calibrations())
    return [name for stack in STACKS.values() for name in stack.calibrations.values() if name in known]
