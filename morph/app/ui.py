"""Widget plumbing shared by the dashboard and the notebooks.

Two promises hold for every interactive control Morph shows:

- a bad value or an impossible request produces a readable message in the
  page (never a traceback), and the page keeps responding;
- nothing the user entered is lost: a failing callback leaves every control
  as the user set it, and the last good view stays on screen.

:class:`MessageBar` is the place in the page where such messages appear, and
:func:`guarded` wraps a callback so that its errors land there. Messages are
HTML-escaped: text from a file or a URL is never interpreted as markup.
"""

from __future__ import annotations

import functools
import html
import logging
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, TypeVar

import ipywidgets as widgets

from ..errors import MorphError

__all__ = ["MessageBar", "guarded", "quiet"]

logger = logging.getLogger("morph.app.ui")
F = TypeVar("F", bound=Callable[..., Any])

_STYLES = {
    "error": "color:#8a1c1c;background:#fdecea;border-left:4px solid #d93025",
    "warning": "color:#6b4e00;background:#fff8e1;border-left:4px solid #f9a825",
    "info": "color:#0b3d6b;background:#e8f1fb;border-left:4px solid #1a73e8",
}


class MessageBar(widgets.HTML):
    """An HTML widget showing one message (error, warning or information), or nothing.

    The outer element carries the CSS class ``morph-<level>`` (for example
    ``morph-error``) so tests and stylesheets can find it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(value="", **kwargs)
        self.add_class("morph-messages")
        self.level: str | None = None
        self.text: str = ""

    def show(self, text: str, level: str = "error") -> None:
        """Show ``text`` (escaped) at ``level`` in ``{"error", "warning", "info"}``."""
        if level not in _STYLES:
            raise ValueError(f"unknown message level {level!r}")
        self.level, self.text = level, str(text)
        self.value = (
            f'<div class="morph-{level}" role="{"alert" if level == "error" else "status"}" '
            f'style="{_STYLES[level]};padding:6px 10px;margin:4px 0">{html.escape(self.text)}</div>'
        )

    def show_many(self, texts: list[str], level: str = "warning") -> None:
        """Show several sentences at one level, one per line (nothing when the list is empty)."""
        if not texts:
            self.clear()
            return
        self.level, self.text = level, "\n".join(texts)
        items = "".join(f"<li>{html.escape(t)}</li>" for t in texts)
        self.value = (
            f'<div class="morph-{level}" role="status" style="{_STYLES[level]};padding:6px 10px;margin:4px 0">'
            f'<ul style="margin:0;padding-left:18px">{items}</ul></div>'
        )

    def clear(self) -> None:
        """Remove the message."""
        self.level, self.text, self.value = None, "", ""


def guarded(messages: MessageBar, clear_on_success: bool = True) -> Callable[[F], F]:
    """Decorator: run a widget callback, turning its failures into a message.

    A :class:`~morph.errors.MorphError` is the user's to fix and is shown as
    it is. Any other exception is a fault in Morph: the page says so in one
    sentence and the traceback goes to the kernel's log, not the page. The
    callback returns ``None`` after a failure; controls are not touched.
    """

    def decorate(callback: F) -> F:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                result = callback(*args, **kwargs)
            except MorphError as exc:
                messages.show(str(exc), "error")
                return None
            except Exception as exc:  # a bug: keep the page alive, log the details
                logger.error("callback %s failed:\n%s", callback.__name__, traceback.format_exc())
                messages.show(
                    f"Something went wrong ({type(exc).__name__}: {exc}). Your settings are unchanged; "
                    "try another value.",
                    "error",
                )
                return None
            if clear_on_success and messages.level == "error":
                messages.clear()
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


@contextmanager
def quiet(controls: Iterable[widgets.Widget], callback: Callable[..., Any]) -> Iterator[None]:
    """Move ``controls`` without calling ``callback``: it stops observing their values until the block ends.

    For a change that moves a control as part of itself (a new budget metric resets
    the budget slider; a link's values are put back in range), not one of its own.
    """
    controls = list(controls)
    for control in controls:
        control.unobserve(callback, names="value")
    try:
        yield
    finally:
        for control in controls:
            control.observe(callback, names="value")
