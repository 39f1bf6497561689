"""Morph: inference-efficient scaling laws, latency per model shape, and the accuracy-latency frontier.

The package is a set of pure functions over numpy arrays, one concept per module. Imports go
one way: each layer below uses only the layers above it in this list.

- :mod:`morph.errors`: the error types (one-line messages, exit status 2 on the command line);
- :mod:`morph.shapes`: model shapes, parameter counts, aspect ratio, FLOPs, shape enumeration;
- :mod:`morph.data`: the shipped datasets and validation of user tables;
- :mod:`morph.laws`: Chinchilla, inference-efficient and U-shaped laws, each with its fitting
  form (log-space shape factor and Jacobian, start grid, slider ranges), published presets,
  compute-optimal allocation;
- :mod:`morph.metrics`: MSE, R^2, relative error, rank correlation;
- :mod:`morph.robust` and :mod:`morph.fitting`: the robust Huber fitter and ``fit()`` (the
  paper's method and the robust one); :mod:`morph.fitcache`: fits of the shipped runs,
  computed once per machine and stored (scipy is imported only where a fit runs);
- :mod:`morph.latency`: generation latency per shape. :class:`Workload` (hardware,
  calibration, batch, tokens, dtype) in :mod:`~morph.latency.workload`, the model (a
  ``generate`` call, or one forward pass) in :mod:`~morph.latency.model`, hardware presets in :mod:`~morph.latency.hardware`, the
  calibration record in :mod:`~morph.latency.record`, fitting one in
  :mod:`~morph.latency.calibration`, serving stacks with their error bands in
  :mod:`~morph.latency.stacks` (calibrated from public timings by
  :mod:`~morph.latency.published`), memory feasibility in :mod:`~morph.latency.memory`,
  serving numbers usable as budgets in :mod:`~morph.latency.serving`, timing real decoding
  in :mod:`~morph.latency.measure` (with :mod:`~morph.latency.decoder`, needs PyTorch);
- :mod:`morph.frontier`: candidates, the accuracy-latency Pareto frontier, selection under a
  latency budget, the price of speed at a fixed compute budget;
- :mod:`morph.decision`: how sure a selection is: loss and latency bands, probability of being
  best and of meeting the budget from one set of joint draws, memory feasibility, fit-range warnings, compute-mode optima;
- :mod:`morph.lifetime`: training plus serving cost (FLOPs and GPU-hours);
- :mod:`morph.speculative`: speculative decoding: speed-up and best lookahead of draft models
  under a :class:`Workload`, acceptance rates, a Monte Carlo check of the closed form;
- :mod:`morph.drafts`: which draft shape to train: candidates ranked by speed-up under parameter
  and memory budgets;
- :mod:`morph.reproduce`: the paper's published numbers against the computed ones, each within
  the tolerance the computation supports;
- :mod:`morph.userdata`: the per-user data folder where saved calibrations go.
- :mod:`morph.cli`: the ``morph`` command, one module per subcommand.

Everything a person looks at is :mod:`morph.app` (the ``app`` extra; ``import morph`` never
imports it): plotting plumbing, figures and latency figures, widgets, the dashboard's settings,
view and share bar, the speculative decoding explorer, and messages with guarded callbacks;
:mod:`morph.app.serving_guard` hardens the server that ``morph serve`` runs (websocket frames,
hosts, sessions, closed tabs).
"""

from .latency.calibration import calibrate, leave_one_out, load_measurements
from .data import load_candidates, load_models_1b, load_runs, load_sweep_shapes
from .errors import DataError, FitError, LatencyError, MorphError, SelectionError, ShapeError
from .fitting import FitResult, fit
from .latency.hardware import Hardware, get_hardware, hardware_presets
from .laws import (
    PRESETS,
    ChinchillaLaw,
    ComputeOptimal,
    InferenceEfficientLaw,
    ScalingLaw,
    UShapedLaw,
    preset,
)
from .latency import (
    PAPER_WORKLOAD,
    Calibration,
    LatencyPrediction,
    Workload,
    load_calibration,
    predict_latency,
    roofline_latency,
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
    "PAPER_WORKLOAD",
    "PRESETS",
    "ScalingLaw",
    "SelectionError",
    "Shape",
    "ShapeError",
    "ShapeGrid",
    "UShapedLaw",
    "Workload",
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
