"""``morph frontier``: pick shapes under a latency budget, and the accuracy-latency frontier."""

from __future__ import annotations

import argparse

from typing import Any

from ..decision import PLAUSIBLE, FitRange, assess, compute_optima, fit_range, preset_fit
from ..errors import SelectionError
from ..fitting import METHODS, fit
from ..frontier import (
    Candidates,
    candidates_from_flops,
    candidates_from_range,
    candidates_from_table,
    evaluate_candidates,
    resolve_law,
    select,
)
from ..latency.serving import SERVING_METRICS
from ..laws import LAW_FAMILIES, PRESETS
from .common import add_workload_arguments, positive_float, positive_int, print_json, workload_from_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "frontier",
        help="rank shapes by predicted loss under a latency budget",
        description=(
            "Enumerate or read candidate shapes, predict their loss with a law and their latency with the "
            "calibrated latency model, drop those over the latency budget, rank the rest by loss and keep "
            "the top K; also print the (latency, loss) Pareto frontier."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--candidates", metavar="CSV", help="table with n_layers, d_model (n_heads, D optional)")
    source.add_argument("--params-min", type=positive_float, metavar="N", help="smallest parameter count")
    source.add_argument("--flops", type=positive_float, metavar="C", help="training budget; D = C / (6 N)")
    parser.add_argument("--params-max", type=positive_float, metavar="N", help="largest parameter count")
    parser.add_argument("--tokens", type=positive_float, metavar="D", help="training tokens of every candidate")
    # --latency-target is the option's former name, still accepted.
    parser.add_argument("--latency-budget", "--latency-target", "--budget", dest="latency_budget_s",
                        type=positive_float, required=True, metavar="VALUE",
                        help="budget on --budget-metric: seconds of one generate call by default "
                             "(--latency-target is its former name)")
    parser.add_argument("--budget-metric", choices=list(SERVING_METRICS), default="latency_s",
                        help="what the budget limits: latency_s, ttft_s, ms_per_token, cost_per_million_tokens "
                             "(ceilings) or tokens_per_s (a floor); default latency_s")
    parser.add_argument("--price-per-gpu-hour", type=positive_float, metavar="PRICE",
                        help="price of one GPU-hour, for --budget-metric cost_per_million_tokens")
    add_workload_arguments(parser)
    law = parser.add_mutually_exclusive_group()
    law.add_argument("--law", choices=list(PRESETS), default="bian2025", help="published parameter set")
    law.add_argument("--fit", metavar="CSV", help="fit the law on this table of runs instead")
    parser.add_argument("--fit-law", choices=list(LAW_FAMILIES), default="inference-efficient")
    parser.add_argument("--fit-variant", choices=["tied", "nonequal", "untied"], default="tied")
    parser.add_argument("--fit-method", choices=list(METHODS), default="paper")
    parser.add_argument("--fit-set", metavar="COLUMN", help="with --fit: rows to fit (0/1 column)")
    parser.add_argument("--top", type=positive_int(), default=3, metavar="K")
    parser.add_argument("--bootstrap", type=positive_int(allow_zero=True), default=200, metavar="K",
                        help="bootstrap refits behind the loss bands, ties and probabilities of being best (default "
                             "200; a bian2025 preset is re-derived on fit set B for them; 0: none for a preset, the "
                             "covariance for --fit)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def _candidates(args: argparse.Namespace, law: Any = "bian2025") -> Candidates:
    if args.candidates:
        return candidates_from_table(args.candidates, args.tokens)
    if args.flops:
        if args.tokens:
            raise SelectionError("--flops sets the tokens of each candidate (D = C / 6N); drop --tokens")
        return candidates_from_flops(args.flops, args.params_min, args.params_max, law=law)
    if args.params_max is None:
        raise SelectionError("--params-min needs --params-max")
    if args.params_max < args.params_min:
        raise SelectionError(f"--params-max ({args.params_max:g}) is below --params-min ({args.params_min:g})")
    if args.tokens is None:
        raise SelectionError("give the training tokens with --tokens (or use --flops)")
    return candidates_from_range(args.params_min, args.params_max, args.tokens)


def _law(args: argparse.Namespace) -> tuple[Any, FitRange | None]:
    """The law to rank with (a fit where one gives bands) and the runs it was fitted on."""
    if args.fit:
        result = fit(args.fit, args.fit_law, args.fit_variant, method=args.fit_method, fit_set=args.fit_set,
                     bootstrap=args.bootstrap)
        return result, fit_range(result)
    refit = preset_fit(args.law, bootstrap=args.bootstrap) if args.bootstrap else None
    return (refit if refit is not None else args.law), fit_range(args.law)


def run(args: argparse.Namespace) -> int:
    law, runs = _law(args)
    evaluation = evaluate_candidates(_candidates(args, law), law, workload=workload_from_args(args))
    selection = select(evaluation, args.latency_budget_s, args.top, budget_metric=args.budget_metric,
                       price_per_gpu_hour=args.price_per_gpu_hour)
    assessment = assess(selection, runs)
    optima = compute_optima(selection, args.flops, resolve_law(law)[0]) if args.flops else None
    if args.json:
        payload = assessment.update(selection.to_dict(), selection)
        if optima is not None:
            payload["compute"] = optima
        print_json(payload)
        return 0
    columns = ["rank", "label", "n_layers", "d_model", "N", "loss", "loss_low", "loss_high", "probability_best",
               "plausibly_best", "latency_s", "latency_low_s", "latency_high_s", "probability_within_budget",
               "feasible", "speedup"]
    metric = SERVING_METRICS[args.budget_metric]
    print(f"{len(evaluation)} candidates, {metric.label} {metric.bound} {args.latency_budget_s:g} {metric.unit} on "
          f"{evaluation.workload.hardware_name} ({assessment.stack} stack); top {args.top} by predicted loss:")
    shown = assessment.annotate(selection.selected, selection.selected_index)
    print(shown[[c for c in columns if c in shown]].to_string(index=False))
    draws = assessment.draws
    if assessment.probability_any_within_budget is not None:
        print(f"Bands and probabilities: {draws['n']} joint draws of the law and the latency (seed {draws['seed']}), "
              f"latency basis {assessment.latency_basis}; some shape meets the budget in "
              f"{assessment.probability_any_within_budget:.1%} of them; plausibly best: P(best) >= {PLAUSIBLE:g}")
    if optima is not None:
        best, chosen = optima["best_shape"], optima["latency_constrained"]
        print(f"\nAt {args.flops:.3g} training FLOPs: the law's compute-optimal N = {optima['compute_optimal']['N']:.3g} "
              f"({optima['compute_optimal']['tokens_per_parameter']:.3g} tokens per parameter); Chinchilla's "
              f"(Hoffmann et al.) N = {optima['chinchilla_optimal']['N']:.3g}; best shape {best['label']} "
              f"(loss {best['loss']:.4f}, {best['latency_s']:.3g} s); within the budget {chosen['label']} "
              f"(loss {chosen['loss']:.4f}, {chosen['loss_penalty']:+.4f})")
    for warning in assessment.warnings:
        print(f"warning: {warning}")
    print(f"\nPareto frontier ({len(selection.frontier)} shapes, fastest first):")
    frontier_columns = ["label", "n_layers", "d_model", "N", "loss", "latency_s"]
    print(selection.frontier[frontier_columns].head(20).to_string(index=False))
    over = selection.dropped["reason"].str.contains("exceeds").sum()
    print(f"\ndropped: {over} over the latency budget, {len(selection.dropped) - over} outside the top {args.top}")
    return 0
