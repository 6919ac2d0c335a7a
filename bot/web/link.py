"""``GET+POST /link/{token}``: the one-time sign-in page that links a chat.

The bot sends a chat this page (``core.services.linking``: 256 random bits, 10 minutes,
once, bound to that chat). The customer signs in with User ID and password (or, for a
``register`` link, chooses them after proving their number by SMS code); the chat is
linked and gets its confirmation (sent at once when this process sends chat messages,
else by ``selfcare worker``). For a LINE chat, when LINE is configured, the page instead
hands over to LINE's account-link dialog (our nonce, LINE's link token) and LINE's
``accountLink`` event completes the link in the chat.

The page is Thai or English (the chat's language; ``?lang=th|en`` switches), phone-sized,
and loads nothing but itself: a strict CSP with a per-response style nonce, no scripts.
Forms carry a CSRF token bound to an ``HttpOnly; SameSite=Strict`` cookie and to the link,
and a cross-site ``Sec-Fetch-Site``/``Origin`` is refused. Sign-in failures count towards
the same lockout as the chat's (per User ID and per chat). Every failure is a short page
in the customer's language with a 4xx status, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from aiohttp import web
from linebot.v3.messaging import AsyncMessagingApi

from bot.app import CONTAINER
from bot.delivery import Outbound
from bot.web.link_pages import (
    LINK_PAGES,
    LinkPages,
    cookie_name,
    cross_site,
    csrf_for,
    form_page,
    gone_page,
    language,
    message_page,
    respond,
)
from bot.web.webhooks import WEBHOOKS
from core.domain import Channel, LinkToken
from core.flows.context import clear_dialogue
from core.flows.link_common import linked_replies
from core.flows.link_sms import password_problem_text, user_id_rule
from core.i18n import Translator, translator
from core.services.linking import (
    PURPOSE_REGISTER,
    LinkingService,
    PageLinkProblem,
    Registered,
    SignedIn,
    SignInPaused,
)

__all__ = ["LINE_ACCOUNT_LINK_URL", "LINKING", "setup"]

log = logging.getLogger(__name__)

LINE_ACCOUNT_LINK_URL = "https://access.line.me/dialog/bot/accountLink"
MAX_FORM_BYTES = 16 * 1024
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
_FORM_TYPE = "application/x-www-form-urlencoded"
LINKING = web.AppKey("linking", LinkingService)


# --- LINE and delivery (the webhooks feature's platform clients) --------------------------------


def _outbound(app: web.Application) -> Outbound | None:
    hooks = app.get(WEBHOOKS)
    if hooks is None:
        return None
    try:
        return hooks.running.outbound
    except RuntimeError:  # not started
        return None


def _line_api(app: web.Application, link: LinkToken) -> AsyncMessagingApi | None:
    """LINE's API client when this link is a LINE chat's and LINE is configured."""
    if link.channel != Channel.LINE.value:
        return None
    outbound = _outbound(app)
    return None if outbound is None or outbound.line is None else outbound.line.api


def _deliver_soon(app: web.Application, outbox_ids: list[int]) -> None:
    """Send the chat's confirmation now if this process sends chat messages (else the
    worker's relay sends it)."""
    hooks = app.get(WEBHOOKS)
    outbound = _outbound(app)
    if hooks is not None and outbound is not None and outbox_ids:
        hooks.tasks.spawn(outbound.delivery.deliver(outbox_ids))


# --- handlers ----------------------------------------------------------------------------------


async def link_page(request: web.Request) -> web.Response:
    """The form, or why the link cannot be used."""
    container = request.app[CONTAINER]
    token = request.match_info["token"]
    if not _TOKEN.fullmatch(token):
        return respond(request, gone_page(request, "unknown", language(request)))
    async with container.db.uow() as uow:
        found = await request.app[LINKING].open_page_link(uow, token, container.clock.now())
    if isinstance(found, PageLinkProblem):
        return respond(request, gone_page(request, found.reason, language(request)))
    lang = language(request, chat=found.language)
    cookie = request.cookies.get(cookie_name(request)) or secrets.token_urlsafe(32)
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", cookie):
        cookie = secrets.token_urlsafe(32)
    to_line = _line_api(request.app, found) is not None
    page = form_page(request, found, lang, csrf_for(container, cookie, token), to_line=to_line)
    return respond(request, page, cookie=cookie)


@dataclass(frozen=True, slots=True)
class _Submitted:
    lang: str
    csrf: str
    user_id: str
    password: str
    password2: str


async def _read_form(request: web.Request) -> _Submitted | None:
    """The posted fields, or None when the body is not our form."""
    if request.content_type != _FORM_TYPE:
        return None
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        return None
    try:
        body = await request.content.read(MAX_FORM_BYTES + 1)
    except (ValueError, ConnectionError):
        return None
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None

    def one(name: str) -> str:
        values = fields.get(name, [""])
        return values[0] if len(values) == 1 else ""

    return _Submitted(
        lang=one("lang"),
        csrf=one("csrf"),
        user_id=one("user_id").strip(),
        password=one("password"),
        password2=one("password2"),
    )


async def link_submit(request: web.Request) -> web.Response:
    """Sign in (or register) and link the chat; or say, in a 4xx page, why not."""
    container = request.app[CONTAINER]
    service = request.app[LINKING]
    token = request.match_info["token"]
    if not _TOKEN.fullmatch(token):
        return respond(request, gone_page(request, "unknown", language(request)))
    submitted = await _read_form(request)
    lang = language(request, submitted.lang if submitted else None)
    t = translator(lang)
    if submitted is None:
        return respond(
            request,
            message_page(
                request,
                400,
                lang,
                t._("This page could not read what was sent"),
                t._("Please open the link from the chat again and fill in the form."),
            ),
        )
    cookie = request.cookies.get(cookie_name(request), "")
    expected = csrf_for(container, cookie, token) if cookie else ""
    if (
        cross_site(request)
        or not cookie
        or not hmac.compare_digest(expected.encode(), submitted.csrf.encode("utf-8", "replace"))
    ):
        return respond(
            request,
            message_page(
                request,
                403,
                lang,
                t._("This page has expired"),
                t._("Please open the link from the chat again (or reload this page)."),
            ),
        )
    now = container.clock.now()
    async with container.db.uow() as uow:
        found = await service.open_page_link(uow, token, now)
        if isinstance(found, PageLinkProblem):
            return respond(request, gone_page(request, found.reason, lang))
        lang = language(request, submitted.lang, found.language)
        t = translator(lang)
        csrf = submitted.csrf

        to_line = _line_api(request.app, found) is not None

        def again(status: int, error: str) -> web.Response:
            page = form_page(
                request,
                found,
                lang,
                csrf,
                to_line=to_line,
                status=status,
                error=error,
                user_id=submitted.user_id,
            )
            return respond(request, page)

        if not submitted.user_id or not submitted.password:
            return again(400, t._("Please fill in your User ID and password."))
        # The chat's lock first, as its own messages take it: then no deadlock.
        conversation = await uow.conversations.load_for_update(
            found.channel, found.chat_id, container.settings.default_language
        )
        if found.purpose == PURPOSE_REGISTER:
            if found.customer_id is None:  # a register link always names its customer
                return respond(request, gone_page(request, "unknown", lang))
            if submitted.password != submitted.password2:
                return again(400, t._("The two passwords are not the same."))
            registered = await service.register(
                uow,
                customer_id=found.customer_id,
                user_id=submitted.user_id,
                password=submitted.password,
                now=now,
            )
            if not isinstance(registered, Registered):
                return again(400, _registration_problem(t, registered.reason))
            user = registered.user
            method = "register"
        else:
            result = await service.sign_in(
                uow,
                channel=found.channel,
                chat_id=found.chat_id,
                user_id=submitted.user_id,
                password=submitted.password,
                now=now,
            )
            if not isinstance(result, SignedIn):
                await uow.commit()  # the failure counts
                if isinstance(result, SignInPaused):
                    paused = t._(
                        "For your safety, sign-in with a password is paused. "
                        "Please try again after {time}."
                    ).format(time=t.datetime(result.until))
                    return again(429, paused)
                return again(400, t._("The User ID or password is not correct."))
            user = result.user
            method = "web"
        if not await service.use_page_link(uow, found, now):
            return respond(request, gone_page(request, "used", lang))
        line_api = _line_api(request.app, found)
        if line_api is not None:
            nonce = await service.start_account_link(uow, link=found, user=user, now=now)
            await uow.commit()
        else:
            customer = await service.link(
                uow,
                channel=found.channel,
                chat_id=found.chat_id,
                eservice_user_id=user.id,
                customer_id=user.customer_id,
                notice_version=found.notice_version,
                method=method,
                now=now,
            )
            lead = None
            if method == "register":
                lead = (
                    translator(conversation.language)
                    ._("Your e-service User ID {user_id} is ready, and this chat is linked to it.")
                    .format(user_id=user.user_id)
                )
            replies = linked_replies(translator(conversation.language), customer, lead)
            ids = await uow.outbox.enqueue_replies(found.channel, found.chat_id, replies, now)
            if conversation.flow == "link":
                clear_dialogue(conversation)
            await uow.conversations.save(conversation)
            await uow.commit()
    if line_api is not None:
        return await _hand_over_to_line(request, line_api, found, nonce, lang)
    _deliver_soon(request.app, ids)
    log.info("chat linked on the page", extra={"channel": found.channel, "method": method})
    return respond(
        request,
        message_page(
            request,
            200,
            lang,
            t._("Done! Your chat is linked."),
            t._("Go back to the chat: I've sent you a confirmation there."),
            t._("You can close this page now."),
            ok=True,
        ),
    )


def _registration_problem(t: Translator, reason: str) -> str:
    if reason == "user_id_taken":
        return t._("That User ID is taken. Please choose another.")
    if reason == "user_id_format":
        return t._("That User ID can't be used.") + " " + user_id_rule(t)
    if reason == "has_user":
        return t._("You already have an e-service User ID. Please sign in with it from the chat.")
    return password_problem_text(t, reason)


async def _hand_over_to_line(
    request: web.Request, api: AsyncMessagingApi, found: LinkToken, nonce: str, lang: str
) -> web.Response:
    t = translator(lang)
    try:
        issued = await api.issue_link_token(found.chat_id)
        link_token = str(issued.link_token)
    except Exception as exc:  # the SDK's ApiException, a network error: LINE is unreachable
        log.warning("LINE link token not issued", extra={"exc_type": type(exc).__name__})
        return respond(
            request,
            message_page(
                request,
                502,
                lang,
                t._("We couldn't reach LINE"),
                t._("Please go back to the chat and try again with /link."),
            ),
        )
    location = f"{LINE_ACCOUNT_LINK_URL}?{urlencode({'linkToken': link_token, 'nonce': nonce})}"
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


# --- wiring ------------------------------------------------------------------------------------


async def _templates(app: web.Application) -> AsyncIterator[None]:
    app[LINK_PAGES] = await asyncio.to_thread(LinkPages.load)
    yield


def setup(app: web.Application) -> None:
    """Add ``GET`` and ``POST /link/{token}`` to ``app``."""
    app[LINKING] = app[CONTAINER].linking_service()
    app.cleanup_ctx.append(_templates)
    app.router.add_get("/link/{token}", link_page)
    app.router.add_post("/link/{token}", link_submit)
