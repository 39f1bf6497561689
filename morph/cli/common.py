"""Argument types and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from typing import Any, Callable, Iterator, Sequence

from ..latency.hardware import DTYPES
from ..latency.stacks import stack_names
from ..latency.workload import WORKLOAD_FIELDS, Workload, as_workload

__all__ = [
    "add_workload_arguments", "positive_int", "positive_float", "print_json", "terminal_safe", "terminal_safe_output",
    "workload_from_args",
]


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


# C0 and C1 controls (ESC starts terminal escape sequences; CR overwrites a line), DEL, and the
# bidirectional overrides that reorder what is shown: never written to a terminal as they are.
_UNSAFE = {c: "\ufffd" for c in [*range(0, 9), *range(11, 32), *range(127, 160),
                                 *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def terminal_safe(text: str) -> str:
    """``text`` with every control character except tab and newline replaced by U+FFFD.

    Names in a user's table (candidate labels, calibration names) reach the
    terminal; an escape sequence among them could rewrite the screen or the title.
    """
    return text.translate(_UNSAFE)


class _SafeStream:
    """A text stream that writes :func:`terminal_safe` text to the stream it wraps."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(terminal_safe(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def terminal_safe_output() -> Iterator[None]:
    """Within the block, ``sys.stdout`` and ``sys.stderr`` write only :func:`terminal_safe` text."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SafeStream(sys.stdout), _SafeStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
