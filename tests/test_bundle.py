"""Which FigureWidget a kernel uses: plotly's own, or one that imports the script ``morph serve`` serves."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import plotly  # noqa: F401  (the app extra, which the test install includes)

from plotly.graph_objs import FigureWidget  # noqa: E402

from morph.app.bundle import (  # noqa: E402
    PARTIAL_DIR,
    URL_ENV,
    bundle_file,
    bundle_path,
    figure_widget_class,
    plotly_bundle_file,
    plotlyjs_version,
    uses_partial_bundle,
)

ROOT = Path(__file__).resolve().parents[1]


def _bundled_trace_types(script: str) -> set[str]:
    # Each trace module plotly.js registers says so in its source.
    return set(re.findall(r'moduleType:"trace",name:"([a-z0-9]+)"', script))


def test_the_path_names_the_scripts_plotlyjs_version_and_hash_under_the_base_url():
    manifest = json.loads((PARTIAL_DIR / "manifest.json").read_text())
    expected = f"plotly-widget-partial-{manifest['plotly.js']}-{manifest['sha256'][:12]}.js"
    assert bundle_path("/") == f"/morph/static/{expected}"
    assert bundle_path("/course/dash/") == f"/course/dash/morph/static/{expected}"


def test_pages_load_the_partial_build_of_the_installed_plotlys_plotlyjs():
    # `make plotly-bundle` pins plotly.js at plotly.py's plotly.js version: a plotly
    # upgrade that moves plotly.js fails here until the build is redone.
    manifest = json.loads((PARTIAL_DIR / "manifest.json").read_text())
    assert manifest["plotly.js"] == manifest["packages"]["plotly.js"] == plotlyjs_version()
    assert uses_partial_bundle() and bundle_file() == PARTIAL_DIR / "widget.js"
    script = bundle_file().read_bytes()
    assert hashlib.sha256(script).hexdigest() == manifest["sha256"]
    # plotly.py's own script holds the same plotly.js, whole.
    stamp = re.compile(r'\b[A-Za-z0-9_$]+\.version="' + re.escape(manifest["plotly.js"]) + '"}')
    assert stamp.search(plotly_bundle_file().read_text(encoding="utf-8"))
    assert stamp.search(script.decode())
    assert len(script) < 0.3 * plotly_bundle_file().stat().st_size
    assert manifest["traces"] == sorted(_bundled_trace_types(script.decode()))


def test_every_package_in_the_build_has_its_licence_shipped():
    manifest = json.loads((PARTIAL_DIR / "manifest.json").read_text())
    licence = (PARTIAL_DIR / "LICENSE").read_text()
    headings = re.findall(r"^== (\S+) (\S+) \(", licence, flags=re.MULTILINE)
    assert dict(headings) == manifest["packages"]
    assert {"plotly.js", "@plotly/d3", "lodash-es"} <= set(manifest["packages"])
    sections = re.split(r"^== .*$", licence, flags=re.MULTILINE)[1:]
    assert len(sections) == len(headings) + 1  # and plotly.py's widget
    for section in sections:  # each holds a licence's own words, not only its name
        assert re.search(r"Permission|Redistribution", section), section[:200]


def test_the_build_falls_back_to_plotlys_script_when_the_plotlyjs_versions_differ(monkeypatch):
    import morph.app.bundle as bundle

    monkeypatch.setattr(bundle, "plotlyjs_version", lambda: "0.0.0")
    assert not bundle.uses_partial_bundle()
    assert bundle.bundle_file() == plotly_bundle_file()
    from importlib.metadata import version

    assert bundle.bundle_path("/") == f"/morph/static/plotly-widget-{version('plotly')}.js"
    monkeypatch.undo()
    assert bundle.uses_partial_bundle()
    monkeypatch.setenv(bundle.BUNDLE_ENV, "full")  # chosen by whoever serves figures the build cannot draw
    assert bundle.bundle_file() == plotly_bundle_file()


def _trace_types_in_source(text: str) -> set[str]:
    import plotly.graph_objects as go
    from plotly.basedatatypes import BaseTraceType

    classes = {name.lower() for name in dir(go)
               if isinstance(getattr(go, name), type) and issubclass(getattr(go, name), BaseTraceType)}
    used = {name.lower() for name in re.findall(r"\bgo\.([A-Z][A-Za-z0-9]*)\(", text)} & classes
    used |= set(re.findall(r"\.add_([a-z0-9]+)\(", text)) & classes
    used |= set(re.findall(r"""["']?type["']?\s*[=:]\s*["']([a-z0-9]+)["']""", text)) & classes
    used |= {name.lower() for name in re.findall(r"\bpx\.([a-z_]+)\(", text)} & {"scatter", "bar", "line"}
    return used


def test_the_build_holds_every_trace_type_morph_or_its_notebooks_draw_and_no_other():
    # Every page evaluates every trace module in the build: one that nothing draws costs
    # each page's browser CPU for nothing.
    bundled = _bundled_trace_types(bundle_file().read_text(encoding="utf-8"))
    assert "scatter" in bundled and not {"scattergl", "parcoords", "sunburst", "scatter3d", "pie"} & bundled
    assert _trace_types_in_source('go.Scattergl(x=[1]); fig.add_sunburst(); dict(type="parcoords")') == {
        "scattergl", "sunburst", "parcoords"}  # what the scan would catch
    sources = [*sorted((ROOT / "morph").rglob("*.py")), *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    used: dict[str, set[str]] = {}
    for path in sources:
        for kind in _trace_types_in_source(path.read_text(encoding="utf-8")):
            used.setdefault(kind, set()).add(str(path.relative_to(ROOT)))
    assert "scatter" in used
    outside = {kind: sorted(paths) for kind, paths in used.items() if kind not in bundled}
    assert outside == {}, f"trace types missing from the build (tools/plotly-widget/plotly-partial.js): {outside}"
    assert bundled == set(used), f"trace types built but never drawn: {sorted(bundled - set(used))}"


def test_the_dashboards_figures_hold_only_bundled_trace_types():
    from morph.app.dashboard import Dashboard

    bundled = _bundled_trace_types(bundle_file().read_text(encoding="utf-8"))
    dashboard = Dashboard.from_query("")
    drawn = {trace.type for trace in dashboard.figure.data}
    assert "scatter" in drawn and drawn <= bundled


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
    # The script is 1.6-5 MB; read into a kernel it is 3-10 MB of string per viewer.
    code = (
        "import builtins, io, sys\n"
        "opened = []\n"
        "real_open = io.open\n"
        "def spy(file, *a, **k):\n"
        "    opened.append(str(file)); return real_open(file, *a, **k)\n"
        "builtins.open = io.open = spy\n"
        "from morph.app.dashboard import Dashboard\n"
        "d = Dashboard.from_query('')\n"
        "print(any(name.endswith(('widgetbundle.js', 'plotly_widget/widget.js')) for name in opened))\n"
    )
    env = {**__import__("os").environ, URL_ENV: bundle_path("/")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
