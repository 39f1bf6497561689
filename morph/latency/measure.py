"""Measure the decode latency of model shapes on this machine.

The protocol follows Bian et al. (2025): a randomly initialised model of each
shape (:mod:`morph.latency.decoder`, the paper's architecture with an explicit KV
cache), ``warmup`` untimed generation calls, then ``trials`` kept calls, each
timed as a whole: prefill of ``input_tokens`` random token ids plus greedy
decoding of exactly ``output_tokens`` new tokens, batch ``batch``. The median
is the latency; min, max and interquartile range give the spread.

Two serving stacks (:data:`STACKS`) run the same model: ``hf-eager`` launches
every kernel from Python, as Hugging Face ``generate`` does; ``cuda-graphs``
runs the prefill eagerly and replays each decode step from one captured CUDA
graph over a static KV cache (:mod:`morph.latency.graphs`), so the per-layer
host work of eager decoding disappears. The capture happens once per shape,
before the warm-up, and is not timed.

The paper measured on an A100 in bf16 with 128 input and 256 output tokens
(:data:`PAPER_PROTOCOL`); on a CPU the same protocol is scaled down
(:data:`CPU_PROTOCOL`) so that a sweep of a few dozen shapes takes minutes.

Results are a CSV with a provenance header, one ``# key: value`` line each,
then one row per shape (:data:`COLUMNS`); :func:`write_measurements` and
:func:`read_measurements` write and read it.

PyTorch is imported only when something is measured, so ``import morph`` works
without it; :func:`require_torch` says how to install it.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ..data import data_dir, read_table, read_with_provenance, to_numeric
from ..errors import DataError, LatencyError, ShapeError
from ..shapes import Shape
from .hardware import DTYPES, Hardware
from .workload import PAPER_WORKLOAD, Workload

if TYPE_CHECKING:  # pragma: no cover
    from types import ModuleType

__all__ = [
    "FRAMEWORK",
    "STACKS",
    "FRAMEWORKS",
    "COLUMNS",
    "PROVENANCE_KEYS",
    "PAPER_PROTOCOL",
    "CPU_PROTOCOL",
    "SWEEPS_FILE",
    "MeasurementProtocol",
    "Measurement",
    "require_torch",
    "resolve_device",
    "check_stack",
    "summarise_times",
    "time_generation",
    "measure_shape",
    "measure_shapes",
    "load_average",
    "now_iso",
    "provenance",
    "protocol_dict",
    "check_writable",
    "write_measurements",
    "read_measurements",
    "measurements_frame",
    "read_shapes_csv",
    "named_sweep",
    "sweep_names",
]

FRAMEWORK = "torch-eager"
"""How the model runs: PyTorch eager mode, one kernel call per operation."""

STACKS = ("hf-eager", "cuda-graphs")
"""Serving stacks ``morph measure`` can time (the names of :mod:`morph.latency.stacks`)."""

FRAMEWORKS = {"hf-eager": FRAMEWORK, "cuda-graphs": "torch-cuda-graphs"}
"""The ``framework`` column of each stack: eager PyTorch, or decode steps replayed from a CUDA graph."""

DEFAULT_STACK = "hf-eager"
"""The stack of a measurement file written before stacks were recorded."""

COLUMNS = (
    "n_layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "vocab",
    "N",
    "batch",
    "input_tokens",
    "output_tokens",
    "dtype",
    "device",
    "latency_s",
    "latency_min_s",
    "latency_max_s",
    "latency_iqr_s",
    "trials",
    "warmup",
    "framework",
    "stack",
)
"""Columns of a measurement CSV, in order (see ``data/README.md`` for units)."""

PROVENANCE_KEYS = (
    "machine",
    "os",
    "python",
    "torch",
    "numpy",
    "morph",
    "device",
    "threads",
    "dtype",
    "protocol",
    "date",
    "command",
    "load_before",
    "load_after",
)
"""Provenance keys every measurement file carries in its header."""


INSTALL_HINT = "pip install -e .[measure]"

SWEEPS_FILE = "measurements/sweeps.csv"
"""Named sweeps, relative to the data folder: columns ``sweep``, ``group``, ``n_layers``, ``d_model``, ``n_heads``."""


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise LatencyError(f"{name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class MeasurementProtocol:
    """How each shape is timed.

    Parameters
    ----------
    batch : int
        Sequences generated together (sequences).
    input_tokens : int
        Prompt length of random token ids (tokens).
    output_tokens : int
        New tokens generated greedily per sequence (tokens).
    trials : int
        Kept, timed generation calls.
    warmup : int
        Untimed calls before the kept ones.
    dtype : {"fp32", "bf16", "fp16"}
        Precision of weights and activations.
    device : {"cpu", "cuda", "auto"}
        Where the model runs; ``auto`` takes CUDA when available.
    threads : int, optional
        CPU threads for PyTorch (``torch.set_num_threads``); None keeps
        PyTorch's default.
    seed : int
        Seed of the random weights and prompt.
    """

    batch: int = 1
    input_tokens: int = 64
    output_tokens: int = 32
    trials: int = 5
    warmup: int = 1
    dtype: str = "fp32"
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch", "input_tokens", "output_tokens", "trials"):
            _check_count(name, getattr(self, name), minimum=1)
        _check_count("warmup", self.warmup, minimum=0)
        if self.threads is not None:
            _check_count("threads", self.threads, minimum=1)
        if self.dtype not in DTYPES:
            raise LatencyError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise LatencyError(f"device must be cpu, cuda or auto, got {self.device!r}")

    @classmethod
    def for_workload(cls, workload: Workload, **options: object) -> "MeasurementProtocol":
        """The protocol that times ``workload``'s batch, tokens and dtype (``options``: trials, device, ...)."""
        return cls(batch=workload.batch, input_tokens=workload.input_tokens, output_tokens=workload.output_tokens,
                   dtype=workload.dtype, **options)  # type: ignore[arg-type]

    def workload(self, hardware: str | Hardware = "cpu") -> Workload:
        """The :class:`~morph.latency.Workload` these timings describe, on ``hardware`` (a preset or Hardware)."""
        return Workload(hardware=hardware, batch=self.batch, input_tokens=self.input_tokens,
                        output_tokens=self.output_tokens, dtype=self.dtype)

    def sentence(self, stacks: Sequence[str] = (DEFAULT_STACK,)) -> str:
        """The protocol in one sentence, for the provenance header.

        Parameters
        ----------
        stacks : sequence of str
            The stacks timed (:data:`STACKS`), each described in the sentence.
        """
        how = "; ".join(_STACK_SENTENCES[stack] for stack in stacks)
        text = (
            f"{self.warmup} untimed warm-up call(s), then {self.trials} kept trials per shape; latency_s is the "
            f"median (with min, max and interquartile range) of the wall time (time.perf_counter) of one whole "
            f"generation call: prefill of {self.input_tokens} random token ids and greedy decoding of exactly "
            f"{self.output_tokens} new tokens with a KV cache, batch {self.batch}, {self.dtype}, under "
            f"inference_mode, random weights (seed {self.seed}); {how}"
        )
        paper = PAPER_PROTOCOL
        if self.workload("a100-40gb") != paper.workload("a100-40gb"):
            text += (
                f"; scaled down from the paper's protocol (batch {paper.batch}, {paper.input_tokens} input and "
                f"{paper.output_tokens} output tokens, {paper.dtype}, A100)"
                + (" to suit a CPU" if self.device == "cpu" else "")
            )
        return text


_STACK_SENTENCES = {
    "hf-eager": "stack hf-eager: PyTorch eager, every kernel launched from Python",
    "cuda-graphs": (
        "stack cuda-graphs: eager prefill, then each decode step replayed from one CUDA graph captured over a "
        "static KV cache of input plus output tokens (capture once per shape, before the warm-up, untimed)"
    ),
}


PAPER_PROTOCOL = MeasurementProtocol.for_workload(PAPER_WORKLOAD, trials=5, warmup=1, device="cuda")
"""The paper's protocol (Hugging Face generate on one A100 40GB)."""

CPU_PROTOCOL = MeasurementProtocol(
    batch=1, input_tokens=64, output_tokens=32, trials=5, warmup=1, dtype="fp32", device="cpu"
)
"""The paper's protocol scaled down for a CPU: shorter prompt and output, fp32."""


@dataclass(frozen=True)
class Measurement:
    """Timings of one shape under one protocol.

    Attributes
    ----------
    shape : Shape
        The model shape.
    protocol : MeasurementProtocol
        The protocol, with ``device`` resolved to ``cpu`` or ``cuda``.
    times_s : tuple of float
        Wall time of each kept trial (seconds), in the order run.
    stack : {"hf-eager", "cuda-graphs"}
        The serving stack that ran the model (:data:`STACKS`).
    """

    shape: Shape
    protocol: MeasurementProtocol
    times_s: tuple[float, ...]
    stack: str = DEFAULT_STACK

    @property
    def stats(self) -> dict[str, float]:
        """Median, min, max and interquartile range of the trials (seconds)."""
        return summarise_times(self.times_s)

    def row(self) -> dict[str, object]:
        """One CSV row, keyed by :data:`COLUMNS`."""
        s, p, stats = self.shape, self.protocol, self.stats
        return {
            "n_layers": s.n_layers,
            "d_model": s.d_model,
            "n_heads": s.n_heads,
            "n_kv_heads": s.n_kv_heads,
            "vocab": s.vocab,
            "N": s.N,
            "batch": p.batch,
            "input_tokens": p.input_tokens,
            "output_tokens": p.output_tokens,
            "dtype": p.dtype,
            "device": p.device,
            "latency_s": stats["median"],
            "latency_min_s": stats["min"],
            "latency_max_s": stats["max"],
            "latency_iqr_s": stats["iqr"],
            "trials": p.trials,
            "warmup": p.warmup,
            "framework": FRAMEWORKS[self.stack],
            "stack": self.stack,
        }


def summarise_times(times_s: Sequence[float]) -> dict[str, float]:
    """Median, min, max and interquartile range of trial times.

    Parameters
    ----------
    times_s : sequence of float
        Wall times (seconds), at least one.

    Returns
    -------
    dict
        ``median``, ``min``, ``max``, ``iqr`` (seconds); quartiles by linear
        interpolation (numpy's default).
    """
    t = np.asarray(times_s, dtype=np.float64)
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise LatencyError("no finite trial times to summarise")
    q25, q75 = np.percentile(t, [25, 75])
    return {"median": float(np.median(t)), "min": float(t.min()), "max": float(t.max()), "iqr": float(q75 - q25)}


def require_torch() -> "ModuleType":
    """Import PyTorch, or raise a one-line error saying how to install it."""
    try:
        import torch
    except ImportError:
        raise LatencyError(f"measuring latency needs PyTorch; install it with: {INSTALL_HINT}") from None
    return torch


def resolve_device(device: str) -> str:
    """``cpu`` or ``cuda`` for a requested device (``auto`` prefers CUDA).

    Raises
    ------
    LatencyError
        CUDA requested but not available.
    """
    torch = require_torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LatencyError("CUDA was requested but this PyTorch sees no CUDA GPU; use --device cpu")
    if device not in ("cpu", "cuda"):
        raise LatencyError(f"device must be cpu, cuda or auto, got {device!r}")
    return device


def check_stack(stack: str, device: str) -> str:
    """``stack`` if it can run on ``device`` (``cpu`` or ``cuda``, resolved).

    Raises
    ------
    LatencyError
        An unknown stack, or ``cuda-graphs`` on a CPU.
    """
    if stack not in STACKS:
        raise LatencyError(f"stack must be one of {', '.join(STACKS)}, got {stack!r}")
    if stack == "cuda-graphs" and device != "cuda":
        raise LatencyError("the cuda-graphs stack needs a CUDA device; on a CPU use --stack hf-eager")
    return stack


def time_generation(
    generate: Callable[[], object], *, warmup: int, trials: int, synchronize: Callable[[], None] | None = None
) -> tuple[float, ...]:
    """Wall times of ``trials`` calls of ``generate`` after ``warmup`` untimed ones.

    Parameters
    ----------
    generate : callable
        One whole generation call.
    warmup, trials : int
        Untimed and timed calls.
    synchronize : callable, optional
        Waits for queued device work (``torch.cuda.synchronize``); called
        before each clock read so that asynchronous kernels are counted.

    Returns
    -------
    tuple of float
        Seconds per kept call.
    """
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        generate()
    sync()
    times = []
    for _ in range(trials):
        sync()
        start = time.perf_counter()
        generate()
        sync()
        times.append(time.perf_counter() - start)
    return tuple(times)


def _generator(model, prompt, output_tokens: int, stack: str) -> Callable[[], object]:
    """One whole generation call of ``stack``; for ``cuda-graphs`` the step is captured here, once."""
    if stack == "hf-eager":
        from .decoder import greedy_generate

        return lambda: greedy_generate(model, prompt, output_tokens)
    from .graphs import GraphDecoder

    decoder = GraphDecoder(model, prompt.shape[0], prompt.shape[1] + output_tokens)
    return lambda: decoder.generate(prompt, output_tokens)


def measure_shape(
    shape: Shape, protocol: MeasurementProtocol = CPU_PROTOCOL, stack: str = DEFAULT_STACK
) -> Measurement:
    """Time generation of one randomly initialised model.

    Parameters
    ----------
    shape : Shape
        The model shape.
    protocol : MeasurementProtocol
        How to time it. ``threads``, when set, is applied process-wide.
    stack : {"hf-eager", "cuda-graphs"}
        How the model runs (:data:`STACKS`); ``cuda-graphs`` needs CUDA.

    Returns
    -------
    Measurement
    """
    torch = require_torch()
    from .decoder import build_decoder

    device = resolve_device(protocol.device)
    check_stack(stack, device)
    if protocol.threads is not None:
        torch.set_num_threads(protocol.threads)
    model = build_decoder(shape, dtype=protocol.dtype, device=device, seed=protocol.seed)
    generator = torch.Generator().manual_seed(protocol.seed)
    prompt = torch.randint(0, shape.vocab, (protocol.batch, protocol.input_tokens), generator=generator).to(device)
    synchronize = torch.cuda.synchronize if device == "cuda" else None
    generate = None
    try:
        with torch.inference_mode():
            generate = _generator(model, prompt, protocol.output_tokens, stack)
            times = time_generation(generate, warmup=protocol.warmup, trials=protocol.trials, synchronize=synchronize)
    finally:
        # Free this model, its cache and any captured graph before the next one is built.
        del model, prompt, generate
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return Measurement(shape, replace(protocol, device=device), times, stack)


def measure_shapes(
    shapes: Iterable[Shape],
    protocol: MeasurementProtocol = CPU_PROTOCOL,
    progress: Callable[[int, int, Measurement], None] | None = None,
    stacks: Sequence[str] = (DEFAULT_STACK,),
) -> list[Measurement]:
    """Time every shape under every stack in turn; ``progress(i, total, measurement)`` after each.

    The stacks of one shape run one after the other, each on a freshly built
    model, so that both see the machine in the same state.
    """
    device = resolve_device(protocol.device)
    for stack in stacks:
        check_stack(stack, device)
    runs = [(shape, stack) for shape in shapes for stack in stacks]
    results = []
    for i, (shape, stack) in enumerate(runs, start=1):
        results.append(measure_shape(shape, protocol, stack))
        if progress is not None:
            progress(i, len(runs), results[-1])
    return results


def _machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} logical cores"


def _device_name(device: str) -> str:
    if device != "cuda":
        return device
    torch = require_torch()
    return f"cuda ({torch.cuda.get_device_name()}, CUDA {torch.version.cuda})"


def _driver_version() -> str:
    # PyTorch does not report the driver; nvidia-smi does where it is installed.
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unavailable"


def _gpu_keys(device: str) -> dict[str, str]:
    """``gpu``, ``cuda`` and ``driver`` header keys on a CUDA device; none on a CPU."""
    if device != "cuda":
        return {}
    torch = require_torch()
    return {"gpu": torch.cuda.get_device_name(), "cuda": str(torch.version.cuda), "driver": _driver_version()}


def now_iso() -> str:
    """The current time in UTC, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``os.getloadavg`` gives them."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unavailable"


def provenance(
    protocol: MeasurementProtocol,
    *,
    command: str,
    load_before: str,
    load_after: str,
    date: str | None = None,
    extra: dict[str, str] | None = None,
    stacks: Sequence[str] = (DEFAULT_STACK,),
) -> dict[str, str]:
    """Provenance header of a measurement file (:data:`PROVENANCE_KEYS` and ``extra``).

    Parameters
    ----------
    protocol : MeasurementProtocol
        The protocol the measurements followed (device resolved).
    command : str
        The command line that produced the file.
    load_before, load_after : str
        Load averages at the start and the end of the measurements.
    date : str, optional
        ISO 8601 time the measurements started; defaults to now (UTC).
    extra : dict, optional
        Further keys, e.g. the sweep's wall time.
    stacks : sequence of str
        The stacks timed (:data:`STACKS`), recorded as ``stack`` and in the protocol sentence.

    On a CUDA device the header also names the ``gpu``, the ``cuda`` version
    PyTorch was built with and the ``driver`` (from ``nvidia-smi``, or
    ``unavailable``).
    """
    torch = require_torch()
    from .. import __version__

    device = resolve_device(protocol.device)
    header = {
        "machine": _machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "morph": __version__,
        "device": _device_name(device),
        "threads": str(torch.get_num_threads()),
        "dtype": protocol.dtype,
        "protocol": protocol.sentence(stacks),
        "date": date or now_iso(),
        "command": command,
        "load_before": load_before,
        "load_after": load_after,
        "seed": str(protocol.seed),
        "stack": ", ".join(stacks),
        **_gpu_keys(device),
    }
    header.update(extra or {})
    return header


def measurements_frame(measurements: Iterable[Measurement]) -> pd.DataFrame:
    """The measurements as a DataFrame with :data:`COLUMNS`."""
    return pd.DataFrame([m.row() for m in measurements], columns=list(COLUMNS))


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, in one sentence, if ``path`` cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise LatencyError(f"{target} is a folder; give a file name for the measurements")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise LatencyError(f"cannot write {target}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise LatencyError(f"cannot write {target}: permission denied")
    return target


def write_measurements(
    path: str | os.PathLike, measurements: Iterable[Measurement] | pd.DataFrame, header: dict[str, str]
) -> Path:
    """Write the provenance header and the CSV rows, atomically.

    The file is written to a temporary name in the same folder and renamed
    at the end, so an interrupted write never leaves a partial file.

    Parameters
    ----------
    path : path
        Destination CSV.
    measurements : iterable of Measurement, or DataFrame with :data:`COLUMNS`
        The rows.
    header : dict
        Provenance, one ``# key: value`` line per item (see :func:`provenance`).
    """
    target = check_writable(path)
    frame = measurements if isinstance(measurements, pd.DataFrame) else measurements_frame(measurements)
    lines = []
    for key, value in header.items():
        if ":" in key or "\n" in key or "\n" in str(value):
            raise LatencyError(f"provenance key {key!r} or its value cannot be written on one header line")
        lines.append(f"# {key}: {value}\n")
    body = frame.loc[:, list(COLUMNS)].to_csv(index=False, float_format="%.6g", lineterminator="\n")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write("".join(lines) + body)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return target


def read_measurements(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a measurement CSV written by :func:`write_measurements`.

    Parameters
    ----------
    path : path
        The file.

    Returns
    -------
    frame : DataFrame
        One row per measurement with :data:`COLUMNS` (numbers as numbers); a
        file written before stacks were recorded reads with ``stack`` hf-eager.
    provenance : dict
        The ``# key: value`` header lines, in order.

    Raises
    ------
    DataError
        Missing file, missing columns or keys, non-positive latencies or an unknown stack.
    """
    source = Path(path)
    header, frame = read_with_provenance(source, strict=True, required_keys=PROVENANCE_KEYS)
    if "stack" not in frame.columns:
        frame["stack"] = DEFAULT_STACK  # every earlier file timed the eager stack
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source.name} is missing the column(s) {', '.join(missing)}")
    for column in COLUMNS:
        if column in ("dtype", "device", "framework", "stack"):
            continue
        numbers = to_numeric(frame[column], column, source.name, positive=column != "latency_iqr_s")
        integral = column not in ("latency_s", "latency_min_s", "latency_max_s", "latency_iqr_s")
        frame[column] = numbers.astype(np.int64) if integral else numbers
    frame["stack"] = frame["stack"].astype(str).str.strip()
    unknown = sorted(set(frame["stack"]) - set(STACKS))
    if unknown:
        raise DataError(f"{source.name}: unknown stack(s) {', '.join(unknown)}; known: {', '.join(STACKS)}")
    return frame, header


def _shapes_from_frame(frame: pd.DataFrame, label: str) -> list[Shape]:
    for column in ("n_layers", "d_model"):
        if column not in frame.columns:
            raise DataError(f"{label} needs the columns n_layers and d_model (n_heads, n_kv_heads optional)")
    columns = {}
    for column in ("n_layers", "d_model", "n_heads", "n_kv_heads"):
        if column not in frame.columns:
            continue
        cells = frame[column].astype(str).str.strip()
        given = (cells != "") & (cells.str.lower() != "nan")
        if column in ("n_layers", "d_model") and not given.all():
            i = int(np.flatnonzero(~given.to_numpy())[0])
            raise DataError(f"{label}: column {column!r}, row {i + 1} is empty")
        values = np.zeros(len(frame), dtype=np.int64)
        if given.any():
            numbers = to_numeric(frame[column][given], column, label)
            if np.any(numbers != np.round(numbers)):
                raise DataError(f"{label}: column {column!r} must hold whole numbers")
            values[given.to_numpy()] = numbers.astype(np.int64)
        columns[column] = [int(v) if ok else None for v, ok in zip(values, given)]
    shapes: list[Shape] = []
    for i in range(len(frame)):
        try:
            shape = Shape(
                columns["n_layers"][i],
                columns["d_model"][i],
                columns.get("n_heads", [None] * len(frame))[i],
                columns.get("n_kv_heads", [None] * len(frame))[i],
            )
        except ShapeError as exc:
            raise ShapeError(f"{label}, row {i + 1}: {exc}") from None
        if shape not in shapes:  # the same shape twice would only be timed twice
            shapes.append(shape)
    return shapes


def _filter(frame: pd.DataFrame, column: str, value: str | None, label: str) -> pd.DataFrame:
    if value is None:
        return frame
    if column not in frame.columns:
        raise DataError(f"{label} has no {column!r} column to choose {value!r} from")
    kept = frame[frame[column].astype(str).str.strip() == value]
    if kept.empty:
        names = ", ".join(sorted(set(frame[column].astype(str).str.strip())))
        raise DataError(f"{label} has no rows with {column} {value!r}; it has {names}")
    return kept


def read_shapes_csv(
    path: str | os.PathLike, *, sweep: str | None = None, gpu: str | None = None
) -> list[Shape]:
    """Shapes from a CSV with ``n_layers``, ``d_model`` and optionally ``n_heads``, ``n_kv_heads``.

    Parameters
    ----------
    path : path
        The table, e.g. ``data/latency_sweep_shapes.csv``.
    sweep, gpu : str, optional
        Keep only the rows whose ``sweep`` (or ``gpu``) column equals this.

    Returns
    -------
    list of Shape
        In file order, each distinct shape once.
    """
    label = Path(path).name
    frame = read_table(path, label)
    frame = _filter(_filter(frame, "sweep", sweep, label), "gpu", gpu, label)
    return _shapes_from_frame(frame.reset_index(drop=True), label)


def _sweeps_table() -> pd.DataFrame:
    return read_table(data_dir() / SWEEPS_FILE, "sweeps.csv")


def sweep_names() -> list[str]:
    """Names of the shipped sweeps (``data/measurements/sweeps.csv``)."""
    return list(dict.fromkeys(_sweeps_table()["sweep"].str.strip()))


def named_sweep(name: str) -> list[Shape]:
    """The shapes of a shipped sweep, e.g. ``cpu-default``."""
    table = _sweeps_table()
    if name not in set(table["sweep"].str.strip()):
        raise DataError(f"no sweep named {name!r}; the shipped sweeps are {', '.join(sweep_names())}")
    return _shapes_from_frame(_filter(table, "sweep", name, "sweeps.csv").reset_index(drop=True), "sweeps.csv")


def protocol_dict(protocol: MeasurementProtocol) -> dict[str, object]:
    """The protocol's fields as a plain dict (for JSON)."""
    return asdict(protocol)

