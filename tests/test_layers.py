"""The package's layers: the core never needs the app, imports go one way, modules stay small."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "morph"
APP_MODULES = ("plotly", "ipywidgets", "anywidget", "voila", "jupyterlab", "jupyter_server", "traitlets")

# Runs the three core commands in a fresh interpreter, then lists which app
# modules ended up imported; stdout of the commands is discarded.
_SCRIPT = """
import contextlib, io, json, sys
from morph.cli import main
codes = []
with contextlib.redirect_stdout(io.StringIO()):
    codes.append(main(["fit", "data/morph_runs.csv", "--law", "chinchilla", "--json"]))
    codes.append(main(["latency", "--shape", "12x3072", "--json"]))
    codes.append(main(["frontier", "--params-min", "1e8", "--params-max", "2e8", "--tokens", "1e10",
                       "--latency-budget", "5", "--json"]))
app = [m for m in sys.modules if m.split(".")[0] in %r or m.startswith("morph.app")]
print(json.dumps({"codes": codes, "app": sorted(app)}))
""" % (APP_MODULES,)


@pytest.mark.slow
def test_core_commands_run_without_importing_the_app():
    result = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0, 0, 0]
    assert report["app"] == []


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(absolute module, imported names)`` of every ``from ... import`` in ``path``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    package = package[:-1] if path.name == "__init__.py" else package
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def test_no_module_is_over_800_lines():
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 800}
    assert long == {}


def test_no_private_name_crosses_modules():
    crossing = [
        f"{p.relative_to(ROOT)}: {module}.{name}"
        for p in _modules()
        for module, names in _imports(p)
        if module.startswith("morph")
        for name in names
        if name.startswith("_") and name != "__version__"
    ]
    assert crossing == []


def test_only_the_app_imports_the_app():
    # The core (and the CLI, which starts the dashboard as a separate process) never imports morph.app.
    outside = [
        f"{p.relative_to(ROOT)}: {module}"
        for p in _modules()
        if "app" not in p.relative_to(PACKAGE).parts[:1]
        for module, _ in _imports(p)
        if module == "morph.app" or module.startswith("morph.app.") or module.split(".")[0] in APP_MODULES
    ]
    assert outside == []


_WITHOUT_TQDM = """
import sys
sys.modules["tqdm"] = None  # as in a core install, which has no tqdm
from morph import fit
fit(law="chinchilla", bootstrap=3, progress=True)
"""


@pytest.mark.slow
def test_bootstrap_progress_counts_on_stderr_without_tqdm():
    result = subprocess.run([sys.executable, "-c", _WITHOUT_TQDM], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "3/3 fits" in result.stderr
