"""Every notebook runs top to bottom without errors, shows what it claims, and is committed clean.

One runner, nbclient, executes each notebook in a fresh kernel from the
``notebooks`` folder, once per test session. A notebook gets
:data:`NOTEBOOK_TIMEOUT_S` seconds in all: each cell may use whatever is left
of that budget. Any error output, or anything written to stderr, fails it.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
NOTEBOOK_TIMEOUT_S = 180

pytestmark = pytest.mark.notebooks

_executed: dict[str, nbformat.NotebookNode] = {}
TEACHING = [p for p in NOTEBOOKS if p.name[:2].isdigit()]  # the lessons (not the dashboard)
_SOLUTION = re.compile(r"<summary><b>Solution</b></summary>\s*```python\n(.*?)```", re.DOTALL)


def solutions(notebook: nbformat.NotebookNode) -> list[str]:
    """The code of each exercise's hidden solution (markdown cells), in order."""
    return [code for cell in notebook.cells if cell.cell_type == "markdown" for code in _SOLUTION.findall(cell.source)]


def execute(path: Path) -> nbformat.NotebookNode:
    """The notebook after running every cell (run once per session, then reused)."""
    if path.name not in _executed:
        from nbclient import NotebookClient

        notebook = nbformat.read(path, as_version=4)
        # The hidden solutions run too, after the notebook, as a student would paste them.
        for code in solutions(notebook):
            notebook.cells.append(nbformat.v4.new_code_cell(code, metadata={"tags": ["solution"]}))
        deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
            # The notebook's whole budget, not a fresh one per cell.
            timeout_func=lambda _cell: max(1, int(deadline - time.monotonic())),
            allow_errors=False,
        )
        client.execute()
        _executed[path.name] = notebook
    return _executed[path.name]


def outputs(notebook: nbformat.NotebookNode, tag: str | None = None) -> list[dict]:
    cells = [c for c in notebook.cells if c.cell_type == "code" and (tag is None or tag in c.metadata.get("tags", []))]
    return [output for cell in cells for output in cell.get("outputs", [])]


def text_of(output: dict) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return "\n".join(str(data.get(kind, "")) for kind in ("text/plain", "text/html"))


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {
        "01-scaling-laws.ipynb", "02-latency.ipynb", "03-fit-your-runs.ipynb", "04-reproduce-the-paper.ipynb",
        "05-speculative-decoding.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_cleanly(path):
    notebook = execute(path)
    for output in outputs(notebook):
        assert output["output_type"] != "error", f"{path.name}: {output.get('ename')}: {output.get('evalue')}"
        if output["output_type"] == "stream":
            assert output["name"] == "stdout", f"{path.name} wrote to stderr: {output['text'][:500]}"
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells)


def test_reproduce_notebook_matches_every_number():
    from morph.reproduce import load_published

    notebook = execute(NOTEBOOK_DIR / "04-reproduce-the-paper.ipynb")
    comparison = "\n".join(text_of(o) for o in outputs(notebook, "comparison"))
    counts = re.search(r"(\d+) of (\d+) numbers match", comparison)
    assert counts is not None, comparison[:500]
    assert int(counts.group(1)) == int(counts.group(2)) == len(load_published()) >= 30
    table = [o for o in outputs(notebook, "comparison") if "text/plain" in o.get("data", {})]
    assert table and "False" not in table[0]["data"]["text/plain"]
    everything = "\n".join(text_of(o) for o in outputs(notebook))
    for expected in ("0.998237", "1B_v8", "12x3072", "0.695", "4.096", "-0.4", "4 decimals"):
        assert expected in everything, expected


def test_introduction_shows_the_published_speedup_and_widgets():
    notebook = execute(NOTEBOOK_DIR / "01-scaling-laws.ipynb")
    everything = "\n".join(text_of(o) for o in outputs(notebook))
    assert "1.84x faster" in everything
    widget_views = [o for o in outputs(notebook) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widget_views) >= 3  # the compute, contour and law explorers
    # The classic figures: isoFLOP curves from the runs, and L(N, D) contours with the frontier (a widget).
    plots = [o["data"]["application/vnd.plotly.v1+json"] for o in outputs(notebook)
             if "application/vnd.plotly.v1+json" in o.get("data", {})]
    isoflop = [p for p in plots if "IsoFLOP curves" in str(p["layout"].get("title", {}).get("text", ""))]
    assert len(isoflop) == 1 and sum(t.get("mode") == "markers" and t.get("showlegend") is not False
                                     for t in isoflop[0]["data"]) == 8
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "figures.isoflop_curves(" in code and "widgets.ContourExplorer(" in code
    assert "12x3520" in everything and "248x832" in everything  # the unconstrained grid's picks, shown


def test_fitting_notebook_agrees_with_the_command_line():
    notebook = execute(NOTEBOOK_DIR / "03-fit-your-runs.ipynb")
    everything = "\n".join(text_of(o) for o in outputs(notebook))
    assert "command line and Python give the same parameters: True" in everything
    assert "is missing the column(s) loss" in everything


def test_latency_notebook_reports_the_leave_one_out_error():
    notebook = execute(NOTEBOOK_DIR / "02-latency.ipynb")
    everything = "\n".join(text_of(o) for o in outputs(notebook))
    found = re.search(r"leave-one-out error: mean ([\d.]+)%, worst ([\d.]+)% \(the shipped calibration records "
                      r"mean ([\d.]+)%, worst ([\d.]+)%\)", everything)
    assert found is not None
    assert found.group(1) == found.group(3) and found.group(2) == found.group(4)


def test_speculative_notebook_shows_exactness_the_simulation_and_the_deep_draft_losing():
    notebook = execute(NOTEBOOK_DIR / "05-speculative-decoding.ipynb")
    everything = "\n".join(text_of(o) for o in outputs(notebook))
    assert "emitted equals target: True" in everything
    deviation = re.search(r"largest deviation ([\d.]+) standard errors", everything)
    assert deviation is not None and float(deviation.group(1)) < 5
    # The command's table: the wide draft speeds the target up, the deep one of equal size does not pay.
    # Each row ends with the speed-up, the best k and its speed-up, then the memory the pair needs and whether it fits.
    wide = re.search(r"^4x2048 .* ([\d.]+)x\s+\d+\s+([\d.]+)x\s+[\d.]+\s+yes$", everything, re.MULTILINE)
    deep = re.search(r"^24x1024 .* ([\d.]+)x\s+0\s+1\.00x\s+[\d.]+\s+yes$", everything, re.MULTILINE)
    assert wide is not None and float(wide.group(2)) > 1.2
    assert deep is not None and float(deep.group(1)) < 1
    widget_views = [o for o in outputs(notebook) if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widget_views) >= 1  # the explorer


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path):
    """No outputs, execution counts or widget state: what nbstripout leaves."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert "widgets" not in notebook.metadata
    for cell in notebook.cells:
        assert not {"ExecuteTime", "execution", "collapsed", "scrolled"} & set(cell.metadata)
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: {cell.source[:60]!r}"


@pytest.mark.parametrize("path", TEACHING, ids=[p.name for p in TEACHING])
def test_each_lesson_asks_questions_and_sets_exercises_with_solutions(path):
    notebook = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    # Predict, then reveal: the answer sits in a closed <details> right after the question.
    assert len(re.findall(r"\*\*Predict\.\*\*.*?<details><summary><b>Answer</b>", text, re.DOTALL)) >= 1
    assert len(re.findall(r"\*\*Exercise \d+\.\*\*", text)) >= 2 and len(solutions(notebook)) >= 2
    # Tasks a reader of the shared link can answer: widgets from morph.app.exercises, before the code exercises.
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "from morph.app.exercises import" in code and "## Exercises in code (JupyterLab)" in text
    # Under Voila there are no menus: no instruction that only makes sense in JupyterLab.
    assert "Run All" not in text and "Run >" not in text


@pytest.mark.parametrize("path", TEACHING, ids=[p.name for p in TEACHING])
def test_the_solutions_run_and_show_a_result(path):
    notebook = execute(path)
    ran = [c for c in notebook.cells if "solution" in c.metadata.get("tags", [])]
    assert len(ran) >= 2
    for cell in ran:
        assert cell.outputs and all(o["output_type"] != "error" for o in cell.outputs), cell.source[:80]


def test_results_are_shown_for_people_not_as_reprs():
    intro = execute(NOTEBOOK_DIR / "01-scaling-laws.ipynb")
    # What a reader sees: a widget's text/plain (its Python repr) is never shown where the widget draws.
    everything = "\n".join(text_of(o) for o in outputs(intro)
                            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {}))
    assert "ChinchillaLaw(" not in everything and "e+20" not in everything
    assert "1e20 FLOPs" in everything and "irreducible loss" in everything
    # The lifetime table's savings read as percentages.
    assert re.search(r"\d+\.\d%", everything)
    fitting = execute(NOTEBOOK_DIR / "03-fit-your-runs.ipynb")
    html_outputs = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in outputs(fitting))
    assert 'class="morph-report"' in html_outputs and "monospace" in html_outputs
