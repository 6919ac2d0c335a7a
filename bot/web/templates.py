"""What every HTML page of the product shares: one way to compile its templates, the
context of the common layout, the language a page speaks, and the rendered page with its
strict headers.

The sign-in page (bot/web/link.py), the payment page (bot/web/pay.py) and the staff pages
(bot/web/admin_page.py) load nothing but themselves: their one inline ``<style>`` runs by
a nonce drawn afresh for each response, no script runs at all, and no page may be framed,
cached or indexed.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
from aiohttp import web

from core.i18n import SUPPORTED_LANGUAGES, normalise_language, translator

__all__ = [
    "TEMPLATES",
    "RenderedPage",
    "environment",
    "layout_context",
    "page_language",
    "render",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: Each language named in itself, for the links that switch to it.
_LANGUAGE_NAMES = {"th": "ภาษาไทย", "en": "English"}


@cache
def environment(folder: Path = TEMPLATES) -> jinja2.Environment:
    """Every template of ``folder`` read and compiled, once per process and folder, for
    all the pages (file I/O: call it in a thread).

    Nothing is read again afterwards: ``auto_reload`` is off and every template is in the
    cache, so rendering a page (and the base templates it ``extends``, looked up at render
    time) never touches a file on the event loop."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for name in env.list_templates(extensions=("html",)):
        env.get_template(name)
    return env


def layout_context(lang: str, operator: str) -> dict[str, object]:
    """What the common layout (``page_base.html``, ``admin_base.html``) needs: the
    language, the operator's name, the other languages to switch to, and ``_``."""
    return {
        "lang": lang,
        "operator": operator,
        "languages": [(code, _LANGUAGE_NAMES[code]) for code in SUPPORTED_LANGUAGES],
        "_": translator(lang).gettext,
    }


def page_language(request: web.Request, chosen: str | None = None, chat: str | None = None) -> str:
    """``?lang=`` (or a form's ``lang``, ``chosen``), else the language of the chat the
    page was sent to, else the browser's first supported one, else Thai."""
    for asked in (request.query.get("lang", ""), chosen or ""):
        if asked in SUPPORTED_LANGUAGES:
            return asked
    if chat is not None:
        return normalise_language(chat)
    for part in request.headers.get("Accept-Language", "")[:200].split(","):
        code = part.split(";", 1)[0].strip().lower().split("-", 1)[0]
        if code in SUPPORTED_LANGUAGES:
            return code
    return normalise_language(None)


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A page rendered with its own style nonce, and where its forms may go: ``'self'``,
    ``'none'``, or ``'self'`` and LINE's account-link dialog (a form may be redirected to
    it); ``images``: the ``img-src`` sources (none unless given)."""

    status: int
    html: str
    nonce: str
    form_action: str = "'self'"
    images: str | None = None

    @property
    def content_security_policy(self) -> str:
        images = f"img-src {self.images}; " if self.images else ""
        return (
            f"default-src 'none'; style-src 'nonce-{self.nonce}'; {images}"
            f"form-action {self.form_action}; base-uri 'none'; frame-ancestors 'none'"
        )

    def response(self) -> web.Response:
        """The page as a response with the headers every page sends."""
        return web.Response(
            status=self.status,
            text=self.html,
            content_type="text/html",
            charset="utf-8",
            headers={
                "Content-Security-Policy": self.content_security_policy,
                "Cache-Control": "no-store",
                # Tokens travel in these pages' URLs: no other site may see them.
                "Referrer-Policy": "no-referrer",
                "X-Robots-Tag": "noindex, nofollow",
                "Cross-Origin-Opener-Policy": "same-origin",
                "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
            },
        )


def render(
    template: jinja2.Template,
    context: Mapping[str, object],
    *,
    status: int = 200,
    form_action: str = "'self'",
    images: str | None = None,
) -> RenderedPage:
    """``template`` rendered with ``context`` and a fresh ``nonce`` for its ``<style>``."""
    nonce = secrets.token_urlsafe(18)
    html = template.render({**context, "nonce": nonce})
    return RenderedPage(status, html, nonce, form_action, images)
