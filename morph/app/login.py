"""The page a token-protected dashboard shows to a visitor without the token.

Jupyter's own login page talks about ``jupyter server list``, which means nothing to
someone who was sent a dashboard link. This page says what is needed (the access
token that came with the link), lists the settings the link will open with, and
sends the visitor on to exactly that link once the token is accepted: Jupyter's login
keeps the requested address, query string included, in ``next``.

``morph serve --token`` selects it with ``--Voila.identity_provider_class`` (see
:func:`morph.cli.serve.voila_command`).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlsplit

from jupyter_server.auth.identity import PasswordIdentityProvider
from voila.voila_identity_provider import VoilaLoginHandler

from .settings import settings_from_query

__all__ = ["MorphIdentityProvider", "MorphLoginHandler", "login_page"]

_STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;"
    "color:#222;line-height:1.45}input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}"
    "button{margin-top:.75rem;padding:.45rem 1.2rem;font-size:1rem}code{background:#f3f3f3;padding:0 .2rem}"
    ".error{color:#8a1c1c;background:#fdecea;border-left:4px solid #d93025;padding:.4rem .7rem}"
)


def login_page(next_url: str, action: str, xsrf_form_html: str = "", rejected: bool = False) -> str:
    """The HTML of the token page for a visitor bound for ``next_url``.

    Parameters
    ----------
    next_url : str
        Where the visitor was going (path and query): hostile input, escaped throughout.
    action : str
        The login URL the form posts to.
    xsrf_form_html : str
        The server's hidden XSRF field (trusted markup from the server).
    rejected : bool
        The last token typed was wrong.
    """
    settings, _ = settings_from_query(urlsplit(next_url).query)
    # Only what the dashboard itself would read from the link, in its canonical form.
    query = settings.to_query()
    keeps = (f"<p>The link opens the dashboard with these settings, kept through the login: "
             f"<code>{html.escape(query.replace('&', ', '))}</code>.</p>") if query else ""
    error = '<p class="error" role="alert">That token was not accepted; check it and try again.</p>' if rejected else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Morph dashboard: access token needed</title><style>{_STYLE}</style></head><body>"
        "<h1>Morph dashboard</h1>"
        "<p>This dashboard is shared with an <b>access token</b>. Paste the token that came with the link "
        "(whoever shared it has it; it is the part after <code>token=</code> in the address they gave).</p>"
        f"{keeps}{error}"
        f'<form method="post" action="{html.escape(action, quote=True)}">{xsrf_form_html}'
        '<label for="morph-token">Access token</label>'
        '<input type="password" id="morph-token" name="password" autocomplete="off" autofocus required>'
        f'<input type="hidden" name="next" value="{html.escape(next_url, quote=True)}">'
        "<button type='submit'>Open the dashboard</button></form></body></html>"
    )


class MorphLoginHandler(VoilaLoginHandler):
    """Jupyter's login handler, drawing :func:`login_page` instead of Jupyter's generic form."""

    def _render(self, message: Any = None) -> None:
        next_url = self.get_argument("next", default=self.base_url)
        action = self.base_url.rstrip("/") + "/login"
        self.write(login_page(next_url, action, self.xsrf_form_html(), rejected=bool(message)))


class MorphIdentityProvider(PasswordIdentityProvider):
    """Voila's token check, with :class:`MorphLoginHandler` as its login page."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Voila passes its own login handler class as an argument; this page replaces it.
        self.login_handler_class = MorphLoginHandler
