"""Morph: inference-efficient scaling laws, latency per model shape, and the accuracy-latency frontier.

The package is a set of pure functions over numpy arrays, one concept per module:

- :mod:`morph.shapes`: model shapes, parameter counts, aspect ratio, FLOPs, shape enumeration;
- :mod:`morph.laws`: Chinchilla, inference-efficient and U-shaped laws, published presets,
  compute-optimal allocation;
- :mod:`morph.fitting` (with :mod:`morph.robust`): fitting laws to runs, the paper's method
  and a robust Huber fit;
- :mod:`morph.metrics`: MSE, R^2, relative error, rank correlation;
- :mod:`morph.data`: the shipped datasets and validation of user tables.
"""

from .data import load_candidates, load_models_1b, load_runs, load_sweep_shapes
from .errors import DataError, FitError, LatencyError, MorphError, SelectionError, ShapeError
from .fitting import FitResult, fit
from .laws import (
    PRESETS,
    ChinchillaLaw,
    ComputeOptimal,
    InferenceEfficientLaw,
    ScalingLaw,
    UShapedLaw,
    preset,
)
from .metrics import Metrics, evaluate
from .shapes import (
    Shape,
    ShapeGrid,
    aspect_ratio,
    enumerate_shapes,
    inference_flops_per_token,
    parameter_count,
    training_flops,
)

__version__ = "0.1.0"

__all__ = [
    "ChinchillaLaw",
    "ComputeOptimal",
    "DataError",
    "FitError",
    "FitResult",
    "InferenceEfficientLaw",
    "LatencyError",
    "Metrics",
    "MorphError",
    "PRESETS",
    "ScalingLaw",
    "SelectionError",
    "Shape",
    "ShapeError",
    "ShapeGrid",
    "UShapedLaw",
    "aspect_ratio",
    "enumerate_shapes",
    "evaluate",
    "fit",
    "inference_flops_per_token",
    "load_candidates",
    "load_models_1b",
    "load_runs",
    "load_sweep_shapes",
    "parameter_count",
    "preset",
    "training_flops",
]
