"""Latency of generation per model shape, and everything it is fitted to.

- :mod:`morph.latency.workload`: :class:`Workload`, the serving setting (hardware,
  calibration, batch, tokens, dtype) every layer passes as one value;
- :mod:`morph.latency.model`: the pure model (host overhead, roofline, overlap);
- :mod:`morph.latency.hardware`: hardware presets and the CPU probe;
- :mod:`morph.latency.record`: the calibration record, its JSON file and the shipped ones;
- :mod:`morph.latency.calibration`: fitting a calibration to timings;
- :mod:`morph.latency.stacks`: serving stacks and their calibrations per device;
  :mod:`morph.latency.published`: the stacks' calibrations from public timings;
- :mod:`morph.latency.uncertainty`: each calibration's distribution (measured, published
  spread, prior, transfer) as seeded joint draws, bands and probabilities;
- :mod:`morph.latency.measurements`: reading and checking measurement tables;
- :mod:`morph.latency.memory`: weights plus key/value cache against device memory;
- :mod:`morph.latency.serving`: time to first token, time per token, throughput and cost
  per million tokens, each usable as a budget;
- :mod:`morph.latency.measure` (with :mod:`morph.latency.decoder`, needs PyTorch):
  timing real decoding of shapes.

The model's, the record's and the workload's public names are re-exported here, so ``from morph.latency import
predict_latency`` is the usual entry point.
"""

from .model import (
    DECODE_SEGMENTS,
    DEFAULT_CONTEXT,
    LatencyPrediction,
    forward_pass_s,
    overlap,
    predict_latency,
    roofline_latency,
)
from .record import COEFFICIENTS, Calibration, calibrations, calibrations_dir, load_calibration, resolve_calibration
from .memory import MemoryCheck, serving_memory
from .serving import SERVING_METRICS, serving_metric
from .stacks import STACKS, TRANSFER_ERROR
from .uncertainty import LatencyUncertainty, uncertainty_of
from .workload import PAPER_WORKLOAD, Workload

__all__ = [
    "COEFFICIENTS",
    "DECODE_SEGMENTS",
    "DEFAULT_CONTEXT",
    "Calibration",
    "LatencyPrediction",
    "MemoryCheck",
    "PAPER_WORKLOAD",
    "SERVING_METRICS",
    "STACKS",
    "TRANSFER_ERROR",
    "Workload",
    "LatencyUncertainty",
    "uncertainty_of",
    "calibrations",
    "calibrations_dir",
    "forward_pass_s",
    "load_calibration",
    "overlap",
    "predict_latency",
    "resolve_calibration",
    "roofline_latency",
    "serving_memory",
    "serving_metric",
]
