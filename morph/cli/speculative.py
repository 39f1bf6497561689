"""``morph speculative``: the speed-up draft models give a target under speculative decoding.

::

    morph speculative --target 32x4096 --draft 4x2048 --draft 24x512 --acceptance 0.75 \\
        --lookahead 4 --hardware a100-40gb [--json]

One ``--acceptance`` for every draft, or one per draft in the same order.

Every workload option of the other subcommands is taken, with the same
meaning (``--stack cuda-graphs`` picks the graph-captured stack's
calibration). A step is timed with ``--context`` tokens cached, by default
the middle of generation (``input_tokens + output_tokens // 2``); the memory
check counts the full caches, ``input_tokens + output_tokens`` per sequence.
Each draft is reported ``feasible`` when the weights and key/value caches of
target and draft together fit in ``--memory-gb`` (default: the hardware's).

Instead of ``--draft``, ``--params-max N`` (with ``--params-min``) or ``--candidates CSV`` ranks many
draft shapes by speed-up at each one's best lookahead (:func:`morph.drafts.select_drafts`),
with one ``--acceptance`` for all of them, the table's own ``acceptance`` column, or, with
``--target-tokens``, acceptance rates derived from the predicted loss gap (``--tightness``)::

    morph speculative --target 32x4096 --params-min 5e7 --params-max 1e9 --target-tokens 1e12 [--json]
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from ..data import read_table, to_numeric
from ..drafts import select_drafts
from ..frontier import Candidates, candidates_from_range, candidates_from_table
from ..latency import DEFAULT_CONTEXT, Workload
from ..latency.uncertainty import uncertainty_of
from ..shapes import Shape, parse_shape
from ..speculative import (
    DEFAULT_MAX_LOOKAHEAD,
    PairMemory,
    SpeculativeError,
    best_lookahead,
    pair_memory,
    speculative_timing,
    target_pass_s,
)
from .common import add_workload_arguments, print_json, workload_from_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "speculative",
        help="speed-up of draft models for a target under speculative decoding",
        description=(
            "For each draft shape: expected tokens per verification step, step time, tokens per second and "
            "speed-up over the target alone at the given lookahead, and the best lookahead. Times come from "
            "the calibrated latency model: k draft decode steps plus one target pass over k + 1 tokens. "
            "Each draft is checked for memory: target and draft weights plus both key/value caches."
        ),
    )
    parser.add_argument("--target", metavar="LxD[xH]", help="target shape, e.g. 32x4096")
    parser.add_argument("--draft", action="append", default=[], metavar="LxD[xH]",
                        help="draft shape; repeat for more")
    parser.add_argument("--acceptance", action="append", default=[], metavar="A",
                        help="acceptance rate per drafted token in [0, 1]: one for all drafts, or one per draft")
    parser.add_argument("--lookahead", default="4", metavar="K", help="drafted tokens per step (default 4)")
    parser.add_argument("--max-lookahead", default=str(DEFAULT_MAX_LOOKAHEAD), metavar="K",
                        help=f"largest lookahead searched for the best one (default {DEFAULT_MAX_LOOKAHEAD})")
    add_workload_arguments(parser)
    parser.add_argument("--context", metavar="TOKENS",
                        help="tokens in the key/value cache when a step is timed (default: the middle of generation, "
                             f"input tokens + output tokens / 2, {DEFAULT_CONTEXT} for the default workload); the "
                             "memory check counts the full cache, input + output tokens per sequence")
    parser.add_argument("--memory-gb", metavar="GB",
                        help="memory for target and draft: both models' weights and key/value caches "
                             "(default: the hardware's)")
    ranking = parser.add_argument_group("ranking many drafts (instead of --draft)")
    ranking.add_argument("--params-min", metavar="N", help="smallest draft (parameters; default 1e7)")
    ranking.add_argument("--params-max", metavar="N", help="largest draft (parameters): enumerate every shape up to it")
    ranking.add_argument("--candidates", metavar="CSV",
                         help="table of draft shapes: n_layers, d_model (D, acceptance optional)")
    ranking.add_argument("--tokens", metavar="D",
                         help="training tokens of every draft, for its predicted loss (default: the table's D "
                              "column, or 2e10 for a parameter range)")
    ranking.add_argument("--target-tokens", metavar="D",
                         help="training tokens of the target: derive acceptance from the loss gap instead of --acceptance")
    ranking.add_argument("--tightness", metavar="T", default="1",
                         help="factor on the Pinsker term of the loss-to-acceptance assumption (default 1: the bound)")
    ranking.add_argument("--top", metavar="K", default="5", help="drafts to keep (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(handler=run)


def _whole(text: str, option: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SpeculativeError(f"{option} must be a whole number, got {text!r}") from None
    if value < minimum:
        raise SpeculativeError(f"{option} must be >= {minimum}, got {value}")
    return value


def _rates(texts: list[str], drafts: int) -> list[float]:
    if not texts:
        raise SpeculativeError("give the acceptance rate with --acceptance A (one for all drafts, or one per draft)")
    if len(texts) not in (1, drafts):
        raise SpeculativeError(f"{len(texts)} --acceptance values for {drafts} draft{'s' if drafts > 1 else ''}; give one, or one per draft")
    rates = []
    for text in texts:
        try:
            value = float(text)
        except ValueError:
            raise SpeculativeError(f"--acceptance must be a number between 0 and 1, got {text!r}") from None
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise SpeculativeError(f"--acceptance must lie between 0 and 1, got {text}")
        rates.append(value)
    return rates * drafts if len(rates) == 1 else rates


def _number(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SpeculativeError(f"{option} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SpeculativeError(f"{option} must be a finite number > 0, got {text}")
    return value


def _context(args: argparse.Namespace, serving: Workload) -> int:
    """Tokens cached when a step is timed: ``--context``, else the middle of generation.

    The middle of generation is ``input_tokens + output_tokens // 2`` (tokens):
    :data:`~morph.latency.DEFAULT_CONTEXT` for the default workload.
    """
    if args.context is None:
        return serving.input_tokens + serving.output_tokens // 2
    return _whole(args.context, "--context", 0)


def _settings(serving: Workload, context: int, memory: PairMemory) -> dict[str, Any]:
    """What the output reports of the workload: hardware, calibration and stack by name, batch, tokens, dtype."""
    return {"hardware": serving.hardware_name, "calibration": serving.resolved_calibration().name,
            "stack": serving.stack_name, "batch": serving.batch, "input_tokens": serving.input_tokens,
            "output_tokens": serving.output_tokens, "context": context, "dtype": serving.dtype,
            "memory_budget_gb": memory.capacity_gb}


def _memory(target: Shape, drafts: list[Shape], serving: Workload, budget: str | None) -> PairMemory:
    """Target and each draft in memory together, each with its own heads."""
    return pair_memory(target, [d.n_layers for d in drafts], [d.d_model for d in drafts],
                       [d.n_heads for d in drafts], [d.n_kv_heads for d in drafts], workload=serving,
                       memory_budget_gb=_number(budget, "--memory-gb"))


def run(args: argparse.Namespace) -> int:
    if not args.target:
        raise SpeculativeError("give the target shape with --target, e.g. --target 32x4096")
    ranking = args.params_max is not None or args.params_min is not None or args.candidates is not None
    if ranking and args.draft:
        raise SpeculativeError("give drafts with --draft, or rank many with --params-max or --candidates, not both")
    if ranking:
        return run_ranking(args)
    if not args.draft:
        raise SpeculativeError("give at least one draft shape with --draft, e.g. --draft 4x2048 "
                               "(or rank many with --params-max N)")
    target = parse_shape(args.target)
    drafts = [parse_shape(text) for text in args.draft]
    rates = _rates(args.acceptance, len(drafts))
    lookahead = _whole(args.lookahead, "--lookahead", 0)
    max_lookahead = max(_whole(args.max_lookahead, "--max-lookahead", 0), lookahead)
    serving = workload_from_args(args)
    context = _context(args, serving)
    memory = _memory(target, drafts, serving, args.memory_gb)
    workload = _settings(serving, context, memory)
    layers = np.array([d.n_layers for d in drafts])
    widths = np.array([d.d_model for d in drafts])
    timing = speculative_timing(target, layers, widths, np.array(rates), lookahead, workload=serving, context=context)
    verify = target_pass_s(target, np.arange(1, max_lookahead + 2), workload=serving, context=context)
    best = best_lookahead(np.array(rates), timing.draft_step_s, verify)
    rows = [
        {
            "draft": str(draft), "n_layers": draft.n_layers, "d_model": draft.d_model, "N": draft.N,
            "acceptance": rates[i], "lookahead": lookahead,
            "expected_tokens": float(timing.expected_tokens[i]),
            "draft_step_s": float(timing.draft_step_s[i]), "verify_s": float(timing.verify_s[i]),
            "step_time_s": float(timing.step_time_s[i]), "tokens_per_s": float(timing.tokens_per_s[i]),
            "speedup": float(timing.speedup[i]),
            "best_lookahead": int(best.lookahead[i]), "best_speedup": float(best.speedup[i]),
            "memory_gb": float(memory.memory_gb[i]), "feasible": bool(memory.feasible[i]), "infeasible_reason": reason,
        }
        for i, (draft, reason) in enumerate(zip(drafts, memory.reasons()))
    ]
    if args.json:
        print_json({
            "target": {"shape": str(target), "n_layers": target.n_layers, "d_model": target.d_model, "N": target.N,
                       "step_time_s": timing.target_step_s, "tokens_per_s": timing.target_tokens_per_s,
                       "memory_gb": memory.target_gb, "feasible": memory.target_fits},
            **workload, "lookahead": lookahead, "max_lookahead": max_lookahead,
            "latency_basis": _basis(serving), "drafts": rows,
        })
        return 0
    _print_table(target, timing.target_step_s, rows, workload, lookahead, max_lookahead)
    return 0


def _basis(serving: Workload) -> str:
    """What the step times' latency rests on (see :mod:`morph.latency.uncertainty`)."""
    return uncertainty_of(serving.resolved_calibration(), serving.device).basis


def _print_table(target: Any, target_step_s: float, rows: list[dict[str, Any]], workload: dict[str, Any],
                 lookahead: int, max_lookahead: int) -> None:
    print(f"target {target} ({target.N / 1e9:.2f}B parameters) on {workload['hardware']}, stack {workload['stack']}: "
          f"{1e3 * target_step_s:.3g} ms per token alone (batch {workload['batch']}, {workload['context']} "
          f"tokens cached, {workload['dtype']})")
    print(f"memory: {workload['input_tokens']} input + {workload['output_tokens']} output tokens cached per "
          f"sequence, {workload['memory_budget_gb']:g} GB available")
    print(f"lookahead k = {lookahead}; best k searched over 0..{max_lookahead}\n")
    print(f"{'draft':<12}{'params':>9}{'accept':>8}{'tokens/step':>12}{'draft ms':>10}{'step ms':>9}"
          f"{'tokens/s':>10}{'speed-up':>10}{'best k':>8}{'best':>8}{'memory GB':>11}  fits")
    for r in rows:
        print(f"{r['draft']:<12}{r['N'] / 1e9:>8.3f}B{r['acceptance']:>8.2f}{r['expected_tokens']:>12.3f}"
              f"{1e3 * r['draft_step_s']:>10.3g}{1e3 * r['step_time_s']:>9.3g}{r['tokens_per_s']:>10.1f}"
              f"{r['speedup']:>9.2f}x{r['best_lookahead']:>8d}{r['best_speedup']:>7.2f}x{r['memory_gb']:>11.3g}"
              f"  {'yes' if r['feasible'] else 'NO'}")
    if any(r["best_lookahead"] == 0 for r in rows):
        print("\nbest k = 0: drafting with that draft does not pay (its steps cost too much for what it gets accepted)")
    for r in rows:
        if not r["feasible"]:
            print(f"INFEASIBLE {r['draft']}: {r['infeasible_reason']}")


def _draft_candidates(args: argparse.Namespace) -> tuple[Candidates, np.ndarray | None]:
    """The draft shapes, and the acceptance rates of a table's ``acceptance`` column (None without one)."""
    tokens = _number(args.tokens, "--tokens")
    if args.candidates is not None:
        if args.params_max is not None or args.params_min is not None:
            raise SpeculativeError("give --candidates or a parameter range, not both")
        table = read_table(args.candidates)
        rates = None
        if "acceptance" in table.columns:
            rates = to_numeric(table["acceptance"], "acceptance", "the candidates table", positive=False)
        return candidates_from_table(table, tokens), rates
    if args.params_max is None:
        raise SpeculativeError("--params-min needs --params-max")
    smallest = _number(args.params_min, "--params-min") or 1e7
    largest = _number(args.params_max, "--params-max")
    if largest < smallest:
        raise SpeculativeError(f"--params-max ({largest:g}) is below --params-min ({smallest:g})")
    return candidates_from_range(smallest, largest, tokens or 2e10), None


def run_ranking(args: argparse.Namespace) -> int:
    """Rank draft shapes from a parameter range or a table by speed-up at their best lookahead."""
    if args.acceptance and args.target_tokens:
        raise SpeculativeError("give one --acceptance for every draft, or --target-tokens to derive it, not both")
    if len(args.acceptance) > 1:
        raise SpeculativeError("when ranking many drafts give one --acceptance for all of them (or a table with "
                               "an acceptance column)")
    candidates, table_rates = _draft_candidates(args)
    if args.acceptance:
        rates: Any = _rates(args.acceptance, 1)[0]
    elif args.target_tokens:
        rates = None
    elif table_rates is not None:
        rates = table_rates
    else:
        raise SpeculativeError("give --acceptance A, --target-tokens D to derive acceptance from the loss gap, "
                               "or a candidates table with an acceptance column")
    params_max = _number(args.params_max, "--params-max")
    serving = workload_from_args(args)
    selection = select_drafts(
        args.target, candidates,
        acceptance=rates,
        target_tokens=_number(args.target_tokens, "--target-tokens"),
        tightness=_number(args.tightness, "--tightness"),
        max_lookahead=_whole(args.max_lookahead, "--max-lookahead", 0),
        param_budget=params_max, memory_budget_gb=_number(args.memory_gb, "--memory-gb"),
        top_n=_whole(args.top, "--top", 1), workload=serving,
        context=_context(args, serving),
    )
    if args.json:
        print_json({**selection.to_dict(), "latency_basis": _basis(serving)})
        return 0
    settings = selection.settings
    print(f"{len(selection)} draft shapes for target {selection.target} on {settings['hardware']}, {settings['stack']} "
          f"stack, {settings['memory_budget_gb']:g} GB of memory ({1e3 * selection.target_step_s:.3g} ms per token "
          f"alone); acceptance: {settings['acceptance']}")
    columns = ["rank", "label", "N", "loss", "acceptance", "draft_step_s", "best_lookahead", "best_speedup"]
    print(selection.selected[columns].to_string(index=False))
    print(f"\nPareto frontier of draft loss against draft step time: {len(selection.frontier)} shapes")
    dropped = selection.dropped
    reasons = dropped["reason"]
    # Over the parameter budget, or not fitting in memory beside the target.
    budget = int((reasons.str.contains("parameter budget") | ~dropped["feasible"].astype(bool)).sum())
    futile = int(reasons.str.startswith("drafting does not pay").sum())
    print(f"dropped: {budget} over a budget, {futile} where drafting does not pay, "
          f"{len(reasons) - budget - futile} outranked")
    return 0
