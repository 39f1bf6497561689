"""The two ways to install Morph list the same dependencies, and the README's commands exist."""

from __future__ import annotations

import io
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


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and " " not in version, f"not an exact pin: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_pins_every_dependency_within_its_bounds():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    assert "morph" not in pins  # the project installs from the working tree
    required = list(project["dependencies"])
    for extra in ("app", "test", "measure"):
        required += project["optional-dependencies"][extra]
    for text in required:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        if name == "morph":  # an extra naming another extra of the project itself
            continue
        assert name in pins, f"{name} is not in requirements.lock; run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(requirement))


def test_make_installs_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK := requirements\.lock$", makefile, re.M)
    for stamp in (".app-installed", ".test-installed"):
        rule = re.search(rf"^\$\(VENV\)/{re.escape(stamp)}: (.*)\n\t(.*)$", makefile, re.M)
        assert rule is not None and "$(LOCK)" in rule.group(1) and "-c $(LOCK)" in rule.group(2), stamp
    assert re.search(r"^lock:", makefile, re.M) and "tools/lock.py" in makefile


def test_lock_tool_reports_what_changed(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import lock

    path = tmp_path / "requirements.lock"
    path.write_text("numpy==2.0.0\nscipy==1.11.0\n")
    frozen = "numpy==2.4.6\ntorch==2.13.0+cpu\nmorph==0.1.0\n-e git+https://example.invalid/x#egg=y\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(frozen))
    assert lock.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "~ numpy 2.0.0 -> 2.4.6" in out and "- scipy 1.11.0" in out and "+ torch 2.13.0" in out
    # The project itself is left out, and the local label dropped (==2.13.0 matches 2.13.0+cpu).
    assert path.read_text().splitlines()[-2:] == ["numpy==2.4.6", "torch==2.13.0"]


def test_ci_runs_the_suite_again_without_avx512():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make test\n") < ci.index("make test-no-avx512")
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^test-no-avx512:.*\n\t(.*)$", makefile, re.M)
    assert rule is not None and 'NPY_DISABLE_CPU_FEATURES="$(NO_AVX512)"' in rule.group(1)
    assert '-m "not browser and not notebooks"' in rule.group(1)
    for feature in ("AVX512F", "AVX512_SKX", "AVX512_ICL", "X86_V4"):
        assert feature in makefile
