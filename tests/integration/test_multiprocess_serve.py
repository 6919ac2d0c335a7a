"""Two real ``selfcare serve`` processes on one PostgreSQL schema serve one bot: the same
Telegram update delivered 20 times at once, split across both, is answered once; and a
conversation whose updates alternate between the processes keeps its replies in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from storage import tables as t
from storage.uow import Database
from tests.conftest import PG_URL
from tests.integration.channels_support import (
    SECRET,
    Process,
    channel_env,
    free_port,
    insecure_client_context,
    start_selfcare,
    telegram_stub,
)
from tests.integration.support import run_cli
from tests.stubs import telegram as updates
from tests.stubs.telegram import TelegramStub

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(pg_schema: str) -> str:
    """PostgreSQL only: what the project scales out on (SQLite runs one process)."""
    return f"{PG_URL}?search_path={pg_schema}"


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub


@pytest.fixture
async def servers(
    cli_env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> AsyncIterator[list[str]]:
    env = channel_env(cli_env, telegram=tg)
    upgraded = await run_cli(env, "db", "upgrade")  # the release step, before the processes
    assert upgraded.code == 0, upgraded.stderr
    ports = [free_port(), free_port()]
    started: list[Process] = []
    try:
        for n, port in enumerate(ports):
            started.append(
                await start_selfcare(
                    env,
                    "serve",
                    "--port",
                    str(port),
                    cwd=tmp_path / f"web{n}",
                    ready="selfcare serving on",
                )
            )
        yield [f"https://127.0.0.1:{port}" for port in ports]
    finally:
        for process in started:
            assert await process.stop() == 0, process.text


async def _post(session: aiohttp.ClientSession, url: str, update: dict[str, object]) -> int:
    async with session.post(
        url + "/webhooks/telegram",
        data=json.dumps(update),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    ) as response:
        return response.status


async def _all_sent(db: Database) -> bool:
    async with db.engine.connect() as conn:
        query = select(func.count()).select_from(t.outbox).where(t.outbox.c.status != "sent")
        return int((await conn.execute(query)).scalar_one()) == 0


async def _wait_all_sent(db: Database) -> None:
    async with asyncio.timeout(30):
        while not await _all_sent(db):  # noqa: ASYNC110 - another process's database writes
            await asyncio.sleep(0.1)


async def test_one_update_delivered_twenty_times_to_two_processes_is_answered_once(
    db: Database, servers: list[str], tg: TelegramStub
) -> None:
    update = updates.text(8001, "/start")
    connector = aiohttp.TCPConnector(ssl=insecure_client_context(), limit=40)
    async with aiohttp.ClientSession(connector=connector) as session:
        statuses = await asyncio.gather(
            *(_post(session, servers[n % 2], update) for n in range(20))
        )
    assert statuses == [200] * 20
    await _wait_all_sent(db)
    async with db.engine.connect() as conn:
        inbox = (await conn.execute(select(func.count()).select_from(t.inbox))).scalar_one()
        outbox = (await conn.execute(select(func.count()).select_from(t.outbox))).scalar_one()
    assert inbox == 1
    assert outbox == 2  # one handling: the privacy notice and the greeting
    sent = tg.sent("8001")
    assert len(sent) == outbox
    assert "/privacy" in sent[0].text


async def test_a_conversation_spread_over_two_processes_keeps_its_order(
    db: Database, servers: list[str], tg: TelegramStub
) -> None:
    script = ["/start", "/lang en", "/help", "/menu", "/privacy", "/lang th", "/help"]
    connector = aiohttp.TCPConnector(ssl=insecure_client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        for n, text in enumerate(script):  # as Telegram does: one update after another
            assert await _post(session, servers[n % 2], updates.text(8002, text)) == 200
    await _wait_all_sent(db)
    async with db.engine.connect() as conn:
        query = (
            select(t.outbox.c.uid, t.outbox.c.payload_enc)
            .where(t.outbox.c.chat_id == "8002")
            .order_by(t.outbox.c.id)
        )
        stored = (await conn.execute(query)).all()
    expected = [
        json.loads(
            db.cipher.decrypt(row.payload_enc, table="outbox", column="payload", row_id=row.uid)
        )["text"]
        for row in stored
    ]
    # Whichever process sent them, they reached Telegram in the order they were queued.
    assert [c.text for c in tg.sent("8002")] == expected
    assert any("Choose" in text or "menu" in text.lower() for text in expected)
