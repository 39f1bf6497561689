"""The docs state what the package holds: its modules, the tour's length, the calibrations' numbers."""

from __future__ import annotations

import math
import re
from pathlib import Path

from morph.app.tour import TOUR
from morph.latency import load_calibration

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
LATENCY = (ROOT / "docs" / "latency.md").read_text(encoding="utf-8")
_NUMBER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def _modules() -> list[Path]:
    return sorted(p for p in (ROOT / "morph").rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


def test_the_readme_layout_names_every_module_of_the_package():
    layout = README[README.index("## Project layout"):]
    missing = [str(p.relative_to(ROOT)) for p in _modules()
               if p.parent.name != "cli" and not re.search(rf"\b{re.escape(p.name)}\b", layout)]
    assert missing == []


def test_the_architecture_notes_name_every_module_of_the_package():
    dotted = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in _modules()]
    missing = [name for name in dotted if not name.startswith("morph.cli.") and f"`{name}`" not in ARCHITECTURE
               and not re.search(rf"`{re.escape(name)}`|{re.escape(name)}[`,]", ARCHITECTURE)]
    assert missing == []


def test_the_readme_counts_the_tour_as_the_tour_is():
    assert f"a guided tour, {_NUMBER_WORDS[len(TOUR)]} preset links" in README


def test_the_latency_docs_state_the_shipped_calibrations_numbers():
    eager = load_calibration("a100-40gb-hf-generate")
    # The eager band's factor, x/(1 + e), as printed: x/1.446.
    assert f"x/{1 + eager.relative_error:.3f}" in LATENCY
    graphs = load_calibration("a100-80gb-cuda-graphs").uncertainty["prior"]
    assert f"to the most the 7B timing allows, {graphs['high'] * 1e6:.0f} us" in " ".join(LATENCY.split())
    cpu = load_calibration("cpu-torch-eager").uncertainty
    assert f"{len(cpu['samples'])} bootstrap refits" in LATENCY
    assert math.isclose(eager.relative_error, (3.61 / 2.54) ** 1.05 - 1, rel_tol=1e-12)
