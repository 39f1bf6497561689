"""``morph latency``: predicted generation time per shape, calibration from timings, the CPU probe.

Three forms::

    morph latency --shape 24x2048 --shape 12x3072 [--hardware a100-40gb] [--json]
    morph latency calibrate MEASUREMENTS.csv [--hardware cpu] [--save NAME] [--json]
    morph latency probe-cpu

The first is the default (no subcommand word); ``calibrate`` and
``probe-cpu`` are optional subcommands of ``latency``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..latency.calibration import BOOTSTRAP, DEFAULT_FIT, GRAPH_FIT, calibrate, leave_one_out, load_measurements
from ..errors import LatencyError
from ..latency.hardware import HARDWARE_COLUMNS, hardware_csv_row, probe_cpu
from ..latency import COEFFICIENTS, predict_latency
from ..latency.memory import serving_memory
from ..latency.serving import serving_metric
from ..latency.uncertainty import (
    DRAWS, SEED, fastest_sentence, latency_interval, probability_fastest, uncertainty_of, workload_draws,
)
from ..shapes import Shape, parse_shape
from .common import add_workload_arguments, positive_float, positive_int, print_json, workload_from_args

__all__ = ["add_parser", "run", "run_calibrate", "run_probe"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "latency",
        help="predict generation latency per shape, or calibrate the latency model",
        description=(
            "Predict the wall time of one generate call (prefill plus decode) for each shape on a hardware "
            "preset, with the hardware's default calibration unless one is named. "
            "`morph latency calibrate FILE.csv` fits a calibration to measured timings; "
            "`morph latency probe-cpu` measures this machine for the cpu preset."
        ),
    )
    parser.add_argument("--shape", action="append", default=[], metavar="LxD[xH]",
                        help="shape as LAYERSxWIDTH or LAYERSxWIDTHxHEADS, e.g. 12x3072; repeat for more")
    add_workload_arguments(parser)
    parser.add_argument("--price-per-gpu-hour", type=positive_float, metavar="PRICE",
                        help="price of one GPU-hour: adds the cost per million generated tokens")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(handler=run)

    actions = parser.add_subparsers(dest="latency_command", metavar="{calibrate,probe-cpu}")
    fit = actions.add_parser(
        "calibrate",
        help="fit the latency model to measured timings",
        description=(
            "Fit the latency model's coefficients to a CSV of timings (columns n_layers, d_model, batch, "
            "input_tokens, output_tokens, latency_s; optional leading '# key: value' provenance lines) and "
            "report each row's leave-one-out error."
        ),
    )
    fit.add_argument("measurements", help="CSV of generate timings")
    fit.add_argument("--hardware", help="hardware preset the timings were taken on (default: from the file's "
                                        "hardware column or header, or cpu when its device is cpu)")
    fit.add_argument("--fit", metavar="NAMES",
                     help=f"comma-separated coefficients to fit, from {', '.join(COEFFICIENTS)} "
                          f"(default {','.join(DEFAULT_FIT)}; for --stack cuda-graphs {','.join(GRAPH_FIT)} with "
                          "c_layer_s fixed at 0)")
    fit.add_argument("--bootstrap", type=positive_int(allow_zero=True), default=BOOTSTRAP, metavar="K",
                     help=f"refits over resampled timings behind the calibration's band (default {BOOTSTRAP}; 0: "
                          "the residual scatter alone)")
    fit.add_argument("--stack", help="fit the rows of this serving stack (the table's stack column: hf-eager or "
                                     "cuda-graphs); needed when the table holds both")
    fit.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE",
                     help="fix a coefficient that is not fitted, e.g. overlap_p=1; repeatable")
    fit.add_argument("--save", metavar="NAME",
                     help="save as calibrations/NAME.json in your data folder ($MORPH_DATA_HOME, else "
                          "$XDG_DATA_HOME/morph, else ~/.local/share/morph), where --calibration NAME finds it; "
                          "or to a path ending in .json")
    # SUPPRESS: without --json here, `morph latency --json calibrate FILE` keeps the parent's.
    fit.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                     help="print one JSON object instead of a report")
    fit.set_defaults(handler=run_calibrate)

    probe = actions.add_parser(
        "probe-cpu",
        help="measure this machine's memory bandwidth and fp32 throughput",
        description="Measure this CPU with numpy and print its row for data/hardware.csv.",
    )
    probe.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON object instead of a CSV row")
    probe.set_defaults(handler=run_probe)


# --- predictions ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if not args.shape:
        raise LatencyError("give at least one --shape, e.g. --shape 12x3072 (or run `morph latency calibrate FILE`)")
    shapes = [parse_shape(text) for text in args.shape]
    workload = workload_from_args(args)
    hardware = workload.device
    calibration = workload.resolved_calibration()
    prediction = predict_latency(
        np.array([s.n_layers for s in shapes]),
        np.array([s.d_model for s in shapes]),
        np.array([s.n_heads for s in shapes]),
        workload=workload.replace(calibration=calibration), band=False,
    )
    spread = uncertainty_of(calibration, hardware)
    memory = serving_memory(
        np.array([s.n_layers for s in shapes]), np.array([s.d_model for s in shapes]),
        np.array([s.n_heads for s in shapes]), np.array([s.n_kv_heads for s in shapes]), workload=workload,
    )
    # One set of joint draws gives every band and probability of this output.
    draws = workload_draws(shapes, workload)
    low, high = latency_interval(draws["latency_s"])
    fastest = probability_fastest(draws["latency_s"]) if len(shapes) > 1 else None
    sentence = fastest_sentence(shapes, draws["latency_s"], workload)
    rows = [_row(shape, prediction, i) for i, shape in enumerate(shapes)]
    for i, (row, reason) in enumerate(zip(rows, memory.reasons())):
        row.update(
            latency_low_s=_significant(low[i]), latency_high_s=_significant(high[i]),
            memory_gb=_significant(memory.memory_gb[i]), kv_cache_gb=_significant(memory.kv_cache_gb[i]),
            feasible=bool(memory.feasible[i]), infeasible_reason=reason or None, ttft_s=row["prefill_s"],
        )
        if fastest is not None:
            row["probability_fastest"] = float(fastest[i])
        if args.price_per_gpu_hour is not None:
            row["cost_per_million_tokens"] = _significant(serving_metric(
                "cost_per_million_tokens", latency_s=prediction.latency_s[i], prefill_s=prediction.prefill_s[i],
                ms_per_token=prediction.ms_per_token[i], batch=workload.batch, output_tokens=workload.output_tokens,
                price_per_gpu_hour=args.price_per_gpu_hour))
    if args.json:
        print_json(
            {
                "hardware": hardware.name,
                "hardware_label": hardware.label,
                "calibration": calibration.name,
                "calibration_hardware": calibration.hardware,
                "stack": workload.stack_name,
                "transferred": spread.basis == "transfer",
                "latency_basis": spread.basis,
                "latency_basis_reasoning": spread.reasoning,
                "draws": {"n": DRAWS, "seed": SEED},
                "band_level": 0.95,
                "prior_dependence": sentence,
                "batch": workload.batch,
                "input_tokens": workload.input_tokens,
                "output_tokens": workload.output_tokens,
                "dtype": workload.dtype,
                "shapes": rows,
            }
        )
        return 0
    print(f"{hardware.label} [{hardware.name}], stack {workload.stack_name}, calibration {calibration.name}")
    if spread.basis == "transfer":
        print(f"TRANSFERRED: coefficients made on {calibration.hardware}, transferred to this hardware's datasheet")
    print(f"latency band: central 95% of {DRAWS} joint draws; basis {spread.describe()}")
    print(f"batch {workload.batch}, {workload.input_tokens} input + {workload.output_tokens} output tokens, "
          f"{workload.dtype}")
    print()
    header = f"{'shape':<12}{'params':>9}{'latency s':>11}{'band s':>15}{'TTFT ms':>9}{'ms/token':>10}" \
             f"{'tokens/s':>10}{'roofline s':>12}{'memory GB':>11}"
    print(header)
    for row in rows:
        band = f"{row['latency_low_s']:.2g}-{row['latency_high_s']:.2g}"
        print(
            f"{row['shape']:<12}{row['N'] / 1e9:>8.2f}B{row['latency_s']:>11.2f}{band:>15}{1e3 * row['prefill_s']:>9.1f}"
            f"{row['ms_per_token']:>10.2f}{row['tokens_per_s']:>10.1f}{row['roofline_s']:>12.3f}"
            f"{row['memory_gb']:>11.3g}"
        )
    for row in rows:
        if "cost_per_million_tokens" in row:
            print(f"{row['shape']}: {row['cost_per_million_tokens']:.4g} per million generated tokens at "
                  f"{args.price_per_gpu_hour:g} per GPU-hour")
    for row in rows:
        if not row["feasible"]:
            print(f"INFEASIBLE {row['shape']}: {row['infeasible_reason']}")
    if fastest is not None:
        print("probability of being the fastest: " + ", ".join(f"{r['shape']} {r['probability_fastest']:.2f}" for r in rows))
    if sentence:
        print(sentence)
    return 0


def _significant(value: Any) -> float:
    # Predictions are computed in float32: print the 7 digits that carry meaning.
    return float(f"{float(value):.7g}")


def _row(shape: Shape, prediction: Any, i: int) -> dict[str, Any]:
    return {
        "shape": f"{shape.n_layers}x{shape.d_model}",
        "n_layers": shape.n_layers,
        "d_model": shape.d_model,
        "n_heads": shape.n_heads,
        "N": shape.N,
        "latency_s": _significant(prediction.latency_s[i]),
        "prefill_s": _significant(prediction.prefill_s[i]),
        "decode_s": _significant(prediction.decode_s[i]),
        "ms_per_token": _significant(prediction.ms_per_token[i]),
        "tokens_per_s": _significant(prediction.tokens_per_s[i]),
        "roofline_s": _significant(prediction.roofline_s[i]),
    }


# --- calibration ------------------------------------------------------------------------------


def _fixed(pairs: list[str]) -> dict[str, float]:
    fixed: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not math.isfinite(number):
            raise LatencyError(f"--fix takes NAME=VALUE with a finite number, got {pair!r}")
        fixed[name.strip()] = number
    return fixed


def run_calibrate(args: argparse.Namespace) -> int:
    frame = load_measurements(args.measurements)
    graph = args.stack == "cuda-graphs"
    default = GRAPH_FIT if graph else DEFAULT_FIT
    names = tuple(n.strip() for n in (args.fit or ",".join(default)).split(",") if n.strip())
    fixed = _fixed(args.fix)
    if graph and "c_layer_s" not in names:
        # A captured graph leaves no per-layer host work: its per-layer cost is device time.
        fixed.setdefault("c_layer_s", 0.0)
    result = calibrate(frame, args.hardware, fit=names, fixed=fixed, stack=args.stack, bootstrap=args.bootstrap,
                       source=f"fitted by `morph latency calibrate {Path(args.measurements).name}` to "
                              f"{len(frame)} timings")
    hardware = result.calibration.hardware
    try:
        loo = leave_one_out(frame, hardware, fit=names, fixed=fixed, stack=args.stack)
        loo_note = ""
    except LatencyError as exc:
        loo, loo_note = None, str(exc)
    calibration = result.calibration.replace(
        name=_save_name(args.save) or result.calibration.name,
        loo_mape=None if loo is None else loo.mape,
        loo_max_error=None if loo is None else loo.max_error,
    )
    saved = None
    if args.save:
        target = Path(args.save) if args.save.endswith(".json") else None
        saved = str(calibration.save(target))
    table = result.table.copy()
    if loo is not None:
        table["loo_predicted_s"] = loo.table["predicted_s"].to_numpy()
        table["loo_error"] = loo.table["error"].to_numpy()
    if args.json:
        print_json(
            {
                "name": calibration.name,
                "hardware": hardware,
                "measurements": str(args.measurements),
                "n_measurements": len(frame),
                "coefficients": calibration.coefficients,
                "fitted": list(calibration.fitted),
                "stderr": result.stderr,
                "fit_mape": result.mape,
                "fit_max_error": result.max_error,
                "loo_mape": None if loo is None else loo.mape,
                "loo_max_error": None if loo is None else loo.max_error,
                "loo_note": loo_note or None,
                "stack": calibration.stack,
                "latency_basis": calibration.uncertainty.get("basis"),
                "uncertainty_reasoning": calibration.uncertainty.get("reasoning"),
                "below_roofline": result.below_roofline,
                "metadata": frame.attrs.get("metadata", {}),
                "rows": table.to_dict(orient="records"),
                "saved": saved,
            }
        )
        return 0
    print(result.report())
    if loo is not None:
        print(f"  leave-one-out error: mean {100 * loo.mape:.2f}%, worst {100 * loo.max_error:.2f}% "
              f"(row {loo.worst_row + 1})")
    else:
        print(f"  leave-one-out error: not available ({loo_note})")
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if saved:
        print(f"\nsaved {saved}")
    return 0


def _save_name(save: str | None) -> str | None:
    if not save:
        return None
    return Path(save).stem if save.endswith(".json") else save


# --- the CPU probe ----------------------------------------------------------------------------


def run_probe(args: argparse.Namespace) -> int:
    hardware = probe_cpu()
    if args.json:
        print_json({column: getattr(hardware, column) for column in HARDWARE_COLUMNS})
    else:
        print(",".join(HARDWARE_COLUMNS))
        print(hardware_csv_row(hardware))
    return 0
