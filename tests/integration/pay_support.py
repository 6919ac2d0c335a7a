"""The payment pages on loopback, as ``selfcare serve`` builds them, with a clock the test
moves, and bills to show: shared by the HTTP tests and the browser tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import zxingcpp
from aiohttp import web
from PIL import Image

from bot import bootstrap
from bot.app import create_app
from bot.bootstrap import Container
from bot.settings import load_settings
from bot.web import pay
from core.domain import Bill, Customer
from core.services.billing import issue_pay_link
from storage import migrate
from tests.integration import factories as f

# 14:05 in Bangkok on 25 Nov 2026: the bill of October is due on 1 Dec 2026.
NOW = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
BILLER_ID = "010555999999901"


class MovableClock:
    def __init__(self, now: datetime = NOW) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass
class PaySite:
    url: str
    container: Container
    clock: MovableClock

    async def household(
        self, *, language: str = "th", **bill_changes: Any
    ) -> tuple[Customer, Bill]:
        """A customer with one number and October's bill (unpaid unless told otherwise)."""
        owner = f.customer(language=language)
        account = f.service_account(owner)
        bill = f.bill(
            account,
            date(2026, 10, 1),
            period_end=date(2026, 10, 31),
            issued_on=date(2026, 11, 1),
            due_on=date(2026, 12, 1),
            amount_satang=64_093,
        )
        bill = replace(bill, **bill_changes)
        async with self.container.db.uow() as uow:
            await uow.customers.add(owner)
            await uow.customers.add_service_account(account)
            await uow.bills.add(bill)
            await uow.commit()
        return owner, bill

    async def link_for(self, bill: Bill, *, language: str = "th") -> str:
        """A payment page URL for ``bill`` on this site (as the chat hands it out)."""
        settings = self.container.payment_settings()
        async with self.container.db.uow() as uow:
            url = await issue_pay_link(uow, settings, bill, language=language, now=self.clock.now())
            await uow.commit()
        return self.url + "/pay/" + url.rsplit("/", 1)[1]


@contextlib.asynccontextmanager
async def pay_site(
    database_url: str, keyring_path: Path, **overrides: Any
) -> AsyncIterator[PaySite]:
    values: dict[str, Any] = {
        "database_url": database_url,
        "keyring_file": keyring_path,
        "env": "test",
        "promptpay_biller_id": BILLER_ID,
        "operator_name": "ExampleTel",
        **overrides,
    }
    settings = await asyncio.to_thread(load_settings, **values)  # reads .env
    await migrate.upgrade(database_url)
    container = await bootstrap.build(settings)
    clock = MovableClock()
    container.clock = clock  # type: ignore[assignment]
    runner = web.AppRunner(create_app(container, features=[pay.setup]), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield PaySite(f"http://127.0.0.1:{port}", container, clock)
    finally:
        await runner.cleanup()
        await container.close()


_DATA_PNG = re.compile(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def qr_images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in _DATA_PNG.findall(html)]


def scan_png(png: bytes) -> str:
    """The text a phone camera reads from the QR code in ``png``."""
    found = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode
    )
    assert len(found) == 1, found
    return found[0].text
