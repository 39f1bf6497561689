"""Numbers for people: rounded settings, spoken sizes (1.3B parameters, 29B tokens), seconds.

A slider on a log scale lands on values such as 2.5118864315095797; a person means 2.5.
The dashboard rounds a moved value to three significant digits (:func:`round_significant`)
before it becomes a setting, so the view, the link and the readout agree, and shows
sizes the way they are spoken (:func:`spoken`).
"""

from __future__ import annotations

import math

import ipywidgets as widgets

from .plotting import si_format

__all__ = ["human_seconds", "readout_box", "round_outward", "round_significant", "spoken"]


def round_significant(value: float, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant digits (2.5118864 -> 2.51); zero and non-finite unchanged."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def round_outward(value: float, up: bool, digits: int = 3) -> float:
    """``value`` rounded to ``digits`` significant digits away from the side it must stay on.

    ``up=True`` gives the smallest such number at least ``value`` (1.2345 -> 1.24),
    ``up=False`` the largest at most it (1.2345 -> 1.23): a budget set from a
    shape's own value that the shape still meets. Zero and non-finite unchanged.
    """
    if value == 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - digits + 1)
    rounded = float(f"{(math.ceil if up else math.floor)(value / step) * step:.{digits}g}")
    # The division can land a hair past a whole step (2.0 / 0.01): never round past value's side.
    if (up and rounded < value) or (not up and rounded > value):
        rounded = float(f"{(math.ceil if up else math.floor)(value / step + (1 if up else -1)) * step:.{digits}g}")
    return rounded


def human_seconds(seconds: float) -> str:
    """``2.0`` as ``2 s``, ``0.0123`` as ``0.0123 s``, ``1000`` as ``1,000 s``."""
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    return f"{seconds:.3g} s"


def spoken(value: float, unit: str) -> str:
    """A setting as people say it: parameters and tokens with B/M/T, FLOPs as ``2.9e20``, seconds with ``s``.

    Parameters
    ----------
    value : float
    unit : {"parameters", "tokens", "FLOPs", "s"}
    """
    if unit == "s":
        return human_seconds(value)
    if unit == "FLOPs":
        exponent = int(math.floor(math.log10(value)))
        mantissa = value / 10**exponent
        return f"{mantissa:.2g}e{exponent} FLOPs"
    return f"{si_format(value)} {unit}"


def readout_box(control: widgets.Widget, unit: str) -> widgets.HBox:
    """``control`` (its own readout hidden) with a readout that speaks its value (:func:`spoken`)."""
    control.readout = False
    label = widgets.HTML(layout=widgets.Layout(width="auto"))
    label.add_class("morph-readout")

    def show(change: object = None) -> None:
        label.value = spoken(float(control.value), unit)

    control.observe(show, names="value")
    show()
    box = widgets.HBox([control, label])
    box.add_class("morph-with-readout")
    return box
