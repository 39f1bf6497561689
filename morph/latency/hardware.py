"""Hardware the latency model knows: datasheet figures as data, and a probe for this CPU.

A :class:`Hardware` holds what the roofline needs: memory bandwidth
(bytes/s), peak dense matrix throughput per dtype (FLOP/s) and memory size.
The presets live in ``data/hardware.csv``, one row per device with the
document every figure comes from; users can build their own ``Hardware(...)``
or load a CSV of their own with the same columns (:func:`load_hardware`).

Two kinds of device behave differently for the latency model:

``gpu``
    Kernels are launched asynchronously: the host queues work while the
    device runs it, so per token the slower of the two sets the pace.
``cpu``
    The same cores run the framework and the arithmetic: host and device
    time add (synchronous execution).

The ``cpu`` preset is the machine that measured Morph's CPU sweep (a 2-core
AMD EPYC virtual machine, named in its label and source), not the CPU Morph
happens to run on: its figures were measured there with :func:`probe_cpu`
(``morph latency probe-cpu``), a small numpy probe of copy bandwidth and fp32
matrix-multiply throughput. Run that probe for your own CPU's row.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from ..data import data_dir, read_table
from ..errors import DataError, LatencyError

__all__ = [
    "DTYPES",
    "DTYPE_BYTES",
    "HARDWARE_COLUMNS",
    "Hardware",
    "hardware_presets",
    "get_hardware",
    "load_hardware",
    "canonical_dtype",
    "probe_cpu",
    "hardware_csv_row",
]

DTYPE_BYTES: Mapping[str, int] = {"fp32": 4, "bf16": 2, "fp16": 2}
"""Bytes per weight or cache element for each supported dtype."""

DTYPES = tuple(DTYPE_BYTES)

_DTYPE_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "torch.float32": "fp32", "f32": "fp32",
    "bf16": "bf16", "bfloat16": "bf16", "torch.bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "torch.float16": "fp16", "f16": "fp16",
}

HARDWARE_COLUMNS = (
    "name", "label", "kind", "memory_bandwidth_gb_s", "bf16_tflops", "fp32_tflops", "memory_gb",
    "default_calibration", "source",
)
"""Columns of a hardware CSV; ``bf16_tflops`` and ``default_calibration`` may be empty."""

_KINDS = ("gpu", "cpu")


def canonical_dtype(dtype: str) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for a dtype name (``bfloat16``, ``torch.float16``, ...).

    Raises
    ------
    LatencyError
        For a dtype the latency model has no byte size for.
    """
    key = str(dtype).strip().lower()
    if key not in _DTYPE_ALIASES:
        raise LatencyError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    return _DTYPE_ALIASES[key]


@dataclass(frozen=True)
class Hardware:
    """One device for the latency model.

    Parameters
    ----------
    name : str
        Short lower-case slug (``a100-40gb``).
    memory_bandwidth_gb_s : float
        Peak memory bandwidth (GB/s, 1 GB = 1e9 bytes).
    bf16_tflops : float or None
        Peak dense bf16 matrix throughput (TFLOP/s, no sparsity); also used
        for fp16, equal to it on every preset. None where the device has no
        such figure (then bf16 and fp16 predictions are refused).
    fp32_tflops : float
        Peak fp32 throughput (TFLOP/s) without TF32 tensor cores, which
        PyTorch leaves off for matrix products by default.
    memory_gb : float
        Device memory (GB).
    label : str
        Human-readable name.
    kind : {"gpu", "cpu"}
        ``gpu``: asynchronous kernel launch; ``cpu``: host and arithmetic
        share the cores (see the module docstring).
    default_calibration : str, optional
        Calibration used when a prediction names none.
    source : str
        Where the figures come from.
    """

    name: str
    memory_bandwidth_gb_s: float
    bf16_tflops: float | None
    fp32_tflops: float
    memory_gb: float
    label: str = ""
    kind: str = "gpu"
    default_calibration: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise LatencyError("hardware needs a non-empty name")
        for field_name in ("memory_bandwidth_gb_s", "fp32_tflops", "memory_gb"):
            _check_positive(self.name, field_name, getattr(self, field_name))
        if self.bf16_tflops is not None:
            _check_positive(self.name, "bf16_tflops", self.bf16_tflops)
        if self.kind not in _KINDS:
            raise LatencyError(f"hardware {self.name!r}: kind must be 'gpu' or 'cpu', got {self.kind!r}")
        for field_name in ("memory_bandwidth_gb_s", "fp32_tflops", "memory_gb"):
            object.__setattr__(self, field_name, float(getattr(self, field_name)))
        if self.bf16_tflops is not None:
            object.__setattr__(self, "bf16_tflops", float(self.bf16_tflops))
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def memory_bandwidth(self) -> float:
        """Peak memory bandwidth (bytes/s)."""
        return self.memory_bandwidth_gb_s * 1e9

    @property
    def memory_bytes(self) -> float:
        """Device memory (bytes)."""
        return self.memory_gb * 1e9

    @property
    def synchronous(self) -> bool:
        """True where host work and arithmetic cannot overlap (a CPU)."""
        return self.kind == "cpu"

    def peak_flops(self, dtype: str) -> float:
        """Peak dense matrix throughput for ``dtype`` (FLOP/s).

        Raises
        ------
        LatencyError
            If the device has no figure for that dtype.
        """
        dtype = canonical_dtype(dtype)
        if dtype == "fp32":
            return self.fp32_tflops * 1e12
        if self.bf16_tflops is None:
            raise LatencyError(
                f"hardware {self.name!r} has no {dtype} throughput figure; use dtype fp32 "
                f"or give the hardware a bf16_tflops value"
            )
        return self.bf16_tflops * 1e12


def _check_positive(name: str, field_name: str, value: object) -> None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise LatencyError(f"hardware {name!r}: {field_name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise LatencyError(f"hardware {name!r}: {field_name} must be a finite number > 0, got {value!r}")


def load_hardware(path: str | os.PathLike) -> dict[str, Hardware]:
    """Read a hardware CSV (columns :data:`HARDWARE_COLUMNS`) into ``{name: Hardware}``.

    ``label``, ``kind`` (default ``gpu``), ``bf16_tflops``,
    ``default_calibration`` and ``source`` may be left out or empty.

    Raises
    ------
    LatencyError
        Missing columns, bad numbers or a name given twice.
    """
    label = Path(path).name
    try:
        table = read_table(path, label)
    except DataError as exc:
        raise LatencyError(str(exc)) from None
    required = ("name", "memory_bandwidth_gb_s", "fp32_tflops", "memory_gb")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise LatencyError(f"{label} is missing the column(s) {', '.join(missing)}")
    presets: dict[str, Hardware] = {}
    for _, row in table.iterrows():
        name = row["name"].strip().lower()
        if name in presets:
            raise LatencyError(f"{label}: hardware {name!r} appears more than once")
        bf16 = row.get("bf16_tflops", "") or ""
        presets[name] = Hardware(
            name=name,
            label=row.get("label", "") or name,
            kind=(row.get("kind", "") or "gpu").strip().lower(),
            memory_bandwidth_gb_s=row["memory_bandwidth_gb_s"],
            bf16_tflops=float(bf16) if bf16.strip() else None,
            fp32_tflops=row["fp32_tflops"],
            memory_gb=row["memory_gb"],
            default_calibration=(row.get("default_calibration", "") or "").strip() or None,
            source=row.get("source", "") or "",
        )
    return presets


@lru_cache(maxsize=4)
def _shipped_presets(path: str, mtime_ns: int) -> dict[str, Hardware]:
    return load_hardware(path)


def hardware_presets() -> dict[str, Hardware]:
    """The shipped presets (``data/hardware.csv``), by slug."""
    path = data_dir() / "hardware.csv"
    if not path.is_file():
        raise LatencyError(f"the hardware presets file {path} is missing; reinstall morph")
    return dict(_shipped_presets(str(path), path.stat().st_mtime_ns))


def get_hardware(name: str | Hardware) -> Hardware:
    """A preset by slug (case-insensitive); a :class:`Hardware` is returned as it is.

    Raises
    ------
    LatencyError
        For an unknown name, listing the valid ones.
    """
    if isinstance(name, Hardware):
        return name
    presets = hardware_presets()
    key = str(name).strip().lower()
    if key not in presets:
        raise LatencyError(f"unknown hardware {name!r}; choose one of {', '.join(presets)}")
    return presets[key]


# --- the CPU probe ---------------------------------------------------------------------------

PROBE_COMMAND = "morph latency probe-cpu"
"""Command that measured the ``cpu`` preset (printed into its ``source`` column)."""


def _best_time(function, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _copy_bandwidth(copy_bytes: int, repeats: int) -> float:
    """Bytes read plus written per second by the best of ``repeats`` copies of a large array."""
    original = np.ones(copy_bytes // 8, dtype=np.float64)
    duplicate = np.empty_like(original)
    np.copyto(duplicate, original)  # touch every page before timing
    seconds = _best_time(lambda: np.copyto(duplicate, original), repeats)
    return 2.0 * original.nbytes / seconds


def _matmul_flops(size: int, repeats: int) -> float:
    """fp32 FLOP/s of the best of ``repeats`` square matrix products (``2 n^3`` FLOPs each)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # start the BLAS threads
    return 2.0 * size**3 / _best_time(lambda: a @ b, repeats)


def probe_cpu(
    *, copy_bytes: int = 256 * 2**20, matmul_size: int = 2048, repeats: int = 5
) -> Hardware:
    """Measure this machine's memory bandwidth and fp32 throughput with numpy.

    Bandwidth: the best of ``repeats`` copies of a ``copy_bytes`` float64
    array (far larger than the caches), counting the bytes read and written
    (``2 * copy_bytes`` per copy). Throughput: the best of ``repeats`` fp32
    ``matmul_size``-square matrix products through numpy's BLAS on all cores,
    counting ``2 n^3`` FLOPs. Best-of-N because other work on the machine
    can only slow a run down. Takes a few seconds.

    Returns
    -------
    Hardware
        ``name="cpu"``, ``kind="cpu"``, no bf16 figure (numpy has no bf16
        arithmetic to measure), memory = physical RAM.
    """
    bandwidth = _copy_bandwidth(copy_bytes, repeats)
    flops = _matmul_flops(matmul_size, repeats)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        raise LatencyError("this system does not report its memory size; write memory_gb by hand") from None
    cores = os.cpu_count() or 1
    return Hardware(
        name="cpu",
        label=f"this CPU ({_cpu_model()}, {cores} cores)",
        kind="cpu",
        memory_bandwidth_gb_s=round(bandwidth / 1e9, 2),
        bf16_tflops=None,
        fp32_tflops=round(flops / 1e12, 4),
        memory_gb=round(memory / 1e9, 1),
        default_calibration="cpu-torch-eager",
        source=(
            f"measured on this machine by `{PROBE_COMMAND}` on {time.strftime('%Y-%m-%d')} (numpy "
            f"{np.__version__}: best of {repeats} copies of a {copy_bytes // 2**20} MiB array counting "
            f"read+write bytes; best of {repeats} fp32 "
            f"{matmul_size}x{matmul_size} matmuls; RAM from sysconf)"
        ),
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_csv_row(hardware: Hardware) -> str:
    """One row of a hardware CSV (columns :data:`HARDWARE_COLUMNS`) for ``hardware``."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            hardware.name, hardware.label, hardware.kind, hardware.memory_bandwidth_gb_s,
            "" if hardware.bf16_tflops is None else hardware.bf16_tflops, hardware.fp32_tflops,
            hardware.memory_gb, hardware.default_calibration or "", hardware.source,
        ]
    )
    return buffer.getvalue().rstrip("\n")

