"""The one-time sign-in page's rendering: its templates, CSRF and origin checks, and the
CSRF cookie (the layout, the language and the strict headers are bot/web/templates.py's).

``bot/web/link.py`` has the routes; these helpers have no state but the app's.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot.app import CONTAINER
from bot.bootstrap import Container
from bot.web.templates import (
    TEMPLATES,
    RenderedPage,
    environment,
    layout_context,
    page_language,
    render,
)
from core.domain import LinkToken
from core.i18n import translator
from core.services.linking import PURPOSE_REGISTER, token_hash
from core.services.passwords import MIN_PASSWORD_LENGTH

__all__ = [
    "LINK_PAGES",
    "LinkPages",
    "cookie_name",
    "cross_site",
    "csrf_for",
    "form_page",
    "gone_page",
    "language",
    "message_page",
    "respond",
]

_CSRF_FIELD = "link-csrf"


class LinkPages:
    """The compiled page templates."""

    def __init__(self, templates: jinja2.Environment) -> None:
        self.form = templates.get_template("link_form.html")
        self.message = templates.get_template("link_message.html")

    @classmethod
    def load(cls, folder: Path = TEMPLATES) -> LinkPages:
        """Read and compile the templates (file I/O: call it in a thread)."""
        return cls(environment(folder))


LINK_PAGES = web.AppKey("link_pages", LinkPages)

_TO_LINE = "'self' https://access.line.me"  # form-action: the redirect to LINE's dialog too


# --- language, CSRF, origin --------------------------------------------------------------------


language = page_language  # bot/web/link.py's routes know it by this name


def _secure(request: web.Request) -> bool:
    settings = request.app[CONTAINER].settings
    forwarded = settings.behind_proxy and request.headers.get("X-Forwarded-Proto") == "https"
    return request.secure or forwarded


def cookie_name(request: web.Request) -> str:
    # __Host-: only ever set over https, for this host, for every path (browsers check it).
    return "__Host-link_csrf" if _secure(request) else "link_csrf"


def csrf_for(container: Container, cookie: str, token: str) -> str:
    return container.cipher.blind_index(_CSRF_FIELD, f"{cookie}:{token_hash(token).hex()}").hex()


def cross_site(request: web.Request) -> bool:
    """A form posted from another site (the CSRF token is checked besides)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":  # no-referrer pages post "Origin: null"
        return False
    public = urlsplit(request.app[CONTAINER].settings.public_url)
    own = {f"{request.scheme}://{request.host}", f"{public.scheme}://{public.netloc}"}
    return origin not in own


# --- rendering ---------------------------------------------------------------------------------


def _context(request: web.Request, lang: str) -> dict[str, object]:
    operator = request.app[CONTAINER].settings.operator_name
    # A form's page does not offer other languages: following the link would lose the form.
    return layout_context(lang, operator) | {"switch_language": request.method == "GET"}


def message_page(
    request: web.Request,
    status: int,
    lang: str,
    heading: str,
    *paragraphs: str,
    ok: bool = False,
) -> RenderedPage:
    return render(
        request.app[LINK_PAGES].message,
        _context(request, lang) | {"heading": heading, "paragraphs": paragraphs, "ok": ok},
        status=status,
    )


def gone_page(request: web.Request, reason: str, lang: str) -> RenderedPage:
    t = translator(lang)
    return message_page(
        request,
        404 if reason == "unknown" else 410,
        lang,
        t._("This sign-in link has expired or was already used"),
        t._("For your safety, a sign-in link works once, for 10 minutes only."),
        t._("Ask for a new one in the chat: type /link."),
    )


def form_page(
    request: web.Request,
    link: LinkToken,
    lang: str,
    csrf: str,
    *,
    to_line: bool = False,
    status: int = 200,
    error: str | None = None,
    user_id: str = "",
) -> RenderedPage:
    """The sign-in (or registration) form; ``to_line``: success hands over to LINE."""
    return render(
        request.app[LINK_PAGES].form,
        _context(request, lang)
        | {
            "csrf": csrf,
            "error": error,
            "user_id": user_id,
            "register": link.purpose == PURPOSE_REGISTER,
            "notice_version": link.notice_version,
            "min_password": MIN_PASSWORD_LENGTH,
            "line": to_line,
        },
        status=status,
        form_action=_TO_LINE if to_line else "'self'",
    )


def respond(request: web.Request, page: RenderedPage, *, cookie: str | None = None) -> web.Response:
    """The page with its headers, and the CSRF cookie when one is given."""
    response = page.response()
    if cookie is not None:
        response.set_cookie(
            cookie_name(request),
            cookie,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=_secure(request),
        )
    return response
