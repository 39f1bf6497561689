"""Voila's page templates compiled once per server: reused only where the compiled code would be the same."""

from __future__ import annotations

import nbformat
import pytest
from jinja2 import DictLoader, Environment
from nbconvert.exporters.templateexporter import TemplateExporter
from nbconvert import HTMLExporter

from conftest import run_async
from morph.app.templates_once import SharedTemplateCache, install


def notebook() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Morph"), nbformat.v4.new_code_cell("1 + 1")])


@pytest.fixture
def cache(monkeypatch) -> SharedTemplateCache:
    # The patch is undone after the test: other tests' exporters keep nbconvert's own environments.
    monkeypatch.setattr(TemplateExporter, "_create_environment", TemplateExporter._create_environment)
    fresh = SharedTemplateCache()
    install(fresh)
    return fresh


def test_a_second_exporter_compiles_no_template_and_renders_the_same_page(cache):
    plain, _ = HTMLExporter().from_notebook_node(notebook())
    assert cache.misses > 0 and cache.hits == 0  # the first exporter compiled its templates (lab's are several)
    compiled = cache.misses
    again, _ = HTMLExporter().from_notebook_node(notebook())
    assert cache.misses == compiled and cache.hits == compiled  # each template found, none compiled again
    # The same page, but for the random ids nbconvert gives its elements (uuid4 in the template).
    assert len(again) == len(plain) and again.count("<div") == plain.count("<div")


def test_install_is_idempotent(cache):
    patched = TemplateExporter._create_environment
    install(SharedTemplateCache())
    assert TemplateExporter._create_environment is patched
    assert HTMLExporter().environment.bytecode_cache is cache


def test_a_changed_template_or_other_options_compile_anew():
    cache = SharedTemplateCache()

    def render(source: str, **options) -> str:
        environment = Environment(loader=DictLoader({"page": source}), bytecode_cache=cache, **options)
        template = environment.get_template("page")
        if environment.is_async:
            # On a thread of its own: a browser test in this process may own its event loop.
            return run_async(template.render_async(x=2))
        return template.render(x=2)

    assert render("a{{ x }}") == "a2"
    assert render("b{{ x }}") == "b2"  # the same name with another source: not the old page
    assert render("a{{ x }}", enable_async=True) == "a2"  # async code differs: compiled for it
    assert render("a[[ x ]]", variable_start_string="[[", variable_end_string="]]") == "a2"
    assert (cache.hits, cache.misses) == (0, 4)
    assert render("a{{ x }}") == "a2" and cache.hits == 1


def test_the_cache_starts_again_when_full():
    cache = SharedTemplateCache(max_templates=2)
    for k in range(5):
        environment = Environment(loader=DictLoader({"page": f"{k}{{{{ x }}}}"}), bytecode_cache=cache)
        assert environment.get_template("page").render(x="!") == f"{k}!"
        assert len(cache.code) <= 2
