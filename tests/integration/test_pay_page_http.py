"""``GET /pay/{token}`` over real HTTP on both databases: what the page shows for each kind
of bill, its headers, its language, and every way a token can be wrong."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from sqlalchemy import select, update

from core.i18n import translator
from storage import tables as t
from storage import tables_billing as tb
from tests.integration.pay_support import BILLER_ID, pay_site, qr_images, scan_png
from tests.unit.emvco_parser import crc_is_valid, parse_payload


async def get(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text(), dict(response.headers)


async def test_an_unpaid_bill_shows_amount_due_date_and_a_qr_a_bank_accepts(
    database_url: str, keyring_path: Path
) -> None:
    async with pay_site(database_url, keyring_path) as site:
        owner, bill = await site.household()
        status, html, headers = await get(await site.link_for(bill, language="th"))

    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert translator("th").money(64_093) in html
    assert "1 ธ.ค. 2569" in html  # the due date, Buddhist era
    assert owner.account_no in html and bill.reference in html
    assert '<html lang="th">' in html
    (png,) = set(qr_images(html))
    payload = scan_png(png)
    assert crc_is_valid(payload)
    fields = parse_payload(payload)
    assert fields["30"] == {
        "00": "A000000677010112",
        "01": BILLER_ID,
        "02": owner.account_no,
        "03": bill.reference,
    }
    assert fields["54"] == "640.93"


async def test_the_page_is_locked_down_by_its_headers(
    database_url: str, keyring_path: Path
) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        status, html, headers = await get(await site.link_for(bill))
    assert status == 200
    csp = headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["img-src"] == "data:"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["form-action"] == "'none'" and directives["base-uri"] == "'none'"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]+)'", directives["style-src"])
    assert nonce is not None and f'<style nonce="{nonce.group(1)}">' in html
    assert "unsafe" not in csp and "script" not in html.lower()
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert "noindex" in headers["X-Robots-Tag"]
    # Nothing from elsewhere: no external images, styles, fonts or scripts.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html


async def test_each_request_gets_its_own_nonce(database_url: str, keyring_path: Path) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        url = await site.link_for(bill)
        first = (await get(url))[2]["Content-Security-Policy"]
        second = (await get(url))[2]["Content-Security-Policy"]
    assert first != second


async def test_a_link_from_an_english_chat_shows_an_english_page_that_can_switch(
    database_url: str, keyring_path: Path
) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        url = await site.link_for(bill, language="en")
        _, english, _ = await get(url)
        _, thai, _ = await get(url + "?lang=th")
        _, ignored, _ = await get(url + "?lang=xx")
    assert '<html lang="en">' in english and "Pay your bill" in english
    assert "1 Dec 2026" in english
    assert '<html lang="th">' in thai and "ชำระค่าบริการ" in thai
    assert '<html lang="en">' in ignored


async def test_a_paid_bill_says_so_and_shows_no_qr(database_url: str, keyring_path: Path) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household(paid_satang=64_093)
        status, html, _ = await get(await site.link_for(bill, language="en"))
    assert status == 200
    assert "This bill is paid in full. Thank you!" in html
    assert qr_images(html) == [] and "<img" not in html


async def test_a_bill_paid_after_the_link_was_made_shows_paid(
    database_url: str, keyring_path: Path
) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        url = await site.link_for(bill, language="en")
        async with site.container.db.engine.begin() as conn:  # as a payment would
            await conn.execute(
                update(t.bills).where(t.bills.c.id == bill.id).values(paid_satang=64_093)
            )
        _, html, _ = await get(url)
    assert "This bill is paid in full" in html and qr_images(html) == []


async def test_a_partly_paid_bill_asks_for_the_rest(database_url: str, keyring_path: Path) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household(paid_satang=40_000)
        _, html, _ = await get(await site.link_for(bill, language="en"))
    en = translator("en")
    assert en.money(24_093) in html and en.money(40_000) in html
    (png,) = set(qr_images(html))
    assert parse_payload(scan_png(png))["54"] == "240.93"


async def test_an_overdue_bill_is_flagged(database_url: str, keyring_path: Path) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        site.clock.advance(timedelta(days=7))
        url = await site.link_for(bill, language="en")
        _, html, _ = await get(url)
    assert "past its due date" in html
    assert qr_images(html)  # still payable


@pytest.mark.parametrize(("language", "needle"), [("th", "หมดอายุ"), ("en", "expired")])
async def test_an_expired_link_gets_a_friendly_404_in_the_chats_language(
    database_url: str, keyring_path: Path, language: str, needle: str
) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        url = await site.link_for(bill, language=language)
        site.clock.advance(site.container.payment_settings().pay_link_ttl)
        status, html, headers = await get(url, **{"Accept-Language": "fr"})
    assert status == 404
    assert needle in html and f'<html lang="{language}">' in html
    assert "<img" not in html and bill.reference not in html
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("accept", "lang"),
    [
        ("", "th"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR, en;q=0.5", "en"),
        ("th-TH", "th"),
        ("x" * 500, "th"),
    ],
)
async def test_an_unknown_link_gets_a_404_in_the_browsers_language(
    database_url: str, keyring_path: Path, accept: str, lang: str
) -> None:
    async with pay_site(database_url, keyring_path) as site:
        status, html, _ = await get(site.url + "/pay/" + "A" * 43, **{"Accept-Language": accept})
    assert status == 404 and f'<html lang="{lang}">' in html


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "A" * 44,
        quote("x' OR '1'='1"),
        quote("บิล😀" * 5),
        "%00",
        "a" * 4000,
        quote("<script>alert(1)</script>"),
    ],
)
async def test_malformed_tokens_get_the_404_page_never_a_5xx(
    database_url: str, keyring_path: Path, token: str
) -> None:
    async with pay_site(database_url, keyring_path) as site:
        status, html, _ = await get(site.url + "/pay/" + token)
    assert status == 404
    assert "<script>alert" not in html


async def test_only_get_and_head_are_answered(database_url: str, keyring_path: Path) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        url = await site.link_for(bill)
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"{}") as response:
                assert response.status == 405
            async with session.head(url) as response:
                assert response.status == 200
                assert await response.read() == b""


async def test_the_page_shows_no_personal_data(database_url: str, keyring_path: Path) -> None:
    async with pay_site(database_url, keyring_path) as site:
        owner, bill = await site.household()
        _, html, _ = await get(await site.link_for(bill))
    for value in (
        owner.name,
        owner.phone,
        owner.address,
        owner.email or "",
        owner.national_id or "",
    ):
        assert value not in html


async def test_only_the_tokens_hash_is_stored(database_url: str, keyring_path: Path) -> None:
    async with pay_site(database_url, keyring_path) as site:
        _, bill = await site.household()
        url = await site.link_for(bill)
        token = url.rsplit("/", 1)[1]
        async with site.container.db.engine.connect() as conn:
            rows = (await conn.execute(select(tb.pay_links))).mappings().all()
    assert len(rows) == 1
    stored = rows[0]
    assert token.encode() not in bytes(stored["token_hash"])
    assert len(bytes(stored["token_hash"])) == 32
    assert token not in repr(dict(stored))
