"""The one-time sign-in page's rendering: templates (compiled once at start-up, off the
event loop), the language, CSRF and origin checks, and the strict headers of every page.

``bot/web/link.py`` has the routes; these helpers have no state but the app's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot.app import CONTAINER
from bot.bootstrap import Container
from core.domain import LinkToken
from core.i18n import SUPPORTED_LANGUAGES, normalise_language, translator
from core.services.linking import PURPOSE_REGISTER, token_hash
from core.services.passwords import MIN_PASSWORD_LENGTH

__all__ = [
    "LINK_PAGES",
    "LinkPages",
    "Page",
    "cookie_name",
    "cross_site",
    "csrf_for",
    "form_page",
    "gone_page",
    "language",
    "message_page",
    "respond",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
_LANGUAGE_NAMES = {"th": "ภาษาไทย", "en": "English"}
_CSRF_FIELD = "link-csrf"


class LinkPages:
    """The compiled page templates."""

    def __init__(self, environment: jinja2.Environment) -> None:
        environment.get_template("link_base.html")  # `extends` finds it in the cache
        self.form = environment.get_template("link_form.html")
        self.message = environment.get_template("link_message.html")

    @classmethod
    def load(cls, folder: Path = TEMPLATES) -> LinkPages:
        """Read and compile the templates (file I/O: call it in a thread)."""
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=True,
            auto_reload=False,  # compiled once: no file checks on the event loop later
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        return cls(environment)


LINK_PAGES = web.AppKey("link_pages", LinkPages)


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    html: str
    nonce: str
    to_line: bool = False  # the form may hand over to LINE (CSP form-action)


# --- language, CSRF, origin --------------------------------------------------------------------


def language(request: web.Request, chosen: str | None = None, chat: str | None = None) -> str:
    """``?lang=`` (or the form's ``lang``), else the chat's language, else the browser's."""
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


def _context(request: web.Request, lang: str, nonce: str) -> dict[str, object]:
    t = translator(lang)
    return {
        "lang": lang,
        "operator": request.app[CONTAINER].settings.operator_name,
        "nonce": nonce,
        "languages": [(code, _LANGUAGE_NAMES[code]) for code in SUPPORTED_LANGUAGES],
        "switch_language": request.method == "GET",
        "_": t.gettext,
    }


def message_page(
    request: web.Request,
    status: int,
    lang: str,
    heading: str,
    *paragraphs: str,
    ok: bool = False,
) -> Page:
    nonce = secrets.token_urlsafe(18)
    html = request.app[LINK_PAGES].message.render(
        _context(request, lang, nonce) | {"heading": heading, "paragraphs": paragraphs, "ok": ok}
    )
    return Page(status, html, nonce)


def gone_page(request: web.Request, reason: str, lang: str) -> Page:
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
) -> Page:
    """The sign-in (or registration) form; ``to_line``: success hands over to LINE."""
    nonce = secrets.token_urlsafe(18)
    html = request.app[LINK_PAGES].form.render(
        _context(request, lang, nonce)
        | {
            "csrf": csrf,
            "error": error,
            "user_id": user_id,
            "register": link.purpose == PURPOSE_REGISTER,
            "notice_version": link.notice_version,
            "min_password": MIN_PASSWORD_LENGTH,
            "line": to_line,
        }
    )
    return Page(status, html, nonce, to_line)


def _csp(page: Page) -> str:
    # A form may be redirected to LINE's dialog: form-action covers the redirect too.
    form_action = "'self' https://access.line.me" if page.to_line else "'self'"
    return (
        "default-src 'none'; "
        f"style-src 'nonce-{page.nonce}'; "
        f"form-action {form_action}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )


def respond(request: web.Request, page: Page, *, cookie: str | None = None) -> web.Response:
    response = web.Response(
        status=page.status,
        text=page.html,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": _csp(page),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the token is in the URL
            "X-Robots-Tag": "noindex, nofollow",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        },
    )
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
