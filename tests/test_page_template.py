"""Morph's Voila template: lab's, without its links to a CDN, and found where Voila looks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("voila")

from jupyter_core.paths import jupyter_path  # noqa: E402
from voila.paths import collect_template_paths  # noqa: E402

from morph.app.page_template import DATA_DIR, TEMPLATE, install  # noqa: E402

OURS = DATA_DIR / "voila" / "templates" / TEMPLATE


def _block(text: str, name: str) -> str:
    body = re.search(r"\{%-?\s*block " + name + r"\s*-?%\}(.*?)\{%-?\s*endblock " + name + r"\s*-?%\}", text, re.S)
    assert body, f"no block {name}"
    return body.group(1)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _lab_index() -> Path:
    for root in jupyter_path():
        path = Path(root) / "voila" / "templates" / "lab" / "index.html.j2"
        if path.is_file():
            return path
    raise AssertionError("Voila's lab template is not installed")


def test_the_server_command_names_this_template():
    from morph.cli.serve import PAGE_TEMPLATE, voila_command

    assert PAGE_TEMPLATE == TEMPLATE
    assert f"--template={TEMPLATE}" in voila_command("x.ipynb", port=1)


def test_install_puts_morphs_data_folder_first_on_jupyter_path_once():
    environ = {"JUPYTER_PATH": os.pathsep.join(["/a", "/b"])}
    install(environ)
    install(environ)
    assert environ["JUPYTER_PATH"].split(os.pathsep) == [str(DATA_DIR), "/a", "/b"]
    empty: dict[str, str] = {}
    install(empty)
    assert empty["JUPYTER_PATH"] == str(DATA_DIR)


def test_voila_finds_the_template_above_lab_once_installed(monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", "")
    install(os.environ)
    paths = collect_template_paths(["voila", "nbconvert"], TEMPLATE, prune=True)
    assert paths[0] == str(OURS)
    lab = [p for p in paths if p.endswith(os.path.join("voila", "templates", "lab"))]
    assert lab and paths.index(lab[0]) > 0  # lab's files serve whatever Morph's does not override
    assert json.loads((OURS / "conf.json").read_text()) == {"base_template": "lab"}


def test_the_pages_css_block_is_labs_without_the_cdn_links():
    # Read against the installed Voila: an upgrade that changes lab's block fails here until
    # Morph's copy follows it.
    lab = _lines(_block(_lab_index().read_text(), "notebook_css"))
    ours = _lines(_block((OURS / "index.html.j2").read_text(), "notebook_css"))
    cdn = [line for line in lab if "cdn.jsdelivr.net" in line]
    assert len(cdn) == 2 and all("fontawesome" in line for line in cdn)
    assert not [line for line in ours if "//" in line and "http" in line]
    expected = [line for line in lab if line not in cdn]
    assert expected[-1] == "{{ super() }}"  # lab's block ends with nbconvert's: Morph's skips lab's
    assert ours == expected[:-1] + ["{{ super.super() }}"]
