"""The dashboard's settings: every input as a frozen dataclass, and its URL form.

:class:`DashboardSettings` holds every control's value; :meth:`DashboardSettings.to_query`
and :func:`settings_from_query` turn it into a link and back. Anything read from a link
is hostile input: unknown keys and names are ignored, numbers are clamped to the range
the dashboard offers, and every change is reported in a sentence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np

from ..latency import Workload, calibrations
from ..latency.hardware import DTYPES, hardware_presets
from ..latency.serving import SERVING_METRICS
from ..latency.stacks import STACKS
from ..laws import PRESETS

__all__ = [
    "DashboardSettings",
    "BATCH_LADDER",
    "FIT_B",
    "MODES",
    "NUMBER_SETTINGS",
    "NumberSetting",
    "PAPER_TOKENS",
    "SHAPE_SOURCES",
    "TOKEN_LADDER",
    "clamp_fields",
    "setting_choices",
    "settings_from_query",
]

PAPER_TOKENS = 28_991_029_248
"""Training tokens of the paper's 1B models (20 x the nominal 1.45B parameters)."""

MORPH_1B_PARAMETERS = 1_668_885_504
"""``N`` of Morph-1B (12 layers x 3072)."""

FIT_B = "fit-b"
"""Law choice meaning "fit the inference-efficient law on the paper's fit set B, with a bootstrap"."""

MODES = {"range": "parameter range", "compute": "compute budget"}
SHAPE_SOURCES = {
    "paper": "the paper's 15 candidates at 1B",
    "grid": "every shape (width a multiple of 64, 16 heads)",
}

# Batch and sequence lengths are counts that matter in factors of two; a
# ladder of powers of two is a log-scale slider with values people use.
BATCH_LADDER = tuple(2**k for k in range(0, 10))  # 1 .. 512
TOKEN_LADDER = tuple(2**k for k in range(0, 14))  # 1 .. 8192

MAX_QUERY_FIELDS = 40
MAX_VALUE_CHARS = 64
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$")


@dataclass(frozen=True)
class NumberSetting:
    """A numeric setting: its query key and the range the dashboard accepts."""

    field: str
    key: str
    low: float
    high: float
    integer: bool = False
    ladder: tuple[int, ...] = ()


_NUMBERS = (
    NumberSetting("params_min", "params_min", 1e7, 1e12),
    NumberSetting("params_max", "params_max", 1e7, 1e12),
    NumberSetting("tokens", "tokens", 1e8, 1e14),
    NumberSetting("flops", "flops", 1e17, 1e27),
    # The budget, in the unit of the budget metric: each metric narrows this to its own range.
    NumberSetting("latency_budget_s", "latency", min(m.budget_range[0] for m in SERVING_METRICS.values()),
                  max(m.budget_range[1] for m in SERVING_METRICS.values())),
    NumberSetting("price_per_gpu_hour", "price", 0.01, 1000.0),
    NumberSetting("batch", "batch", 1, 512, integer=True, ladder=BATCH_LADDER),
    NumberSetting("input_tokens", "input", 1, 8192, integer=True, ladder=TOKEN_LADDER),
    NumberSetting("output_tokens", "output", 1, 8192, integer=True, ladder=TOKEN_LADDER),
    NumberSetting("top_k", "top_k", 1, 20, integer=True),
)


def _law_choices() -> dict[str, str]:
    choices = {name: f"{name} ({p.law.family}, {p.variant})" for name, p in PRESETS.items()}
    choices[FIT_B] = "fit on the paper's runs (fit set B, bootstrap)"
    return choices


def setting_choices() -> dict[str, dict[str, str]]:
    """Allowed values of each text setting, with the label a control shows for each."""
    return {
        "mode": dict(MODES),
        "shapes": dict(SHAPE_SOURCES),
        "hardware": {name: hw.label for name, hw in hardware_presets().items()},
        "calibration": {"default": "the hardware's default", **{c: c for c in calibrations()}},
        "stack": {"default": "the hardware's default (eager Hugging Face)",
                  **{name: stack.label for name, stack in STACKS.items()}},
        "dtype": {d: d for d in sorted(DTYPES)},
        "law": _law_choices(),
        "budget_metric": {name: _metric_label(name) for name in SERVING_METRICS},
    }


# Short enough for the menu of a narrow column; each says which way the budget bounds.
_METRIC_MENU = {
    "latency_s": "latency of one call (s), at most",
    "ttft_s": "time to first token (s), at most",
    "ms_per_token": "time per output token (ms), at most",
    "tokens_per_s": "throughput (tokens/s), at least",
    "cost_per_million_tokens": "cost per 1M tokens, at most",
}


def _metric_label(name: str) -> str:
    metric = SERVING_METRICS[name]
    return _METRIC_MENU.get(name, f"{metric.label} ({metric.unit}), {metric.bound}")


@dataclass(frozen=True)
class DashboardSettings:
    """Every input of the dashboard; the defaults reproduce the paper's choice of Morph-1B.

    Parameters
    ----------
    mode : {"range", "compute"}
        ``range``: candidates between ``params_min`` and ``params_max``
        parameters, all trained on ``tokens``. ``compute``: the same shapes,
        each trained on ``D = flops / (6 N)`` tokens (a fixed training budget).
    shapes : {"paper", "grid"}
        ``paper``: the 15 shapes the authors considered at 1B (those within
        the parameter range); ``grid``: every shape in the range with a width
        that is a multiple of 64 and 16 heads.
    params_min, params_max : float
        Parameter range (the paper's ``N_C``: what fits the device).
    tokens : float
        Training tokens ``D_C`` (range mode).
    flops : float
        Training budget in FLOPs (compute mode).
    latency_budget_s : float
        The budget ``T_C``, in the unit of ``budget_metric``: seconds of one
        generation call by default (its query key stays ``latency``).
    budget_metric : str
        What the budget limits (:data:`morph.latency.serving.SERVING_METRICS`):
        a ceiling on latency, time to first token, time per output token or
        cost, or a floor on throughput.
    price_per_gpu_hour : float
        Price of one GPU-hour, for a cost budget (1 counts the cost in GPU-hours).
    hardware : str
        Hardware preset slug (:func:`morph.latency.hardware.hardware_presets`).
    calibration : str
        Latency calibration name, or ``"default"`` for the hardware's own.
    stack : str
        Serving stack (:data:`morph.latency.stacks.STACKS`), or ``"default"``
        for the hardware's default calibration; a named calibration wins.
    batch, input_tokens, output_tokens : int
        Sequences per call, prompt length and generated tokens.
    dtype : {"bf16", "fp16", "fp32"}
    law : str
        A preset name (:data:`morph.laws.PRESETS`) or :data:`FIT_B`.
    top_k : int
        How many shapes to keep.
    """

    mode: str = "range"
    shapes: str = "paper"
    params_min: float = 1.3e9
    params_max: float = 2.2e9
    tokens: float = float(PAPER_TOKENS)
    flops: float = 6.0 * MORPH_1B_PARAMETERS * PAPER_TOKENS
    latency_budget_s: float = 2.0
    budget_metric: str = "latency_s"
    price_per_gpu_hour: float = 1.0
    hardware: str = "a100-40gb"
    calibration: str = "default"
    stack: str = "default"
    batch: int = 1
    input_tokens: int = 128
    output_tokens: int = 256
    dtype: str = "bf16"
    law: str = "bian2025"
    top_k: int = 3

    def normalized(self) -> tuple["DashboardSettings", list[str]]:
        """The nearest settings the dashboard can show, and a sentence for each change made.

        Numbers are clamped to their range (counts also snapped to the
        nearest value their slider offers); unknown names fall back to the
        default; a parameter range given backwards is swapped.
        """
        values, notes = clamp_fields(self)
        if values["params_min"] > values["params_max"]:
            notes.append("the parameter range was given largest first; swapped")
            values["params_min"], values["params_max"] = values["params_max"], values["params_min"]
        return DashboardSettings(**values), notes

    def to_query(self) -> str:
        """The settings that differ from the defaults, as a URL query string (without ``?``)."""
        default = DashboardSettings()
        pairs = []
        for key, field_name in _QUERY_FIELDS.items():
            value = getattr(self, field_name)
            if value != getattr(default, field_name):
                pairs.append((key, _format_number(value) if isinstance(value, (int, float)) else str(value)))
        return urlencode(pairs)

    @property
    def workload(self) -> Workload:
        """The serving settings as a :class:`~morph.latency.Workload` (``"default"`` calibration: the hardware's)."""
        return Workload(
            hardware=self.hardware, calibration=None if self.calibration == "default" else self.calibration,
            stack=None if self.stack == "default" else self.stack, batch=self.batch, input_tokens=self.input_tokens, output_tokens=self.output_tokens, dtype=self.dtype,
        )

    @property
    def law_label(self) -> str:
        """How the chosen law is named in the page."""
        return _law_choices().get(self.law, self.law)


_QUERY_FIELDS: dict[str, str] = {
    "mode": "mode",
    "shapes": "shapes",
    **{spec.key: spec.field for spec in _NUMBERS},
    "hardware": "hardware",
    "calibration": "calibration",
    "stack": "stack",
    "dtype": "dtype",
    "law": "law",
    "metric": "budget_metric",
}
NUMBER_SETTINGS = {spec.field: spec for spec in _NUMBERS}


def _format_number(value: float) -> str:
    # Shortest text that reads back as the same float; whole numbers without ".0".
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _say(value: float) -> str:
    return f"{value:g}"


def _fit_number(spec: NumberSetting, value: Any, default: Any, notes: list[str]) -> float | int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        notes.append(f"{spec.key} is not a number; using {_say(default)}")
        return default
    if not math.isfinite(number):
        notes.append(f"{spec.key} is not a finite number; using {_say(default)}")
        return default
    if number < spec.low or number > spec.high:
        bound = spec.low if number < spec.low else spec.high
        notes.append(
            f"{spec.key}={_say(number)} is outside {_say(spec.low)}-"
            f"{_say(spec.high)}; using {_say(bound)}"
        )
        number = bound
    if not spec.integer:
        return float(number)
    if spec.ladder:
        nearest = min(spec.ladder, key=lambda v: abs(math.log(v) - math.log(number)))
        if nearest != number:
            notes.append(f"{spec.key}={_say(number)} is not offered; using {nearest}")
        return int(nearest)
    if number != round(number):
        notes.append(f"{spec.key}={_say(number)} is not a whole number; using {round(number)}")
    return int(round(number))


def clamp_fields(settings: DashboardSettings) -> tuple[dict[str, Any], list[str]]:
    """Every field of ``settings`` clamped to what the dashboard accepts, and a sentence per change.

    The one gate for values from a link and values from the page's controls
    (a crafted client can widen a slider's bounds before moving it): numbers
    are clamped to their range (the budget to its metric's) and snapped to
    their ladder, text settings (mode, shapes, hardware, calibration, stack,
    dtype, law, budget metric) fall back to the default unless they are one
    of the offered choices.

    Returns
    -------
    values : dict
        Field name to accepted value, for every field of :class:`DashboardSettings`.
    notes : list of str
    """
    notes: list[str] = []
    default = DashboardSettings()
    values: dict[str, Any] = {}
    for name, allowed in setting_choices().items():
        value = getattr(settings, name)
        if not isinstance(value, str) or value not in allowed:
            notes.append(f"{name} {str(value)[:40]!r} is not available; using {getattr(default, name)!r}")
            value = getattr(default, name)
        values[name] = value
    for spec in _NUMBERS:
        if spec.field == "latency_budget_s":  # in the unit of its metric: that metric's range
            spec = replace(spec, low=SERVING_METRICS[values["budget_metric"]].budget_range[0],
                           high=SERVING_METRICS[values["budget_metric"]].budget_range[1])
        values[spec.field] = _fit_number(spec, getattr(settings, spec.field), getattr(default, spec.field), notes)
    return values, notes


def _shown(text: str) -> str:
    # Quoted and cut short: enough to recognise, never enough to flood the page.
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def settings_from_query(query: str | None) -> tuple[DashboardSettings, list[str]]:
    """Settings from a URL query string, and what was ignored or adjusted, in sentences.

    Unknown keys, non-numeric or overlong values and unknown names are
    ignored; numbers out of range are clamped. The sentences quote the
    offending text as plain text (the page escapes it): nothing from the URL
    is ever interpreted as markup.

    Parameters
    ----------
    query : str or None
        E.g. ``"latency=3.0&top_k=5&hardware=h100-sxm"`` (a leading ``?`` is allowed).

    Returns
    -------
    settings : DashboardSettings
    notes : list of str
    """
    query = (query or "").lstrip("?")
    notes: list[str] = []
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(pairs) > MAX_QUERY_FIELDS:
        notes.append(f"the link has {len(pairs)} settings; only the first {MAX_QUERY_FIELDS} were read")
        pairs = pairs[:MAX_QUERY_FIELDS]
    values: dict[str, Any] = {}
    unknown: list[str] = []
    choices = setting_choices()
    for key, raw in pairs:
        if key not in _QUERY_FIELDS:
            if key not in _FOREIGN_KEYS:
                unknown.append(_shown(key))
            continue
        name = _QUERY_FIELDS[key]
        value = raw.strip()
        if len(value) > MAX_VALUE_CHARS:
            notes.append(f"{key}: the value is longer than {MAX_VALUE_CHARS} characters; ignored")
        elif name in NUMBER_SETTINGS:
            if _NUMBER.match(value):
                values[name] = float(value)
            else:
                notes.append(f"{key}={_shown(value)} is not a number; ignored")
        elif value in choices[name]:
            values[name] = value
        else:
            notes.append(f"{key}={_shown(value)} is not one of {', '.join(choices[name])}; ignored")
    if unknown:
        notes.append(f"unknown setting(s) ignored: {', '.join(unknown[:10])}" + (" ..." if len(unknown) > 10 else ""))
    settings, adjusted = DashboardSettings(**values).normalized()
    return settings, notes + adjusted


# Keys Voila itself reads from a page's address: not reported as unknown, never carried into a shared link.
_FOREIGN_KEYS = frozenset({"theme", "token"})
