"""The ``morph`` command line: one module per subcommand.

Every subcommand module defines ``add_parser(subparsers)``, which registers its
arguments and sets ``handler``; :func:`main` dispatches to it. A
:class:`~morph.errors.MorphError` (bad input, impossible request) is printed as
one line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..errors import MorphError
from . import fit, frontier, latency, measure, reproduce, serve, speculative

__all__ = ["main", "build_parser"]

#: Subcommand modules, in the order ``morph --help`` lists them.
COMMANDS = [fit, latency, frontier, measure, reproduce, speculative, serve]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all subcommands registered)."""
    parser = argparse.ArgumentParser(
        prog="morph",
        description="Inference-efficient scaling laws: fit laws, predict latency per shape, pick shapes.",
    )
    parser.add_argument("--version", action="version", version=f"morph {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(subparsers)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input, 1 internal error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Kept so that files a command writes can record the exact command line.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except MorphError as exc:
        print(f"morph: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("morph: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug in Morph, not in the input
        if os.environ.get("MORPH_DEBUG"):
            raise
        print(f"morph: internal error: {type(exc).__name__}: {exc} (set MORPH_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
