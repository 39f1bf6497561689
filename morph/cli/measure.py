"""``morph measure``: time real decoding of model shapes on this machine."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import time
from typing import Callable, Iterator, NoReturn

from ..errors import LatencyError
from ..latency.measure import (
    CPU_PROTOCOL,
    PAPER_PROTOCOL,
    STACKS,
    Measurement,
    MeasurementProtocol,
    check_stack,
    check_writable,
    load_average,
    now_iso,
    measure_shapes,
    measurements_frame,
    named_sweep,
    protocol_dict,
    provenance,
    read_shapes_csv,
    require_torch,
    resolve_device,
    write_measurements,
)
from ..shapes import Shape, parse_shape
from .common import add_workload_arguments, positive_int, print_json

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "measure",
        help="time real decoding of model shapes (needs PyTorch)",
        description=(
            "Build randomly initialised decoder-only transformers of the given shapes (the paper's architecture) "
            "and time whole generation calls: warm-up first, then kept trials of prefill plus greedy decoding "
            "with a KV cache; report the median and the spread. Defaults follow the device: on a CPU batch "
            f"{CPU_PROTOCOL.batch}, {CPU_PROTOCOL.input_tokens} input and {CPU_PROTOCOL.output_tokens} output "
            f"tokens in {CPU_PROTOCOL.dtype}; on CUDA the paper's batch {PAPER_PROTOCOL.batch}, "
            f"{PAPER_PROTOCOL.input_tokens} input and {PAPER_PROTOCOL.output_tokens} output tokens in "
            f"{PAPER_PROTOCOL.dtype}. --stack cuda-graphs replays each decode step from a captured CUDA graph "
            "(CUDA only). Needs PyTorch: pip install -e .[measure]"
        ),
    )
    source = parser.add_argument_group("shapes (one of)")
    source.add_argument("--shape", action="append", metavar="LxD[xH]",
                        help="a shape, e.g. 12x3072 or 12x3072x16 (repeatable)")
    source.add_argument("--sweep", metavar="NAME",
                        help="a shipped sweep (e.g. cpu-default); with --shapes-csv, keep rows of this 'sweep'")
    source.add_argument("--shapes-csv", metavar="FILE",
                        help="CSV with n_layers, d_model and optionally n_heads, n_kv_heads")
    source.add_argument("--gpu", metavar="NAME", help="with --shapes-csv, keep rows whose 'gpu' column is NAME")
    protocol = parser.add_argument_group("protocol")
    add_workload_arguments(protocol, ("batch", "input_tokens", "output_tokens", "dtype"), follow="the device")
    protocol.add_argument("--trials", type=positive_int(), default=5, help="kept, timed calls (default 5)")
    protocol.add_argument("--warmup", type=positive_int(allow_zero=True), default=1,
                          help="untimed calls first (default 1)")
    protocol.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto", help="default auto")
    protocol.add_argument("--threads", type=positive_int(), help="CPU threads for PyTorch (default: its own)")
    protocol.add_argument("--seed", type=int, default=0, help="seed of the random weights and prompt")
    protocol.add_argument(
        "--stack", action="append", choices=[*STACKS, "both"], metavar="{" + ",".join([*STACKS, "both"]) + "}",
        help="serving stack: hf-eager (PyTorch eager, default) or cuda-graphs (decode steps replayed from a "
             "captured CUDA graph; CUDA only); repeatable, 'both' for both",
    )
    parser.add_argument("--output", metavar="FILE", help="write the measurements CSV with its provenance header")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    _one_line_errors(parser)
    parser.set_defaults(handler=run)


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    # Bad arguments read as one line, like every other Morph error, not a usage block.
    def error(message: str) -> NoReturn:
        print(f"morph: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]


def _shapes(args: argparse.Namespace) -> list[Shape]:
    if args.shape and (args.sweep or args.shapes_csv or args.gpu):
        raise LatencyError("give shapes with --shape, or with --sweep and/or --shapes-csv, not both")
    if args.shape:
        return list(dict.fromkeys(parse_shape(text) for text in args.shape))
    if args.shapes_csv:
        return read_shapes_csv(args.shapes_csv, sweep=args.sweep, gpu=args.gpu)
    if args.gpu:
        raise LatencyError("--gpu chooses rows of a --shapes-csv file; give the file too")
    if args.sweep:
        return named_sweep(args.sweep)
    raise LatencyError("give the shapes to measure: --shape 12x3072, --sweep cpu-default or --shapes-csv FILE")


def _stacks(args: argparse.Namespace) -> list[str]:
    """The stacks asked for, in order, each once; hf-eager when none is given."""
    named = args.stack or [STACKS[0]]
    expanded = [stack for name in named for stack in (STACKS if name == "both" else (name,))]
    return list(dict.fromkeys(expanded))


def _protocol(args: argparse.Namespace) -> MeasurementProtocol:
    device = resolve_device(args.device)
    base = PAPER_PROTOCOL if device == "cuda" else CPU_PROTOCOL

    def pick(value, default):
        return default if value is None else value

    return MeasurementProtocol(
        batch=pick(args.batch, base.batch),
        input_tokens=pick(args.input_tokens, base.input_tokens),
        output_tokens=pick(args.output_tokens, base.output_tokens),
        trials=args.trials,
        warmup=args.warmup,
        dtype=pick(args.dtype, base.dtype),
        device=device,
        threads=args.threads,
        seed=args.seed,
    )


def _progress(i: int, total: int, m: Measurement) -> None:
    stats = m.stats
    print(
        f"[{i}/{total}] {m.shape} (N={m.shape.N / 1e6:.1f}M, {m.stack}): median {stats['median']:.4f} s, "
        f"IQR {stats['iqr'] / stats['median']:.1%}",
        file=sys.stderr,
        flush=True,
    )


def table(measurements: list[Measurement]) -> str:
    """A readable table: shape, stack, parameters, aspect ratio, median and spread, time per new token."""
    head = f"{'shape':>12} {'stack':>11} {'N (M)':>9} {'d/L':>7} {'median s':>9} {'min s':>8} {'max s':>8} {'IQR %':>6} {'ms/token':>9}"
    lines = [head, "-" * len(head)]
    for m in measurements:
        s, stats = m.shape, m.stats
        lines.append(
            f"{f'{s.n_layers}x{s.d_model}x{s.n_heads}':>12} {m.stack:>11} {s.N / 1e6:9.1f} {s.aspect_ratio:7.1f} "
            f"{stats['median']:9.4f} {stats['min']:8.4f} {stats['max']:8.4f} "
            f"{100 * stats['iqr'] / stats['median']:6.1f} {1e3 * stats['median'] / m.protocol.output_tokens:9.2f}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # Everything that can be refused is checked before the first model is built.
    shapes = _shapes(args)
    stacks = _stacks(args)
    require_torch()
    protocol = _protocol(args)
    for stack in stacks:
        check_stack(stack, protocol.device)
    if args.output:
        check_writable(args.output)
    if args.threads is not None:
        require_torch().set_num_threads(args.threads)
    command = "morph " + shlex.join(getattr(args, "argv", None) or sys.argv[1:])
    date, load_before = now_iso(), load_average()
    started = time.perf_counter()
    progress = None if (args.quiet or args.json) else _progress
    measurements: list[Measurement] = []
    interrupted = False
    try:
        with _terminate_as_interrupt():
            measure_shapes(shapes, protocol, progress=_collect(measurements, progress), stacks=stacks)
    except KeyboardInterrupt:
        interrupted = True
    wall_s = time.perf_counter() - started
    runs = len(shapes) * len(stacks)
    if interrupted and not measurements:
        print(f"morph: interrupted before the first of {runs} runs finished; nothing written", file=sys.stderr)
        return INTERRUPTED
    extra = {"wall_s": f"{wall_s:.1f}"}
    if interrupted:
        # A long GPU sweep stopped by a time limit keeps the shapes it finished, and says so.
        extra["interrupted"] = f"after {len(measurements)} of {runs} runs"
    header = provenance(
        measurements[0].protocol,
        command=command,
        date=date,
        load_before=load_before,
        load_after=load_average(),
        extra=extra,
        stacks=stacks,
    )
    if args.output:
        write_measurements(args.output, measurements, header)
    if interrupted:
        where = f"; written to {args.output}" if args.output else ""
        print(f"morph: interrupted after {len(measurements)} of {runs} runs{where}", file=sys.stderr)
    if args.json:
        print_json(
            {
                "provenance": header,
                "protocol": protocol_dict(measurements[0].protocol),
                "measurements": measurements_frame(measurements).to_dict(orient="records"),
                "output": args.output,
            }
        )
    else:
        print(table(measurements))
        done = f"{len(measurements)} of {runs} runs" if interrupted else f"{len(shapes)} shape(s) x {len(stacks)} stack(s)"
        note = f"{done} in {wall_s:.1f} s; {header['protocol']}"
        print(note if not args.output else f"{note}\nwritten to {args.output}")
    return INTERRUPTED if interrupted else 0


INTERRUPTED = 130
"""Exit status of a sweep stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)."""


def _collect(
    into: list[Measurement], progress: Callable[[int, int, Measurement], None] | None
) -> Callable[[int, int, Measurement], None]:
    """A progress callback that keeps every finished measurement in ``into``, then reports it."""

    def record(i: int, total: int, measurement: Measurement) -> None:
        into.append(measurement)
        if progress is not None:
            progress(i, total, measurement)

    return record


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``timeout``, a batch scheduler) stops the sweep as Ctrl-C does."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
