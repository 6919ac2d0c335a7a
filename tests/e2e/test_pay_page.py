"""The payment page in a real headless Chromium (Debian's, driven by Playwright; the
``browser`` fixture of tests/e2e/conftest.py), sized like a phone: what a customer sees,
that the QR on screen scans, that the strict CSP blocks nothing the page needs, and the
expired-link page. Pages are opened at 3x pixel density, as phones show them, so the
on-screen QR is screenshotted sharp enough to scan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.pay_support import PaySite, pay_site, scan_png
from tests.unit.emvco_parser import crc_is_valid, parse_payload

PHONE = {"width": 390, "height": 844}


@pytest.fixture
async def site(database_url: str, keyring_path: Path) -> AsyncIterator[PaySite]:
    async with pay_site(database_url, keyring_path) as running:
        yield running


async def open_phone(browser: object, url: str, locale: str = "th-TH"):  # type: ignore[no-untyped-def]
    context = await browser.new_context(  # type: ignore[attr-defined]
        viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True, locale=locale
    )
    page = await context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    response = await page.goto(url)
    return page, response, problems, requests


async def test_a_customer_sees_the_bill_and_a_qr_that_scans(browser: object, site: PaySite) -> None:
    owner, bill = await site.household()
    url = await site.link_for(bill, language="th")
    page, response, problems, requests = await open_phone(browser, url)

    assert response.status == 200
    assert (await page.inner_text("#amount")).strip() == "฿640.93"
    assert (await page.inner_text("#due")).strip() == "1 ธ.ค. 2569"
    assert await page.title() == "ชำระค่าบริการ · ExampleTel"

    qr = page.locator("#qr")
    assert await qr.is_visible()
    box = await qr.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    natural = await qr.evaluate("img => img.naturalWidth")
    assert natural > 0  # the data: image was allowed by the CSP and decoded
    payload = scan_png(await qr.screenshot())
    assert crc_is_valid(payload)
    fields = parse_payload(payload)
    assert fields["30"]["02"] == owner.account_no  # type: ignore[index]
    assert fields["30"]["03"] == bill.reference  # type: ignore[index]
    assert fields["54"] == "640.93"

    # Phone-sized: nothing sticks out sideways.
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Nothing blocked, nothing else fetched: the page is self-contained.
    assert problems == []
    assert [r for r in requests if r.startswith("http")] == [url]
    save = page.locator("a[download]")
    assert (await save.get_attribute("download")) == f"promptpay-{bill.reference}.png"


async def test_the_language_link_switches_to_english(browser: object, site: PaySite) -> None:
    _, bill = await site.household()
    page, _, problems, _ = await open_phone(browser, await site.link_for(bill, language="th"))
    await page.click("text=English")
    await page.wait_for_load_state()
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert (await page.inner_text("#due")).strip() == "1 Dec 2026"
    assert "Pay your bill" in await page.inner_text("h1")
    assert problems == []


async def test_a_paid_bill_shows_paid_and_no_qr(browser: object, site: PaySite) -> None:
    _, bill = await site.household(paid_satang=64_093)
    page, response, problems, _ = await open_phone(browser, await site.link_for(bill))
    assert response.status == 200
    assert await page.locator("#paid").is_visible()
    assert await page.locator("img").count() == 0
    assert problems == []


async def test_an_expired_link_shows_a_friendly_page(browser: object, site: PaySite) -> None:
    _, bill = await site.household()
    url = await site.link_for(bill, language="th")
    site.clock.advance(timedelta(hours=2))
    page, response, problems, _ = await open_phone(browser, url, locale="en-US")
    assert response.status == 404
    assert "หมดอายุ" in await page.inner_text("h1")  # the chat's language, not the browser's
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert [p for p in problems if "404" not in p] == []
