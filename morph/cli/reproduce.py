"""``morph reproduce``: every number the paper publishes against the one Morph computes."""

from __future__ import annotations

import argparse

from ..reproduce import reproduce
from .common import print_json

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="recompute the paper's published numbers and compare them",
        description=(
            "Recompute every number of data/paper_numbers.csv (the paper's fit table, fit-B parameters, 1B "
            "errors, rank correlations, the Morph-1B selection and the published latencies) from the shipped "
            "data, and print each next to the paper's with its tolerance. Exit status 1 when any number is "
            "outside its tolerance."
        ),
    )
    parser.add_argument("--numbers", metavar="CSV",
                        help="table of published numbers (default: the shipped data/paper_numbers.csv)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    result = reproduce(args.numbers)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.report())
    return 0 if result.all_ok else 1
