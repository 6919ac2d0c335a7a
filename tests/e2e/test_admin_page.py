"""The staff page in a real headless Chromium: a marketer signs in with a token, creates a
campaign in Thai and English, sends it and watches it finish; other roles, bad tokens and
bad input are turned away politely; the strict CSP blocks nothing the page needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.broadcast import open_broadcaster
from core.domain import Channel, StaffRole
from core.services.staff import StaffService
from tests.integration.broadcast_support import add_customer

# Imported at collection: the browser fixture imports it inside the event loop otherwise.
pytest.importorskip("playwright.async_api")

TERMINAL = Channel.TERMINAL.value


async def _token(site: Any, handle: str, role: StaffRole) -> str:
    staff = StaffService(site.container.db.uow, site.container.clock)
    await staff.add(handle, [role], actor="test", chat="terminal:staff-chat")
    return (await staff.issue_token(handle, actor="test")).value


async def _sign_in(page: Any, url: str, token: str) -> None:
    await page.goto(f"{url}/admin")
    await page.fill("#token", token)
    await page.click("#signin")


async def test_a_marketer_creates_sends_and_watches_a_campaign(
    serve: Callable[..., Any], page: Any, page_problems: list[str]
) -> None:
    async with serve() as site:
        recipients = [await add_customer(site.container.db, channels=[TERMINAL]) for _ in range(3)]
        token = await _token(site, "mali", StaffRole.MARKETER)

        await page.goto(f"{site.url}/admin")
        assert page.url.endswith("/admin/signin")
        await page.fill("#token", "sc_" + "x" * 43)
        await page.click("#signin")
        assert "ไม่ถูกต้อง" in await page.inner_text("#error")

        await page.fill("#token", token)
        await page.click("#signin")
        assert page.url.endswith("/admin/campaigns")
        assert await page.inner_text("#signed-in-as") == "mali"
        assert await page.is_visible("#no-campaigns")

        await page.click("#new-campaign")
        await page.fill("#title", "โปรสงกรานต์ 💦")
        await page.fill("#text_th", "เน็ตไม่อั้น ลด 50% 🎉\nเฉพาะเดือนเมษายน")
        await page.fill("#text_en", "Unlimited data, 50% off 🎉")
        await page.fill("#link_url", "https://example.co.th/songkran")
        await page.fill("#link_label_th", "ดูโปร")
        await page.fill("#link_label_en", "See offer")
        await page.click("#create")
        assert await page.inner_text("#campaign-title") == "โปรสงกรานต์ 💦"
        assert await page.get_attribute("#campaign-status", "data-status") == "draft"
        assert "เฉพาะเดือนเมษายน" in await page.inner_text("#text-th")

        await page.click("#preview")
        assert await page.is_visible("#note")
        await page.click("#send")
        assert await page.get_attribute("#campaign-status", "data-status") == "scheduled"

        async with open_broadcaster(site.container) as broadcaster:
            await broadcaster.run_once()
        await page.reload()
        assert await page.get_attribute("#campaign-status", "data-status") == "done"
        sent = await page.inner_text("#counts tr[data-status=sent] td.num")
        assert sent == str(len(recipients))
        assert not await page.is_visible("#send") and not await page.is_visible("#cancel")

        await page.click("text=← แคมเปญ")
        rows = await page.inner_text("#campaigns")
        assert "โปรสงกรานต์ 💦" in rows and "เสร็จแล้ว" in rows

        await page.click("#lang-en")
        assert await page.inner_text("h1") == "Campaigns"
        assert "done" in await page.inner_text("#campaigns")

        await page.click("#signout")
        assert page.url.endswith("/admin/signin")
        await page.goto(f"{site.url}/admin/campaigns")
        assert page.url.endswith("/admin/signin")
    assert page_problems == []


async def test_a_bad_field_is_explained_and_what_was_typed_is_kept(
    serve: Callable[..., Any], page: Any, page_problems: list[str]
) -> None:
    async with serve() as site:
        await _sign_in(page, site.url, await _token(site, "mali", StaffRole.MARKETER))
        await page.goto(f"{site.url}/admin/campaigns/new")
        await page.fill("#title", "ทดสอบ")
        await page.fill("#text_th", "ข้อความ 🎉")
        await page.fill("#text_en", "Text")
        await page.fill("#link_url", "javascript:alert(1)")
        await page.fill("#link_label_th", "ดู")
        await page.fill("#link_label_en", "See")
        await page.click("#create")
        assert "https://" in await page.inner_text("#error")
        assert await page.input_value("#text_th") == "ข้อความ 🎉"
        await page.goto(f"{site.url}/admin/campaigns")
        assert await page.is_visible("#no-campaigns")
    assert page_problems == []


async def test_staff_without_the_marketer_role_are_told_to_use_the_api(
    serve: Callable[..., Any], page: Any
) -> None:
    async with serve() as site:
        await _sign_in(page, site.url, await _token(site, "somchai", StaffRole.SUPPORT))
        assert await page.inner_text("h1") == "ไม่ใช่สิทธิ์ของบทบาทคุณ"
        assert "API" in await page.inner_text("#message")


async def test_a_form_posted_without_its_csrf_value_is_refused(
    serve: Callable[..., Any], page: Any
) -> None:
    async with serve() as site:
        await _sign_in(page, site.url, await _token(site, "mali", StaffRole.MARKETER))
        response = await page.request.post(
            f"{site.url}/admin/campaigns",
            form={"title": "x", "text_th": "ก", "text_en": "a"},
            headers={"Origin": site.url},
        )
        assert response.status == 403
        await page.goto(f"{site.url}/admin/campaigns")
        assert await page.is_visible("#no-campaigns")
