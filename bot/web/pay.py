"""``GET /pay/{token}``: the payment page of one bill, phone-sized, in Thai or English.

The page shows what is left to pay, the due date, the references and the PromptPay QR
code (an inline ``data:`` image: the page loads nothing else), or says that the bill is
paid. A token that is malformed, unknown or expired gets a friendly 404 page in the
language of the chat that asked for the link (if the link was ours), else the browser's.
``?lang=th|en`` switches the language.

Strict CSP: nothing but the page itself, its own inline style (by nonce) and ``data:``
images. Templates are compiled once at start-up, off the event loop, and translated
through the same gettext catalogs as the chat (``make i18n`` extracts them).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
from aiohttp import web

from bot.app import CONTAINER
from core.i18n import SUPPORTED_LANGUAGES, normalise_language, translator
from core.promptpay import render_png
from core.services.billing import PayLinkGone, PayPage, open_pay_link

__all__ = ["PAY_PAGES", "PayPages", "setup"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
_QR_SCALE = 8
_LANGUAGE_NAMES = {"th": "ภาษาไทย", "en": "English"}


class PayPages:
    """The compiled page templates."""

    def __init__(self, environment: jinja2.Environment) -> None:
        # The base too: `extends` looks it up at render time, from the cache once loaded.
        environment.get_template("pay_base.html")
        self.page = environment.get_template("pay.html")
        self.gone = environment.get_template("pay_gone.html")

    @classmethod
    def load(cls, folder: Path = TEMPLATES) -> PayPages:
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


PAY_PAGES = web.AppKey("pay_pages", PayPages)


@dataclass(frozen=True, slots=True)
class _Rendered:
    status: int
    html: str
    nonce: str


def _language(request: web.Request, chat_language: str | None) -> str:
    asked = request.query.get("lang", "")
    if asked in SUPPORTED_LANGUAGES:
        return asked
    if chat_language is not None:
        return normalise_language(chat_language)
    # Accept-Language: the first supported tag, else Thai.
    for part in request.headers.get("Accept-Language", "")[:200].split(","):
        tag = part.split(";", 1)[0].strip().lower()
        code = tag.split("-", 1)[0]
        if code in SUPPORTED_LANGUAGES:
            return code
    return normalise_language(None)


def _common(lang: str, operator: str, nonce: str) -> dict[str, object]:
    t = translator(lang)
    return {
        "lang": lang,
        "operator": operator,
        "nonce": nonce,
        "languages": [(code, _LANGUAGE_NAMES[code]) for code in SUPPORTED_LANGUAGES],
        "_": t.gettext,
        "ngettext": t.ngettext,
        "money": t.money,
        "date": t.date,
        "datetime": t.datetime,
    }


async def _render(request: web.Request, token: str) -> _Rendered:
    container = request.app[CONTAINER]
    pages = request.app[PAY_PAGES]
    settings = container.payment_settings()
    operator = container.settings.operator_name
    nonce = secrets.token_urlsafe(18)
    async with container.db.uow() as uow:
        found = await open_pay_link(uow, settings, token, now=container.clock.now())
    if isinstance(found, PayLinkGone):
        lang = _language(request, found.language)
        html = pages.gone.render(_common(lang, operator, nonce))
        return _Rendered(404, html, nonce)
    assert isinstance(found, PayPage)
    lang = _language(request, found.language)
    qr, size = "", 0
    if found.payload is not None:
        png = await asyncio.to_thread(render_png, found.payload, scale=_QR_SCALE)
        qr = base64.b64encode(png).decode("ascii")
        size = _png_width(png)  # shown at its natural size (CSS shrinks it on small screens)
    html = pages.page.render(
        _common(lang, operator, nonce)
        | {
            "bill": found.bill,
            "status": found.status.value,
            "account_no": found.account_no,
            "expires_at": found.expires_at,
            "qr": qr,
            "qr_size": size,
        }
    )
    return _Rendered(200, html, nonce)


def _png_width(png: bytes) -> int:
    # IHDR is the first chunk: width is the 4 bytes at offset 16.
    return int.from_bytes(png[16:20], "big")


def _csp(nonce: str) -> str:
    return (
        "default-src 'none'; "
        f"style-src 'nonce-{nonce}'; "
        "img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


async def pay_page(request: web.Request) -> web.Response:
    rendered = await _render(request, request.match_info["token"])
    return web.Response(
        status=rendered.status,
        text=rendered.html,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": _csp(rendered.nonce),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex, nofollow",
        },
    )


async def _templates(app: web.Application) -> AsyncIterator[None]:
    app[PAY_PAGES] = await asyncio.to_thread(PayPages.load)
    yield


def setup(app: web.Application) -> None:
    """Add ``GET /pay/{token}`` (and HEAD) to ``app``."""
    app.cleanup_ctx.append(_templates)
    app.router.add_get("/pay/{token}", pay_page)
