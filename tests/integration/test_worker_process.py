"""``selfcare worker`` as a process: it sends what a crashed web process left behind, and
on SIGTERM it finishes or hands back what it claimed. Both databases, the Telegram stub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update

from core.chat import TextReply
from storage import tables as t
from storage.uow import Database
from tests.integration.channels_support import (
    channel_env,
    free_port,
    start_selfcare,
    telegram_stub,
)
from tests.integration.support import run_cli
from tests.stubs.telegram import TelegramStub


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub


async def _statuses(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        query = select(t.outbox.c.status).order_by(t.outbox.c.id)
        return list((await conn.execute(query)).scalars().all())


async def test_worker_once_sends_what_a_crash_left_in_the_outbox(
    db: Database, cli_env: dict[str, str], tg: TelegramStub
) -> None:
    now = datetime.now(UTC)
    async with db.uow() as uow:
        # Committed, never sent (the web process died right after its commit)…
        await uow.outbox.enqueue_replies("telegram", "9001", [TextReply("ก่อน")], now)
        # …and claimed by a process that died mid-send, its lease now over.
        [leased] = await uow.outbox.enqueue_replies("telegram", "9002", [TextReply("x")], now)
        await uow.commit()
    async with db.engine.begin() as conn:
        await conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id == leased)
            .values(
                status="sending", lease_owner="dead-process", lease_until=now - timedelta(seconds=1)
            )
        )

    result = await run_cli(channel_env(cli_env, telegram=tg), "worker", "--once")
    assert result.code == 0, result.stderr
    assert [c.text for c in tg.sent("9001")] == ["ก่อน"]
    assert [c.text for c in tg.sent("9002")] == ["x"]
    assert await _statuses(db) == ["sent", "sent"]


async def test_sigterm_lets_the_worker_finish_or_hand_back_what_it_claimed(
    db: Database, cli_env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    async with db.uow() as uow:
        for n in range(5):
            await uow.outbox.enqueue_replies("telegram", "9003", [TextReply(f"ข้อความ {n}")], now)
        await uow.commit()
    tg.delay = 1.0  # every send takes a second: SIGTERM arrives mid-send
    env = channel_env(cli_env, telegram=tg) | {"SELFCARE_SHUTDOWN_TIMEOUT_SECONDS": "1"}
    worker = await start_selfcare(env, "worker", cwd=tmp_path, ready="worker running")
    await tg.wait_until(lambda: len(tg.calls) >= 1)
    code = await worker.stop()
    assert code == 0, worker.text
    assert "worker stopped" in worker.text
    statuses = await _statuses(db)
    assert "sending" not in statuses  # nothing left leased
    assert "pending" in statuses  # the grace period was too short to finish: handed back
    # What was handed back goes out with the next worker, in order.
    tg.delay = 0
    result = await run_cli(channel_env(cli_env, telegram=tg), "worker", "--once")
    assert result.code == 0, result.stderr
    assert set(await _statuses(db)) == {"sent"}
    texts = [c.text for c in tg.sent("9003")]
    # At least once and in order: the message on the wire at SIGTERM may come twice.
    assert texts == sorted(texts)
    assert list(dict.fromkeys(texts)) == [f"ข้อความ {n}" for n in range(5)]


async def test_the_worker_serves_its_own_metrics_when_asked(
    db: Database, cli_env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> None:
    async with db.uow() as uow:
        await uow.outbox.enqueue_replies("telegram", "9004", [TextReply("ok")], datetime.now(UTC))
        await uow.commit()
    tg.server_errors = 1  # the first try fails (a send error), the retry a second later works
    port = free_port()
    worker = await start_selfcare(
        channel_env(cli_env, telegram=tg),
        "worker",
        "--metrics-port",
        str(port),
        cwd=tmp_path,
        ready="worker running",
    )
    try:
        await tg.wait_until(lambda: len(tg.sent("9004")) == 1)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/healthz") as health:
                assert health.status == 200
            async with asyncio.timeout(30):
                while True:  # the sent state is committed just after the stub answered
                    async with session.get(base + "/metrics") as page:
                        assert page.status == 200
                        body = await page.text()
                    if "selfcare_outbox_pending 0.0" in body:
                        break
                    await asyncio.sleep(0.1)
            assert 'selfcare_send_errors_total{channel="telegram"} 1.0' in body
            async with session.get(base + "/webhooks/telegram") as other:
                assert other.status == 404  # nothing but metrics and health here
    finally:
        assert await worker.stop() == 0, worker.text
