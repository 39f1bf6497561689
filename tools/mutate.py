"""Mutation testing of Morph's core: flip one operator at a time and see whether the suite notices.

Usage::

    python tools/mutate.py [--per-module 12] [--seed 0] [--timeout 240] [--json]

For each core module (the laws, the latency model, the frontier, the decision
layer, speculative decoding) the script lists every place where one small
change makes a different program: an arithmetic operator swapped (``+`` and
``-``, ``*`` and ``/``, ``**`` to ``*``), a comparison loosened or tightened
(``<`` and ``<=``, ``>`` and ``>=``, ``==`` and ``!=``), ``and`` and ``or``
swapped, a ``max`` for a ``min``. It draws ``--per-module`` of them with a
fixed seed, applies each to a copy of the repository in a temporary folder
and runs the tests that cover that module there (not the browser or notebook
tests). A mutant the tests fail on is *killed*; one they pass is a
*survivor*, printed with its place so it can be triaged: a missing test, or a
change that does not change behaviour (an equivalent mutant).

The score is killed / (killed + survived); mutants whose tests time out count
as killed (the change made the program hang or crawl), and are reported.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Core module -> the test files that cover it.
TARGETS = {
    "morph/laws.py": ["tests/test_laws.py", "tests/test_fitting.py", "tests/test_fitting_forms.py",
                      "tests/test_reproduce.py"],
    "morph/latency/model.py": ["tests/test_latency.py", "tests/test_stacks.py", "tests/test_properties.py"],
    "morph/latency/uncertainty.py": ["tests/test_joint_draws.py", "tests/test_stacks.py", "tests/test_properties.py"],
    "morph/frontier.py": ["tests/test_frontier.py", "tests/test_decision.py", "tests/test_properties.py",
                          "tests/test_bad_input.py"],
    "morph/decision.py": ["tests/test_decision.py", "tests/test_joint_draws.py", "tests/test_properties.py"],
    "morph/draws.py": ["tests/test_decision.py", "tests/test_joint_draws.py", "tests/test_properties.py"],
    "morph/speculative.py": ["tests/test_speculative.py"],
}

_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.And: ast.Or, ast.Or: ast.And,
}
_CALLS = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum"}


@dataclass(frozen=True)
class Mutant:
    """One change: the module, the line, what was swapped for what, and its index among the module's sites."""

    module: str
    line: int
    change: str
    site: int


def _sites(tree: ast.AST) -> list[tuple[ast.AST, str]]:
    """Every node a mutation can change, with a description, in a fixed order."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _SWAPS:
            found.append((node, f"{type(node.op).__name__} -> {_SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _SWAPS:
            found.append((node, f"{type(node.ops[0]).__name__} -> {_SWAPS[type(node.ops[0])].__name__}"))
        elif isinstance(node, ast.BoolOp) and type(node.op) in _SWAPS:
            found.append((node, f"{type(node.op).__name__} -> {_SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in _CALLS:
                found.append((node, f"{name} -> {_CALLS[name]}"))
    # Docstrings and type annotations hold no operators ast.walk reaches here; order by position for stability.
    return sorted(found, key=lambda item: (item[0].lineno, item[0].col_offset, item[1]))


def _mutate(node: ast.AST) -> None:
    if isinstance(node, (ast.BinOp, ast.AugAssign, ast.BoolOp)):
        node.op = _SWAPS[type(node.op)]()
    elif isinstance(node, ast.Compare):
        node.ops = [_SWAPS[type(node.ops[0])]()]
    elif isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):
            node.func.attr = _CALLS[node.func.attr]
        else:
            node.func.id = _CALLS[node.func.id]


def mutants(per_module: int, seed: int) -> list[Mutant]:
    """``per_module`` mutants of each core module, drawn with ``seed``."""
    rng = random.Random(seed)
    chosen = []
    for module in TARGETS:
        sites = _sites(ast.parse((ROOT / module).read_text(encoding="utf-8")))
        picks = sorted(rng.sample(range(len(sites)), min(per_module, len(sites))))
        chosen += [Mutant(module, sites[i][0].lineno, sites[i][1], i) for i in picks]
    return chosen


def _apply(copy: Path, mutant: Mutant) -> None:
    path = copy / mutant.module
    tree = ast.parse((ROOT / mutant.module).read_text(encoding="utf-8"))
    node, _ = _sites(tree)[mutant.site]
    _mutate(node)
    path.write_text(ast.unparse(tree) + "\n", encoding="utf-8")


def run(mutant: Mutant, copy: Path, timeout: float) -> str:
    """``killed``, ``survived`` or ``timeout`` for one mutant, tested in ``copy``."""
    original = (ROOT / mutant.module).read_text(encoding="utf-8")
    _apply(copy, mutant)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m",
             "not browser and not notebooks", *TARGETS[mutant.module]],
            cwd=copy, capture_output=True, text=True, timeout=timeout,
            env={**__import__("os").environ, "PYTHONPATH": str(copy)},
        )
        return "survived" if result.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        (copy / mutant.module).write_text(original, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-module", type=int, default=12, help="mutants drawn per core module (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds a mutant's tests may take")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    chosen = mutants(args.per_module, args.seed)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="morph-mutants-") as folder:
        copy = Path(folder) / "repo"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "build", "__pycache__",
                                                                     ".hypothesis", "node_modules"))
        for k, mutant in enumerate(chosen, 1):
            outcome = run(mutant, copy, args.timeout)
            outcomes.append({**asdict(mutant), "outcome": outcome})
            if not args.json:
                print(f"[{k}/{len(chosen)}] {outcome:<8} {mutant.module}:{mutant.line} {mutant.change}", flush=True)
    killed = sum(o["outcome"] in ("killed", "timeout") for o in outcomes)
    score = killed / len(outcomes) if outcomes else float("nan")
    survivors = [o for o in outcomes if o["outcome"] == "survived"]
    if args.json:
        print(json.dumps({"mutants": len(outcomes), "killed": killed, "score": score, "seed": args.seed,
                          "per_module": args.per_module, "outcomes": outcomes}))
    else:
        print(f"\nmutation score {score:.1%}: {killed} of {len(outcomes)} mutants killed; survivors:")
        for o in survivors:
            print(f"  {o['module']}:{o['line']} {o['change']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
