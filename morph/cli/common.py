"""Argument types and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable, Sequence

from ..latency.hardware import DTYPES
from ..latency.stacks import stack_names
from ..latency.workload import WORKLOAD_FIELDS, Workload, as_workload

__all__ = ["add_workload_arguments", "positive_int", "positive_float", "print_json", "workload_from_args"]


def positive_int(allow_zero: bool = False) -> Callable[[str], int]:
    """argparse type: a whole number > 0 (or >= 0)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'>= 0' if allow_zero else '> 0'}")
        return value

    return parse


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


# (help, metavar) of each workload option
_WORKLOAD_HELP = {
    "hardware": ("hardware preset", "NAME"),
    "calibration": ("calibration name or JSON file", "NAME"),
    "batch": ("sequences per call", "SEQUENCES"),
    "input_tokens": ("prompt tokens", "TOKENS"),
    "output_tokens": ("generated tokens per sequence", "TOKENS"),
    "dtype": ("weights and cache dtype", None),
    "stack": ("serving stack; picks its calibration for the hardware, transferred where it has none", None),
}


def add_workload_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings: Sequence[str] = WORKLOAD_FIELDS,
    *,
    follow: str | None = None,
) -> None:
    """Add ``--hardware``, ``--calibration``, ``--batch``, ``--input-tokens``, ``--output-tokens``, ``--dtype``, ``--stack``.

    Parameters
    ----------
    parser : ArgumentParser or argument group
    settings : sequence of str
        Which of the :class:`~morph.latency.Workload` settings to offer.
    follow : str, optional
        Leave unset options at None and say in the help where their value
        comes from instead (e.g. ``"the device"``); by default they default to
        :class:`~morph.latency.Workload`'s values.
    """
    defaults = Workload()
    for name in settings:
        default = None if follow else getattr(defaults, name)
        if name == "calibration" and default is None:
            shown = "the hardware's own"
        elif name == "stack" and default is None:
            shown = "the hardware's default calibration"
        else:
            shown = follow or default
        text, metavar = _WORKLOAD_HELP[name]
        options: dict[str, Any] = {"default": default, "help": f"{text} (default: {shown})", "metavar": metavar}
        if name in ("batch", "input_tokens", "output_tokens"):
            options["type"] = positive_int()
        elif name == "dtype":
            options["choices"] = DTYPES
        elif name == "stack":
            options["choices"] = stack_names()
        parser.add_argument("--" + name.replace("_", "-"), **options)


def workload_from_args(args: argparse.Namespace, base: Workload | None = None) -> Workload:
    """The :class:`~morph.latency.Workload` of parsed arguments: ``base`` with the options given."""
    return as_workload(base, **{name: getattr(args, name) for name in WORKLOAD_FIELDS if hasattr(args, name)})


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def print_json(payload: Any) -> None:
    """Print one JSON object; NaN and infinities become null (JSON has no NaN)."""
    print(json.dumps(_clean(payload), allow_nan=False))
