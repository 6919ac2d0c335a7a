"""An SMS gateway that hangs holds no transaction: the turn that asked for a sign-in code
has committed before the code leaves, and other chats are answered meanwhile (on SQLite,
whose single write lock the turn used to keep for as long as the gateway took). The real
app on loopback, both databases, a gateway stub that holds each request until told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select

from storage import tables as t
from storage.uow import Database
from tests.integration import factories as f
from tests.integration.channels_support import running_app, telegram_stub
from tests.stubs import telegram as updates
from tests.stubs.server import StubServer
from tests.stubs.telegram import TelegramStub

PHONE = "0812345678"


class HangingGateway(StubServer):
    """Takes each SMS and answers only once ``release`` is set."""

    def __init__(self) -> None:
        app = web.Application()
        app.router.add_post("/send", self._send)
        super().__init__(app)
        self.received: list[dict[str, Any]] = []
        self.release = asyncio.Event()

    async def _send(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.notify()
        await self.release.wait()
        return web.json_response({"ok": True}, status=202)


@pytest.fixture
async def gateway() -> AsyncIterator[HangingGateway]:
    stub = HangingGateway()
    await stub.start()
    try:
        yield stub
    finally:
        stub.release.set()
        await stub.close()


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub


async def _challenges(db: Database) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).select_from(t.metadata.tables["otp_challenges"])
        return int((await conn.execute(query)).scalar_one())


async def test_a_hanging_sms_gateway_blocks_no_other_chat(
    db: Database,
    database_url: str,
    keyring_path: Path,
    tg: TelegramStub,
    gateway: HangingGateway,
) -> None:
    await f.add_customers(db, f.customer(phone=PHONE))
    async with running_app(
        database_url, keyring_path, telegram=tg, sms_gateway_url=gateway.url + "/send"
    ) as app:
        for step in (
            updates.text(5001, "/link"),
            updates.callback(5001, "link:accept"),
            updates.callback(5001, "link:otp"),
        ):
            assert (await app.telegram(step)).status == 200
        asking = asyncio.create_task(app.telegram(updates.text(5001, PHONE)))
        await gateway.wait_until(lambda: len(gateway.received) == 1)

        # The gateway holds the code; the turn that asked for it has committed already…
        assert await _challenges(db) == 1
        # …and another chat is answered meanwhile (it used to wait on SQLite's write lock).
        other = await asyncio.wait_for(app.telegram(updates.text(5002, "/help")), 60)
        assert other.status == 200
        assert not asking.done()  # the platform waits for its answer: the code is not sent yet

        gateway.release.set()
        assert (await asking).status == 200
        await app.idle()
    assert gateway.received[0]["to"] == "+66812345678"
    texts = [call.text for call in tg.sent("5001")]
    assert any("08x-xxx-5678" in text for text in texts)  # "I've sent a code to …"
