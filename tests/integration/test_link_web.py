"""``GET+POST /link/{token}`` through the real app on loopback, both databases: the page,
its headers and CSRF, sign-in and registration, every refusal as a short page in the
customer's language, and LINE's account-link hand-over. The chat (Telegram, through a
stub Bot API that python-telegram-bot really calls) gets its confirmation."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from core.domain import Customer, EServiceUser, new_id
from core.services.linking import PURPOSE_REGISTER
from storage import tables as t
from storage.crypto import Argon2PasswordHasher
from tests.integration import factories as f
from tests.integration.channels_support import (
    FrozenClock,
    RunningApp,
    running_app,
    telegram_stub,
)
from tests.stubs import line as line_events
from tests.stubs import telegram as updates
from tests.stubs.line import LineStub
from tests.stubs.telegram import TelegramStub

PASSWORD = "ถั่วเขียว-correct-horse"
NAME = "นางสาวสมหญิง ใจดี"
CHAT = 5551234
LINE_USER = "U" + "0123456789abcdef" * 2
WRONG_TH = "User ID หรือรหัสผ่านไม่ถูกต้องค่ะ"


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub


@pytest.fixture
async def app(database_url: str, keyring_path: Path, tg: TelegramStub) -> AsyncIterator[RunningApp]:
    async with running_app(database_url, keyring_path, telegram=tg) as running:
        running.container.clock = FrozenClock(running.container.clock.now())  # type: ignore[assignment]
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies for 127.0.0.1 and does not follow redirects."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def add_user(
    app: RunningApp, *, with_user: bool = True
) -> tuple[Customer, EServiceUser | None]:
    owner = f.customer(name=NAME)
    user = None
    async with app.container.db.uow() as uow:
        await uow.customers.add(owner)
        if with_user:
            user = f.user(
                owner, user_id="somying", password_hash=await Argon2PasswordHasher().hash(PASSWORD)
            )
            await uow.users.add(user)
        await uow.commit()
    return owner, user


async def issue(
    app: RunningApp,
    *,
    channel: str = "telegram",
    chat_id: str = str(CHAT),
    language: str = "th",
    purpose: str = "signin",
    customer_id: str | None = None,
) -> str:
    """A page link as the chat would get it; returns its path."""
    service = app.container.linking_service()
    async with app.container.db.uow() as uow:
        url = await service.issue_page_link(
            uow,
            channel=channel,
            chat_id=chat_id,
            language=language,
            notice_version="2026-11-1",
            now=app.container.clock.now(),
            purpose=purpose,
            customer_id=customer_id,
        )
        await uow.commit()
    return urlsplit(url).path


@dataclass
class Page:
    status: int
    text: str
    headers: Any

    @property
    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert found is not None, "no form on the page"
        return found.group(1)

    @property
    def error(self) -> str | None:
        found = re.search(r'id="error"[^>]*>([^<]*)<', self.text)
        return None if found is None else html.unescape(found.group(1))


async def get(browser: aiohttp.ClientSession, app: RunningApp, path: str) -> Page:
    async with browser.get(app.url + path) as response:
        return Page(response.status, await response.text(), response.headers)


async def post(
    browser: aiohttp.ClientSession,
    app: RunningApp,
    path: str,
    fields: dict[str, str] | None = None,
    *,
    data: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> Page:
    async with browser.post(
        app.url + path,
        data=fields if data is None else data,
        headers=headers or {},
        allow_redirects=False,
    ) as response:
        return Page(response.status, await response.text(), response.headers)


async def sign_in(
    browser: aiohttp.ClientSession, app: RunningApp, path: str, user_id: str, password: str
) -> Page:
    form = await get(browser, app, path)
    return await post(
        browser, app, path, {"csrf": form.csrf, "user_id": user_id, "password": password}
    )


async def count(app: RunningApp, table: str) -> int:
    return await app.count(table)


# --- the page ----------------------------------------------------------------------------------


async def test_the_page_is_a_strict_phone_sized_form_in_the_chats_language(
    app: RunningApp, browser: aiohttp.ClientSession
) -> None:
    path = await issue(app)
    page = await get(browser, app, path)

    assert page.status == 200
    assert '<html lang="th">' in page.text and 'name="viewport"' in page.text
    assert "เข้าสู่ระบบเพื่อเชื่อมแชต" in page.text
    csp = page.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)  # type: ignore[union-attr]
    assert f'<style nonce="{nonce}">' in page.text
    for rule in (
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert rule in csp
    assert "script" not in page.text.lower()
    assert not re.search(r'(src|href|action)="(https?:)?//', page.text)  # nothing from elsewhere
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie

    english = await get(browser, app, path + "?lang=en")
    assert '<html lang="en">' in english.text and "Sign in to link your chat" in english.text


async def test_signing_in_links_the_chat_and_the_chat_gets_its_confirmation(
    app: RunningApp, browser: aiohttp.ClientSession, tg: TelegramStub
) -> None:
    owner, user = await add_user(app)
    path = await issue(app)

    done = await sign_in(browser, app, path, "Somying", PASSWORD)

    assert done.status == 200 and 'id="done"' in done.text
    async with app.container.db.uow() as uow:
        link = await uow.links.get("telegram", str(CHAT))
        consent = await uow.consent.history(owner.id)
    assert link is not None and user is not None and link.eservice_user_id == user.id
    assert [(c.channel, c.notice_version) for c in consent] == [("telegram", "2026-11-1")]
    await app.idle()
    sent = tg.sent(str(CHAT))
    assert any(NAME in call.text for call in sent), [c.text for c in sent]
    # the link is spent: a second visit says so
    again = await get(browser, app, path)
    assert again.status == 410 and "ถูกใช้ไปแล้ว" in again.text


async def test_the_whole_way_from_telegram_to_the_page_and_back(
    app: RunningApp, browser: aiohttp.ClientSession, tg: TelegramStub
) -> None:
    await add_user(app)
    for update in (
        updates.text(CHAT, "/link"),
        updates.callback(CHAT, "link:accept"),
        updates.callback(CHAT, "link:web"),
    ):
        assert (await app.telegram(update)).status == 200
        await app.idle()
    (url,) = [target for _, target in tg.sent(str(CHAT))[-1].buttons() if "/link/" in target]
    path = urlsplit(url).path

    assert (await sign_in(browser, app, path, "somying", PASSWORD)).status == 200

    await app.idle()
    assert NAME in tg.sent(str(CHAT))[-1].text


async def test_a_wrong_password_and_an_unknown_user_get_the_same_page(
    app: RunningApp, browser: aiohttp.ClientSession
) -> None:
    await add_user(app)
    path = await issue(app)
    wrong = await sign_in(browser, app, path, "somying", "not-the-password")
    unknown = await sign_in(browser, app, path, "nobody", "not-the-password")
    assert (wrong.status, wrong.error) == (unknown.status, unknown.error) == (400, WRONG_TH)
    assert "not-the-password" not in wrong.text  # the password is never sent back
    assert 'value="somying"' in wrong.text
    assert await count(app, "chat_links") == 0


async def test_five_failures_pause_sign_in_and_the_sixth_is_refused_with_429(
    app: RunningApp, browser: aiohttp.ClientSession
) -> None:
    await add_user(app)
    path = await issue(app)
    for _ in range(4):
        assert (await sign_in(browser, app, path, "somying", "wrong")).status == 400
    fifth = await sign_in(browser, app, path, "somying", "wrong")
    sixth = await sign_in(browser, app, path, "somying", PASSWORD)
    for page in (fifth, sixth):
        assert page.status == 429 and page.error is not None
        assert "25 พ.ย. 2569" in page.error or "2569" in page.error
    assert await count(app, "chat_links") == 0

    app.container.clock.advance(timedelta(minutes=9, seconds=59))  # type: ignore[attr-defined]
    assert (await sign_in(browser, app, path, "somying", PASSWORD)).status == 429


@pytest.mark.parametrize("problem", ["expired", "unknown", "malformed"])
async def test_a_link_that_cannot_be_used_gets_a_friendly_page(
    app: RunningApp, browser: aiohttp.ClientSession, problem: str
) -> None:
    path = await issue(app)
    if problem == "expired":
        app.container.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
        status = 410
    elif problem == "unknown":
        path = "/link/" + "A" * 43
        status = 404
    else:
        path = "/link/%3Cscript%3Ealert(1)%3C%2Fscript%3E"
        status = 404
    page = await get(browser, app, path)
    assert page.status == status and "/link" in page.text and "<script>" not in page.text
    refused = await post(browser, app, path, {"csrf": "x", "user_id": "a", "password": "b"})
    assert refused.status in (403, status)


async def test_a_token_is_bound_to_its_chat(
    app: RunningApp, browser: aiohttp.ClientSession
) -> None:
    await add_user(app)
    mine = await issue(app, chat_id="111")
    await issue(app, chat_id="222")
    assert (await sign_in(browser, app, mine, "somying", PASSWORD)).status == 200
    async with app.container.db.uow() as uow:
        assert await uow.links.get("telegram", "111") is not None
        assert await uow.links.get("telegram", "222") is None


# --- CSRF and bad input ------------------------------------------------------------------------


async def test_a_post_without_the_cookie_or_with_a_wrong_token_is_refused(
    app: RunningApp, browser: aiohttp.ClientSession
) -> None:
    await add_user(app)
    path = await issue(app)
    form = await get(browser, app, path)
    fields = {"csrf": form.csrf, "user_id": "somying", "password": PASSWORD}

    async with aiohttp.ClientSession() as stranger:  # no cookie
        async with stranger.post(app.url + path, data=fields) as response:
            assert response.status == 403 and "หน้านี้หมดอายุแล้ว" in await response.text()
    assert (await post(browser, app, path, {**fields, "csrf": "forged"})).status == 403
    other = await issue(app, chat_id="999")  # a token for another link is no good here
    assert (await post(browser, app, other, fields)).status == 403
    cross = await post(browser, app, path, fields, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403
    evil = await post(browser, app, path, fields, headers={"Origin": "https://evil.example"})
    assert evil.status == 403
    assert await count(app, "chat_links") == 0
    # the form still works afterwards
    assert (await post(browser, app, path, fields, headers={"Origin": "null"})).status == 200


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"user_id": "somying"}', "application/json"),
        (b"user_id=%FF%FE&password=x&csrf=y", "application/x-www-form-urlencoded"),
        (b"a=" + b"x" * 20_000, "application/x-www-form-urlencoded"),
        (b"\x00\x01\x02", "application/octet-stream"),
    ],
    ids=["json", "bad-utf8", "oversized", "binary"],
)
async def test_a_body_that_is_not_our_form_gets_a_clear_400(
    app: RunningApp, browser: aiohttp.ClientSession, body: bytes, content_type: str
) -> None:
    path = await issue(app)
    await get(browser, app, path)
    page = await post(browser, app, path, data=body, headers={"Content-Type": content_type})
    assert page.status == 400 and "หน้านี้อ่านข้อมูลที่ส่งมาไม่ได้ค่ะ" in page.text


@pytest.mark.parametrize(
    "user_id", ["'; DROP TABLE eservice_users;--", "สมหญิง 😀🙏", "x" * 5000, "", "   "]
)
async def test_odd_user_ids_get_a_friendly_answer_and_change_nothing(
    app: RunningApp, browser: aiohttp.ClientSession, user_id: str
) -> None:
    await add_user(app)
    path = await issue(app)
    page = await sign_in(browser, app, path, user_id, PASSWORD)
    assert page.status == 400 and page.error is not None
    assert await count(app, "chat_links") == 0 and await count(app, "eservice_users") == 1


async def test_two_sign_ins_at_once_link_once_and_confirm_once(
    app: RunningApp, browser: aiohttp.ClientSession
) -> None:
    await add_user(app)
    path = await issue(app)
    form = await get(browser, app, path)
    fields = {"csrf": form.csrf, "user_id": "somying", "password": PASSWORD}
    pages = await asyncio.gather(*(post(browser, app, path, fields) for _ in range(3)))
    assert sorted(p.status for p in pages) == [200, 410, 410]
    assert await count(app, "chat_links") == 1
    async with app.container.db.engine.connect() as conn:
        queued = (
            await conn.execute(
                select(func.count()).select_from(t.outbox).where(t.outbox.c.chat_id == str(CHAT))
            )
        ).scalar_one()
    assert queued == 2  # the confirmation and the greeting with the menu, once


# --- registration ------------------------------------------------------------------------------


async def test_a_registration_link_creates_the_user_and_links_the_chat(
    app: RunningApp, browser: aiohttp.ClientSession, tg: TelegramStub
) -> None:
    owner, _ = await add_user(app, with_user=False)
    path = await issue(app, purpose=PURPOSE_REGISTER, customer_id=owner.id, language="en")
    form = await get(browser, app, path)
    assert "Create your User ID" in form.text and 'name="password2"' in form.text

    def fields(**changes: str) -> dict[str, str]:
        return {
            "csrf": form.csrf,
            "user_id": "somying.j",
            "password": PASSWORD,
            "password2": PASSWORD,
        } | changes

    mismatch = await post(browser, app, path, fields(password2="something-else"))
    assert (mismatch.status, mismatch.error) == (400, "The two passwords are not the same.")
    common = await post(browser, app, path, fields(password="password1", password2="password1"))
    assert common.status == 400 and "too common" in (common.error or "")
    bad_id = await post(browser, app, path, fields(user_id="มี space"))
    assert bad_id.status == 400 and "can't be used" in (bad_id.error or "")

    done = await post(browser, app, path, fields())

    assert done.status == 200
    async with app.container.db.uow() as uow:
        user = await uow.users.get_by_user_id("somying.j")
        link = await uow.links.get("telegram", str(CHAT))
    assert user is not None and user.customer_id == owner.id
    assert await Argon2PasswordHasher().verify(user.password_hash, PASSWORD)
    assert link is not None and link.eservice_user_id == user.id
    await app.idle()
    assert "somying.j" in tg.sent(str(CHAT))[0].text


# --- LINE's account link -----------------------------------------------------------------------


class LinkTokenLineStub(LineStub):
    """The LINE stub, also issuing account-link tokens (or failing to)."""

    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/v2/bot/user/{user_id}/linkToken", self._link_token)
        self.issued: list[str] = []
        self.fail_link_tokens = False

    async def _link_token(self, request: web.Request) -> web.Response:
        if self.fail_link_tokens:
            return web.json_response({"message": "Internal error"}, status=500)
        self.issued.append(request.match_info["user_id"])
        return web.json_response({"linkToken": f"lt-{new_id()}"})


@pytest.fixture
async def line_site(
    database_url: str, keyring_path: Path
) -> AsyncIterator[tuple[RunningApp, LinkTokenLineStub]]:
    stub = LinkTokenLineStub()
    await stub.start()
    try:
        async with running_app(database_url, keyring_path, line=stub) as running:
            yield running, stub
    finally:
        await stub.close()


async def test_a_line_chat_signs_in_then_confirms_in_lines_dialog_and_gets_linked(
    line_site: tuple[RunningApp, LinkTokenLineStub], browser: aiohttp.ClientSession
) -> None:
    app, stub = line_site
    owner, _ = await add_user(app)
    path = await issue(app, channel="line", chat_id=LINE_USER)
    form = await get(browser, app, path)
    assert "form-action 'self' https://access.line.me" in form.headers["Content-Security-Policy"]

    handed = await post(
        browser, app, path, {"csrf": form.csrf, "user_id": "somying", "password": PASSWORD}
    )

    assert handed.status == 303
    location = urlsplit(handed.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "access.line.me",
        "/dialog/bot/accountLink",
    )
    query = parse_qs(location.query)
    (nonce,) = query["nonce"]
    assert query["linkToken"][0].startswith("lt-") and stub.issued == [LINE_USER]
    assert len(nonce) >= 32
    assert await count(app, "chat_links") == 0  # not before LINE says so

    answer = await app.line(line_events.account_link(LINE_USER, nonce))
    assert answer.status == 200
    await app.idle()
    async with app.container.db.uow() as uow:
        link = await uow.links.get("line", LINE_USER)
    assert link is not None and link.customer_id == owner.id
    assert NAME in str([c.body for c in stub.calls])

    replayed = await app.line(line_events.account_link(LINE_USER, nonce))  # a replayed nonce
    assert replayed.status == 200
    await app.idle()
    assert await count(app, "chat_links") == 1


async def test_line_unreachable_gives_a_502_page_and_links_nothing(
    line_site: tuple[RunningApp, LinkTokenLineStub], browser: aiohttp.ClientSession
) -> None:
    app, stub = line_site
    await add_user(app)
    stub.fail_link_tokens = True
    path = await issue(app, channel="line", chat_id=LINE_USER)
    page = await sign_in(browser, app, path, "somying", PASSWORD)
    assert page.status == 502 and "LINE" in page.text
    assert await count(app, "chat_links") == 0
