"""The two ways to install Morph list the same dependencies, and the README's commands exist."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$")


def _split(requirement: str) -> tuple[str, str]:
    name, spec = _REQUIREMENT.match(requirement).groups()  # type: ignore[union-attr]
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _conda_dependencies() -> dict[str, str]:
    deps: dict[str, str] = {}
    section, in_pip = "", False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.split("#")[0].rstrip()
        if re.match(r"^\w", stripped):
            section = stripped.split(":")[0]
        if section != "dependencies":
            continue
        if re.match(r"^\s{2}- pip:\s*$", stripped):
            in_pip = True
            continue
        match = re.match(r"^\s{2}- (.+)$", stripped)
        if match and not in_pip:
            name, spec = _split(match.group(1))
            deps[name] = spec
    return deps


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_is_the_core_plus_the_app_extra():
    project = _project()
    pip = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["app"])
    conda = _conda_dependencies()
    assert conda.pop("python") == project["requires-python"]
    assert conda.pop("pip") == ""
    assert conda == pip


def test_core_dependencies_are_numpy_scipy_and_pandas():
    # A training script that imports the laws and fitters should not pull in a web stack.
    assert sorted(_split(r)[0] for r in _project()["dependencies"]) == ["numpy", "pandas", "scipy"]


def test_the_test_and_dashboard_installs_include_the_app():
    assert "morph[app]" in _project()["optional-dependencies"]["test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"-e '\.\[app\]'", makefile)
    assert re.search(r"-e '\.\[app,test,measure\]'", makefile)


def test_environment_yml_ends_with_an_editable_install():
    text = (ROOT / "environment.yml").read_text().rstrip()
    assert "conda-forge" in text
    assert text.splitlines()[-1].strip() == "- -e ."


def test_readme_gives_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\s*(make \w+)\s*$", setup, flags=re.M)
    assert commands == ["make dashboard", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^dashboard:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
