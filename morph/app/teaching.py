"""What the notebooks show a class: reports in a fixed-width font, numbers as people say them, parameter cards.

The notebooks render under Voila for readers who never see the code, so every
result is shown formatted: a fit report keeps its columns aligned, ``1e20`` reads
``1e20 FLOPs``, a fraction reads as a percentage, a law reads as a table of its
parameters rather than its Python repr.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from ..laws import ScalingLaw
from .readouts import spoken

__all__ = ["LessonStyle", "Monospace", "Reveal", "law_card", "lesson_style", "monospace", "percent", "flops_words", "reveal"]

_MONO = "font-family:ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12px;line-height:1.35"


@dataclass(frozen=True)
class Monospace:
    """Plain text that a notebook shows in a fixed-width font (HTML) or as itself (plain text)."""

    text: str

    def _repr_html_(self) -> str:
        return f'<pre class="morph-report" style="{_MONO};white-space:pre;overflow-x:auto">{html.escape(self.text)}</pre>'

    def __repr__(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def monospace(text: str) -> Monospace:
    """``text`` (a fit report, a table in plain text) in a fixed-width font, its columns aligned, escaped."""
    return Monospace(str(text))


@dataclass(frozen=True)
class Reveal:
    """A result kept closed under a summary line until the reader opens it (an answer shown after its question)."""

    summary: str
    body_html: str
    body_text: str

    def _repr_html_(self) -> str:
        return (f'<details class="morph-answer"><summary><b>{html.escape(self.summary)}</b></summary>'
                f"{self.body_html}</details>")

    def __repr__(self) -> str:
        return f"{self.summary}\n{self.body_text}"


def reveal(summary: str, content: "pd.DataFrame | str | list[str]", note: str = "") -> Reveal:
    """``content`` (a table, a text, or lines shown as a list) closed under ``summary``; every text escaped.

    ``note``, a sentence, opens the hidden part above the content.

    Under Voila and in JupyterLab a cell's output shows as soon as the notebook runs; an answer that
    follows its question goes in here, so it stays out of sight until the reader has answered.
    """
    head_html, head_text = (f"<p>{html.escape(note)}</p>", note + "\n") if note else ("", "")
    if isinstance(content, pd.DataFrame):
        return Reveal(summary, head_html + content.to_html(escape=True), head_text + content.to_string())
    if isinstance(content, str):
        return Reveal(summary, head_html + f'<pre style="{_MONO};white-space:pre-wrap">{html.escape(content)}</pre>',
                      head_text + content)
    lines = [str(line) for line in content]
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return Reveal(summary, head_html + f"<ul>{items}</ul>", head_text + "\n".join(f"- {line}" for line in lines))


def percent(fraction: float, digits: int = 1) -> str:
    """``0.673641`` as ``67.4%``."""
    return f"{100 * fraction:.{digits}f}%"


def flops_words(flops: float) -> str:
    """``1e20`` as ``1e20 FLOPs``, ``2.9e20`` as ``2.9e20 FLOPs``."""
    return spoken(flops, "FLOPs")


def law_card(law: ScalingLaw, name: str | None = None) -> pd.DataFrame:
    """A law's parameters, one row each, with what each one means (instead of its repr)."""
    descriptions = dict(law.descriptions)
    rows = [{"parameter": key, "value": f"{value:.4g}", "meaning": descriptions.get(key, "")}
            for key, value in law.params.items()]
    frame = pd.DataFrame(rows).set_index("parameter")
    frame.columns.name = name or law.family
    return frame

_LESSON_CSS = (
    ".jp-RenderedMarkdown pre, .jp-RenderedHTMLCommon pre {margin: 0.4em 0 1em; padding: 6px 10px; "
    "background: #f5f5f5; border-radius: 3px; overflow-x: auto;}"
)
"""Code blocks of a lesson's text set apart from the next paragraph (Voila's page gives them no margin)."""


@dataclass(frozen=True)
class LessonStyle:
    """The lessons' page style: shown once, at the top, it draws nothing but a rule for code blocks."""

    def _repr_html_(self) -> str:
        return f"<style>{_LESSON_CSS}</style>"

    def __repr__(self) -> str:
        return ""


def lesson_style() -> LessonStyle:
    """The style a lesson's first cell shows: code blocks in the text with a margin and a background."""
    return LessonStyle()
