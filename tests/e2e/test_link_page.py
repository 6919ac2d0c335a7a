"""The one-time sign-in page in a real browser: a Telegram chat asks to link, the page it
got opens in headless Chromium on a phone-sized screen, the customer signs in, sees
success, and the chat gets its confirmation (through python-telegram-bot and a stub Bot
API); with a wrong password the page says so and nothing is linked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import pytest

from bot.web.webhooks import TELEGRAM_SECRET_HEADER, WEBHOOKS
from core.domain import Customer
from storage.crypto import Argon2PasswordHasher
from tests.e2e.conftest import Site
from tests.integration import factories as f
from tests.stubs import telegram as updates
from tests.stubs.telegram import TelegramStub

SECRET = "e2e-secret_token"
CHAT = 70001
NAME = "นางสาวสมหญิง ใจดี"
PASSWORD = "ถั่วเขียว-correct-horse"


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    stub = TelegramStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


def with_telegram(
    serve: Callable[..., AbstractAsyncContextManager[Site]], tg: TelegramStub, *, tls_on: bool
) -> AbstractAsyncContextManager[Site]:
    return serve(
        tls_on=tls_on,
        telegram_token=tg.token,
        telegram_secret_token=SECRET,
        telegram_api_url=tg.base_url,
    )


async def add_customer(site: Site) -> Customer:
    owner = f.customer(name=NAME)
    password_hash = await Argon2PasswordHasher().hash(PASSWORD)
    async with site.container.db.uow() as uow:
        await uow.customers.add(owner)
        await uow.users.add(f.user(owner, user_id="somying", password_hash=password_hash))
        await uow.commit()
    return owner


async def page_link_for_the_chat(site: Site, tg: TelegramStub) -> str:
    """/link, accept the notice, choose the page: the URL the chat was sent."""
    async with aiohttp.ClientSession() as http:
        for update in (
            updates.text(CHAT, "/link"),
            updates.callback(CHAT, "link:accept"),
            updates.callback(CHAT, "link:web"),
        ):
            async with http.post(
                site.url + "/webhooks/telegram",
                json=update,
                headers={TELEGRAM_SECRET_HEADER: SECRET},
                ssl=False,
            ) as response:
                assert response.status == 200
            await site.app[WEBHOOKS].tasks.wait_idle()
    (url,) = [target for _, target in tg.sent(str(CHAT))[-1].buttons() if "/link/" in target]
    assert url.startswith(site.url + "/link/")
    return url


async def fits_the_phone(page: Any) -> bool:
    width: bool = await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return width


@pytest.mark.parametrize("tls_on", [False, True], ids=["http", "https"])
async def test_signing_in_on_the_page_links_the_chat_and_the_chat_is_told(
    serve: Callable[..., AbstractAsyncContextManager[Site]],
    tg: TelegramStub,
    page: Any,
    page_problems: list[str],
    tls_on: bool,
) -> None:
    async with with_telegram(serve, tg, tls_on=tls_on) as site:
        owner = await add_customer(site)
        url = await page_link_for_the_chat(site, tg)
        sent_before = len(tg.sent(str(CHAT)))

        response = await page.goto(url)
        assert response.status == 200
        assert await page.get_attribute("html", "lang") == "th"
        assert await fits_the_phone(page)
        await page.fill("#user_id", "somying")
        await page.fill("#password", PASSWORD)
        await page.click("#submit")

        done = page.locator("#done")
        await done.wait_for()
        assert "เรียบร้อยค่ะ" in await done.inner_text()
        assert await fits_the_phone(page)
        assert page_problems == []
        await site.app[WEBHOOKS].tasks.wait_idle()
        async with site.container.db.uow() as uow:
            link = await uow.links.get("telegram", str(CHAT))
        assert link is not None and link.customer_id == owner.id
        confirmation = tg.sent(str(CHAT))[sent_before:]
        assert any(NAME in call.text for call in confirmation), [c.text for c in confirmation]

        # the link worked once: opening it again says so
        again = await page.goto(url)
        assert again.status == 410


async def test_a_wrong_password_on_the_page_says_so_and_links_nothing(
    serve: Callable[..., AbstractAsyncContextManager[Site]],
    tg: TelegramStub,
    page: Any,
    page_problems: list[str],
) -> None:
    async with with_telegram(serve, tg, tls_on=False) as site:
        await add_customer(site)
        url = await page_link_for_the_chat(site, tg)
        sent_before = len(tg.sent(str(CHAT)))

        await page.goto(url)
        await page.fill("#user_id", "somying")
        await page.fill("#password", "not-the-password")
        await page.click("#submit")

        error = page.locator("#error")
        await error.wait_for()
        assert await error.inner_text() == "User ID หรือรหัสผ่านไม่ถูกต้องค่ะ"
        assert await page.input_value("#user_id") == "somying"
        assert await page.input_value("#password") == ""
        assert page_problems == []
        async with site.container.db.uow() as uow:
            assert await uow.links.get("telegram", str(CHAT)) is None
        await site.app[WEBHOOKS].tasks.wait_idle()
        assert tg.sent(str(CHAT))[sent_before:] == []

        # the page still works with the right password, in English too
        await page.goto(url + "?lang=en")
        assert await page.get_attribute("html", "lang") == "en"
        await page.fill("#user_id", "somying")
        await page.fill("#password", PASSWORD)
        await page.click("#submit")
        await page.locator("#done").wait_for()
        assert "Done!" in await page.locator("#done").inner_text()
