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
from collections.abc import AsyncIterator
from pathlib import Path

import jinja2
from aiohttp import web

from bot.app import CONTAINER
from bot.web.templates import (
    TEMPLATES,
    RenderedPage,
    environment,
    layout_context,
    page_language,
    render,
)
from core.i18n import translator
from core.promptpay import render_png
from core.services.billing import PayLinkGone, PayPage, open_pay_link

__all__ = ["PAY_PAGES", "PayPages", "setup"]

_QR_SCALE = 8


class PayPages:
    """The compiled page templates."""

    def __init__(self, templates: jinja2.Environment) -> None:
        self.page = templates.get_template("pay.html")
        self.gone = templates.get_template("pay_gone.html")

    @classmethod
    def load(cls, folder: Path = TEMPLATES) -> PayPages:
        """Read and compile the templates (file I/O: call it in a thread)."""
        return cls(environment(folder))


PAY_PAGES = web.AppKey("pay_pages", PayPages)


def _context(lang: str, operator: str) -> dict[str, object]:
    t = translator(lang)
    return layout_context(lang, operator) | {
        "switch_language": True,  # a page to read, with no form to lose
        "ngettext": t.ngettext,
        "money": t.money,
        "date": t.date,
        "datetime": t.datetime,
    }


def _page(template: jinja2.Template, context: dict[str, object], status: int = 200) -> RenderedPage:
    # No form; the only image is the QR code, inline as data:.
    return render(template, context, status=status, form_action="'none'", images="data:")


async def _render(request: web.Request, token: str) -> RenderedPage:
    container = request.app[CONTAINER]
    pages = request.app[PAY_PAGES]
    settings = container.payment_settings()
    operator = container.settings.operator_name
    async with container.db.uow() as uow:
        found = await open_pay_link(uow, settings, token, now=container.clock.now())
    if isinstance(found, PayLinkGone):
        lang = page_language(request, chat=found.language)
        return _page(pages.gone, _context(lang, operator), status=404)
    assert isinstance(found, PayPage)
    lang = page_language(request, chat=found.language)
    qr, size = "", 0
    if found.payload is not None:
        png = await asyncio.to_thread(render_png, found.payload, scale=_QR_SCALE)
        qr = base64.b64encode(png).decode("ascii")
        size = _png_width(png)  # shown at its natural size (CSS shrinks it on small screens)
    return _page(
        pages.page,
        _context(lang, operator)
        | {
            "bill": found.bill,
            "status": found.status.value,
            "account_no": found.account_no,
            "expires_at": found.expires_at,
            "qr": qr,
            "qr_size": size,
        },
    )


def _png_width(png: bytes) -> int:
    # IHDR is the first chunk: width is the 4 bytes at offset 16.
    return int.from_bytes(png[16:20], "big")


async def pay_page(request: web.Request) -> web.Response:
    page = await _render(request, request.match_info["token"])
    return page.response()


async def _templates(app: web.Application) -> AsyncIterator[None]:
    app[PAY_PAGES] = await asyncio.to_thread(PayPages.load)
    yield


def setup(app: web.Application) -> None:
    """Add ``GET /pay/{token}`` (and HEAD) to ``app``."""
    app.cleanup_ctx.append(_templates)
    app.router.add_get("/pay/{token}", pay_page)
