"""Morph: inference-efficient scaling laws, latency per model shape, and the accuracy-latency frontier.

The package is a set of pure functions over numpy arrays, one concept per module:

- :mod:`morph.shapes`: model shapes, parameter counts, aspect ratio, FLOPs, shape enumeration;
- :mod:`morph.laws`: Chinchilla, inference-efficient and U-shaped laws, published presets,
  compute-optimal allocation;
- :mod:`morph.fitting` (with :mod:`morph.robust`): fitting laws to runs, the paper's method
  and a robust Huber fit;
- :mod:`morph.metrics`: MSE, R^2, relative error, rank correlation;
- :mod:`morph.data`: the shipped datasets and validation of user tables;
- :mod:`morph.latency` (with :mod:`morph.hardware` and :mod:`morph.calibration`): generation
  latency per shape from host overhead and the roofline, hardware presets, calibration from timings;
- :mod:`morph.measure` (with :mod:`morph.decoder`, needs PyTorch): timing real decoding of shapes;
- :mod:`morph.frontier`: candidates, the accuracy-latency Pareto frontier, selection under a
  latency budget, the price of speed at a fixed compute budget;
- :mod:`morph.lifetime`: training plus serving cost (FLOPs and GPU-hours).

For notebooks and the dashboard (imported on demand, not by ``import morph``):
:mod:`morph.figures` (plotly figures), :mod:`morph.widgets` (explorers and the fitting app),
:mod:`morph.dashboard` (the Voila dashboard) and :mod:`morph.ui` (messages and guarded callbacks);
:mod:`morph.serving_guard` hardens the server that ``morph serve`` runs (websocket frames, hosts,
sessions, closed tabs).
"""

from .data import load_candidates, load_models_1b, load_runs, load_sweep_shapes
from .errors import DataError, FitError, LatencyError, MorphError, SelectionError, ShapeError
from .hardware import Hardware, get_hardware, hardware_presets
from .laws import (
    PRESETS,
    ChinchillaLaw,
    ComputeOptimal,
    InferenceEfficientLaw,
    ScalingLaw,
    UShapedLaw,
    preset,
)
from .latency import Calibration, LatencyPrediction, load_calibration, predict_latency, roofline_latency
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

# Fitting and calibration need scipy.optimize (~40 MB and ~0.4 s to import): loaded on first
# use, so that a dashboard kernel, which fits nothing by default, does without it.
_LAZY = {
    "FitResult": "fitting", "fit": "fitting",
    "calibrate": "calibration", "leave_one_out": "calibration", "load_measurements": "calibration",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Calibration",
    "ChinchillaLaw",
    "ComputeOptimal",
    "DataError",
    "FitError",
    "FitResult",
    "Hardware",
    "InferenceEfficientLaw",
    "LatencyError",
    "LatencyPrediction",
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
    "calibrate",
    "enumerate_shapes",
    "evaluate",
    "fit",
    "get_hardware",
    "hardware_presets",
    "inference_flops_per_token",
    "leave_one_out",
    "load_calibration",
    "load_candidates",
    "load_measurements",
    "load_models_1b",
    "load_runs",
    "load_sweep_shapes",
    "parameter_count",
    "predict_latency",
    "preset",
    "roofline_latency",
    "training_flops",
]
