"""Which FigureWidget a kernel uses: plotly's own, or one that imports the script ``morph serve`` serves."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytest.importorskip("plotly")

from plotly.graph_objs import FigureWidget  # noqa: E402

from morph.app.bundle import URL_ENV, bundle_file, bundle_path, figure_widget_class  # noqa: E402


def test_the_path_names_plotlys_version_under_the_base_url():
    from importlib.metadata import version

    assert bundle_path("/") == f"/morph/static/plotly-widget-{version('plotly')}.js"
    assert bundle_path("/course/dash/").startswith("/course/dash/morph/static/plotly-widget-")


def test_without_the_server_figures_carry_plotlys_script_inside_the_loader(monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    cls = figure_widget_class()
    assert issubclass(cls, FigureWidget) and cls is not FigureWidget
    module = cls._esm
    assert "export default" in module and "URL.createObjectURL(new Blob([" in module
    # plotly's script, byte for byte, as a string literal: evaluated only when imported.
    literal = module[module.index("new Blob([") + len("new Blob(["):module.index('], {type: "text/javascript"})')]
    assert json.loads(literal) == bundle_file().read_text(encoding="utf-8")


@pytest.mark.parametrize("hostile", ["//evil.example/x.js", "https://evil.example/x.js", "/x.js\");alert(1);//",
                                     "relative/x.js", "/x.js\nimport 'y'"])
def test_a_path_that_is_not_a_plain_absolute_one_is_ignored(monkeypatch, hostile):
    monkeypatch.delenv(URL_ENV, raising=False)
    inline = figure_widget_class()
    monkeypatch.setenv(URL_ENV, hostile)
    assert figure_widget_class() is inline


def test_under_the_server_a_figure_imports_the_served_script(monkeypatch):
    path = bundle_path("/dash/")
    monkeypatch.setenv(URL_ENV, path)
    cls = figure_widget_class()
    assert issubclass(cls, FigureWidget) and cls is not FigureWidget
    figure = cls()
    try:
        module = figure._esm
        assert len(module) < 10_000  # a loader, not plotly's 5 MB script
        quoted = re.search(r"new URL\((\".*?\"), document\.baseURI\)", module).group(1)
        assert json.loads(quoted) == path
        assert "export default" in module
        figure.add_scatter(x=[1, 2], y=[3, 4])  # still plotly's figure in every other respect
        assert figure.data[0].y == (3, 4)
    finally:
        figure.close()


# The loader in a browser, with a stand-in for plotly's module that arrives when the test
# says so: edits sent before it arrives reach plotly in order, each with its own value
# (plotly reads the trait's current value, which a later edit has overwritten), then
# the view is drawn, then edits go straight through.
LOADER_RUN = """async (source) => {
  let release;
  window.__standIn = new Promise((resolve) => { release = resolve; });
  const state = {}, listeners = {}, applied = [];
  const model = {
    get: (name) => state[name], set() {}, save_changes() {}, send() {}, off() {},
    on: (event, callback) => { (listeners[event] ??= []).push(callback); },
  };
  const edit = (name, id) => {
    state[name] = {id};
    for (const callback of listeners[`change:${name}`] ?? []) callback();
  };
  const standIn = {
    initialize({model}) {
      for (const name of ["_py2js_update", "_py2js_restyle"]) {
        model.on(`change:${name}`, () => applied.push(`${name} ${model.get(name).id}`));
      }
    },
    render({el}) { applied.push(`render ${el}`); return () => {}; },
  };
  const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
  const definition = (await import(url)).default();
  definition.initialize({model, signal: new AbortController().signal});
  edit("_py2js_update", 1);
  edit("_py2js_restyle", 2);
  edit("_py2js_update", 3);
  const rendered = definition.render({el: "plot", signal: new AbortController().signal});
  applied.push("plotly arrives");
  release({default: () => standIn});
  await rendered;
  edit("_py2js_update", 4);
  return applied;
}"""


@pytest.mark.browser
def test_edits_sent_while_plotly_loads_reach_it_in_order(browser):
    from morph.app.bundle import _loader

    page = browser.new_page()
    try:
        applied = page.evaluate(LOADER_RUN, _loader("window.__standIn"))
    finally:
        page.close()
    assert applied == ["plotly arrives", "_py2js_update 1", "_py2js_restyle 2", "_py2js_update 3",
                       "render plot", "_py2js_update 4"]


def test_a_kernel_under_the_server_never_reads_plotlys_script(tmp_path):
    # The script is about 5 MB; read into a kernel it is about 10 MB of string per viewer.
    code = (
        "import builtins, io, sys\n"
        "opened = []\n"
        "real_open = io.open\n"
        "def spy(file, *a, **k):\n"
        "    opened.append(str(file)); return real_open(file, *a, **k)\n"
        "builtins.open = io.open = spy\n"
        "from morph.app.dashboard import Dashboard\n"
        "d = Dashboard.from_query('')\n"
        "print(any(name.endswith('widgetbundle.js') for name in opened))\n"
    )
    env = {**__import__("os").environ, URL_ENV: bundle_path("/")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
