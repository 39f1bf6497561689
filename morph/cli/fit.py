"""``morph fit``: fit a scaling law to a CSV of training runs."""

from __future__ import annotations

import argparse
import sys

from ..fitting import METHODS, fit
from ..laws import LAW_FAMILIES
from .common import positive_int, print_json

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit a scaling law to training runs",
        description=(
            "Fit a scaling law to a CSV with columns N (or params), D (or tokens) and loss; shape-aware laws "
            "also need aspect_ratio, or n_layers and d_model. Every row is evaluated; --fit-set chooses the "
            "rows fitted."
        ),
    )
    parser.add_argument("csv", help="table of runs (CSV)")
    parser.add_argument("--law", choices=list(LAW_FAMILIES), default="inference-efficient")
    parser.add_argument("--variant", choices=["tied", "nonequal", "untied"], default="tied")
    parser.add_argument("--method", choices=list(METHODS), default="paper")
    parser.add_argument("--fit-set", metavar="COLUMN", help="fit only the rows where this 0/1 column is 1")
    parser.add_argument("--bootstrap", type=positive_int(allow_zero=True), default=0, metavar="K",
                        help="bootstrap refits for confidence intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = fit(
        args.csv,
        args.law,
        args.variant,
        method=args.method,
        fit_set=args.fit_set,
        bootstrap=args.bootstrap,
        seed=args.seed,
        progress=args.bootstrap > 0 and not args.json and sys.stderr.isatty(),
    )
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.report())
    return 0
