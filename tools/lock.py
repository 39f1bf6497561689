"""Write requirements.lock from ``pip freeze`` output and print what changed.

Usage (what ``make lock`` runs)::

    pip freeze --exclude-editable | python tools/lock.py requirements.lock

The lock pins the exact version of every package the suite passed with, the
project itself excluded. Local version labels (``torch==2.13.0+cpu``) are
dropped: ``==2.13.0`` still matches the CPU build where one is installed, and
is a version every index serves. ``make dashboard`` and ``make test`` install
with the lock as pip constraints (``-c requirements.lock``), so extras that
are not asked for are not installed, and an extra added later is pinned too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADER = """\
# Exact versions the test suite passed with (Python {python}).
# `make dashboard` and `make test` install with these as pip constraints (-c);
# `make lock` refreshes them from a fresh install of pyproject.toml and prints what changed.
"""
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def parse(text: str) -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line."""
    pins = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            pins[name] = match.group(2).split("+")[0]
    return pins


def render(pins: dict[str, str]) -> str:
    """The lock file's text: the header, then one ``name==version`` per line, sorted."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return HEADER.format(python=python) + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


def changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """One line per added, removed or re-versioned package."""
    lines = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if before is None:
            lines.append(f"  + {name} {after}")
        elif after is None:
            lines.append(f"  - {name} {before}")
        else:
            lines.append(f"  ~ {name} {before} -> {after}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: pip freeze --exclude-editable | python tools/lock.py LOCKFILE", file=sys.stderr)
        return 2
    path = Path(argv[0])
    old = parse(path.read_text()) if path.exists() else {}
    new = parse(sys.stdin.read())
    new.pop("morph", None)  # the project itself is installed from the working tree
    if not new:
        print("lock: no pinned packages on stdin; nothing written", file=sys.stderr)
        return 2
    path.write_text(render(new))
    diff = changes(old, new)
    print(f"{path}: {len(new)} packages, {len(diff) or 'no'} change{'s' if len(diff) != 1 else ''}")
    print("\n".join(diff))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
