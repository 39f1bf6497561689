"""Exceptions whose message is meant for the user, one clear sentence each.

The CLI prints ``str(error)`` on one line and exits with status 2; the
notebooks and the dashboard show it in the page. Anything else that escapes is
a bug in Morph, not in the user's input.
"""

from __future__ import annotations

__all__ = ["MorphError", "DataError", "ShapeError", "FitError", "LatencyError", "SelectionError"]


class MorphError(ValueError):
    """Base class: something the user asked for cannot be done as asked."""


class DataError(MorphError):
    """A table of runs or measurements is missing columns or holds bad values."""


class ShapeError(MorphError):
    """A model shape is not a valid transformer (for example heads do not divide d_model)."""


class FitError(MorphError):
    """A fit could not produce parameters (too few points, no convergence)."""


class LatencyError(MorphError):
    """Unknown hardware or calibration, or a measurement table that cannot be used."""


class SelectionError(MorphError):
    """A selection problem with no answer: empty candidates or budgets nothing meets."""
