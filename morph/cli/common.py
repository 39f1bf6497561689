"""Argument types and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable

__all__ = ["positive_int", "positive_float", "print_json"]


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
