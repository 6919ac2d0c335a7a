"""The campaign sender as operators run it — `selfcare broadcast run` in a subprocess —
killed with SIGKILL mid-campaign and started again, and two of them on one campaign.

What must hold: a resume never messages anyone twice; LINE recipients get the promotion
exactly once whenever the worker dies (a request cut off is sent again with its retry
key); Telegram recipients get it exactly once unless the worker died with their message
in flight, in which case the row says "outcome unknown" and it is not sent again.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.bootstrap import SystemClock
from bot.broadcast import BroadcastSettings
from core.domain import CampaignStatus, Channel, DeliveryStatus
from core.services.campaigns import CampaignService
from storage.tables_staff import campaign_deliveries as rows
from storage.uow import Database
from tests.integration.broadcast_support import (
    WORKER_COMMAND,
    Audience,
    add_customer,
    broadcast_values,
    create_campaign,
    statuses,
    worker_env,
)
from tests.stubs.broadcast_line import BroadcastLineStub
from tests.stubs.broadcast_telegram import BroadcastTelegramStub

pytestmark = pytest.mark.slow

TELEGRAM = Channel.TELEGRAM.value
LINE = Channel.LINE.value
LEASE_SECONDS = 2


@pytest.fixture
async def telegram() -> AsyncIterator[BroadcastTelegramStub]:
    stub = BroadcastTelegramStub()
    await stub.start()
    try:
        yield stub
    finally:
        stub.open_gate()
        await stub.close()


@pytest.fixture
async def line() -> AsyncIterator[BroadcastLineStub]:
    stub = BroadcastLineStub()
    await stub.start()
    try:
        yield stub
    finally:
        stub.release()
        await stub.close()


class Workers:
    """`selfcare broadcast run` subprocesses; every one still running is killed at the end."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.running: list[asyncio.subprocess.Process] = []

    async def start(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *WORKER_COMMAND,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.running.append(proc)
        return proc

    async def kill(self, proc: asyncio.subprocess.Process) -> None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        self.running.remove(proc)

    async def close(self) -> None:
        for proc in list(self.running):
            await self.kill(proc)


@pytest.fixture
async def workers_for(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Any]], Workers]]:
    made: list[Workers] = []

    def factory(values: dict[str, Any]) -> Workers:
        workers = Workers(worker_env(values), tmp_path)
        made.append(workers)
        return workers

    yield factory
    for workers in made:
        await workers.close()


async def eventually(condition: Callable[[], Any], within: float = 60.0) -> None:
    """Poll an async ``condition`` (database state, another process's work) until true."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 (nothing to wait on but the database)
            await asyncio.sleep(0.05)


async def count(db: Database, campaign_id: str, *where: Any) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).select_from(rows).where(rows.c.campaign_id == campaign_id)
        return int((await conn.execute(query.where(*where))).scalar_one())


async def campaign_status(db: Database, campaign_id: str) -> CampaignStatus:
    report = await CampaignService(db.uow, SystemClock()).report(campaign_id)
    return report.campaign.status


async def build_audience(db: Database, *, both: int, telegram: int, line: int) -> Audience:
    audience = Audience()
    for _ in range(both):
        audience.opted_in.append(await add_customer(db, channels=[TELEGRAM, LINE]))
    for _ in range(telegram):
        audience.opted_in.append(await add_customer(db, channels=[TELEGRAM]))
    for _ in range(line):
        audience.opted_in.append(await add_customer(db, channels=[LINE], language="en"))
    for _ in range(5):
        audience.others.append(await add_customer(db, channels=[TELEGRAM, LINE], consents=[]))
    return audience


async def start_campaign(db: Database) -> str:
    clock = SystemClock()
    campaign = await create_campaign(db, clock)
    await CampaignService(db.uow, clock).schedule(campaign.id, actor="test")
    return campaign.id


async def test_kill_9_mid_campaign_then_restart_reaches_every_opted_in_chat_exactly_once(
    db: Database,
    database_url: str,
    keyring_path: Path,
    telegram: BroadcastTelegramStub,
    line: BroadcastLineStub,
    workers_for: Callable[[dict[str, Any]], Workers],
) -> None:
    audience = await build_audience(db, both=20, telegram=40, line=20)
    values = broadcast_values(
        database_url,
        keyring_path,
        telegram_url=telegram.base_url,
        line_url=line.url,
        broadcast_telegram_per_second=100,
        line_multicast_batch_size=5,
        broadcast_lease_seconds=LEASE_SECONDS,
    )
    workers = workers_for(values)
    # Telegram asks for a 6-second pause after 25 messages; the third LINE multicast is
    # taken by LINE but never answered.
    telegram.throttle_at = 25
    telegram.retry_after = 6
    line.hang_after = 2
    campaign_id = await start_campaign(db)
    first = await workers.start()

    async def mid_campaign() -> bool:
        telegram_idle = await count(
            db,
            campaign_id,
            rows.c.channel == TELEGRAM,
            rows.c.status.in_([DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]),
        )
        return (
            telegram.rate_limit.get("sendMessage", 1) == 0
            and line.hanging > 0
            and not (telegram_idle)
        )

    await eventually(mid_campaign)
    await workers.kill(first)
    line.release()
    # Left leased: the LINE requests of the claim in flight (some taken, one hanging).
    in_flight = await count(db, campaign_id, rows.c.status == DeliveryStatus.SENDING)
    assert in_flight == await count(
        db, campaign_id, rows.c.channel == LINE, rows.c.status == DeliveryStatus.SENDING
    )
    assert in_flight > 0
    assert 0 < len(telegram.accepted()) < len(audience.chats(TELEGRAM))

    await workers.start()

    async def done() -> bool:
        return await campaign_status(db, campaign_id) is CampaignStatus.DONE

    await eventually(done)
    assert dict(telegram.per_chat()) == dict.fromkeys(audience.chats(TELEGRAM), 1)
    assert dict(line.per_user()) == dict.fromkeys(audience.chats(LINE), 1)
    assert any(m.status == 409 for m in line.multicasts), "the cut-off request was resent"
    assert set((await statuses(db, campaign_id)).values()) == {DeliveryStatus.SENT}


async def test_a_worker_killed_at_any_moment_never_makes_a_resume_message_anyone_twice(
    db: Database,
    database_url: str,
    keyring_path: Path,
    telegram: BroadcastTelegramStub,
    line: BroadcastLineStub,
    workers_for: Callable[[dict[str, Any]], Workers],
) -> None:
    audience = await build_audience(db, both=30, telegram=60, line=0)
    values = broadcast_values(
        database_url,
        keyring_path,
        telegram_url=telegram.base_url,
        line_url=line.url,
        broadcast_telegram_per_second=60,
        line_multicast_batch_size=7,
        broadcast_lease_seconds=LEASE_SECONDS,
    )
    workers = workers_for(values)
    telegram.delay = 0.02
    campaign_id = await start_campaign(db)
    first = await workers.start()
    await telegram.wait_until(lambda: len(telegram.accepted()) >= 40, within=60)
    await workers.kill(first)
    await workers.start()

    async def done() -> bool:
        return await campaign_status(db, campaign_id) is CampaignStatus.DONE

    await eventually(done)
    got = telegram.per_chat() + line.per_user()
    assert max(got.values()) == 1, "someone was messaged twice"
    found = await statuses(db, campaign_id)
    sent = {chat for chat, status in found.items() if status is DeliveryStatus.SENT}
    unknown = {chat for chat, status in found.items() if status is DeliveryStatus.FAILED}
    assert sent | unknown == set(found)
    assert sent <= set(got), "a row says sent but the platform never saw it"
    # Rows leased but never handed to Telegram went back to the queue; only requests in
    # flight when the worker died can be lost (at most the 8 a worker has in flight).
    assert len(unknown - set(got)) <= BroadcastSettings().concurrency
    assert set(found) == audience.chats(TELEGRAM) | audience.chats(LINE)
    async with db.engine.connect() as conn:
        errors = set(
            (
                await conn.execute(
                    select(rows.c.error).where(
                        rows.c.campaign_id == campaign_id,
                        rows.c.status == DeliveryStatus.FAILED.value,
                    )
                )
            ).scalars()
        )
    assert all(e.startswith("outcome unknown") for e in errors)
    assert not unknown & audience.chats(LINE), "LINE requests are resent, never given up"


async def test_two_workers_on_postgresql_share_one_campaign_without_double_sends(
    db: Database,
    database_url: str,
    keyring_path: Path,
    telegram: BroadcastTelegramStub,
    line: BroadcastLineStub,
    workers_for: Callable[[dict[str, Any]], Workers],
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one worker; several share a campaign on PostgreSQL")
    audience = await build_audience(db, both=40, telegram=60, line=40)
    values = broadcast_values(
        database_url,
        keyring_path,
        telegram_url=telegram.base_url,
        line_url=line.url,
        broadcast_telegram_per_second=40,
        line_multicast_batch_size=5,
    )
    workers = workers_for(values)
    telegram.hold_after = 0  # nothing is answered until both workers hold rows
    campaign_id = await start_campaign(db)
    await workers.start()
    await workers.start()

    async def both_hold_rows() -> bool:
        async with db.engine.connect() as conn:
            holders = await conn.execute(
                select(func.count(rows.c.claimed_by.distinct())).where(
                    rows.c.campaign_id == campaign_id,
                    rows.c.channel == TELEGRAM,
                    rows.c.status == DeliveryStatus.SENDING.value,
                )
            )
            return int(holders.scalar_one()) == 2

    await eventually(both_hold_rows)
    telegram.open_gate()

    async def done() -> bool:
        return await campaign_status(db, campaign_id) is CampaignStatus.DONE

    await eventually(done)
    assert dict(telegram.per_chat()) == dict.fromkeys(audience.chats(TELEGRAM), 1)
    assert dict(line.per_user()) == dict.fromkeys(audience.chats(LINE), 1)
    assert set((await statuses(db, campaign_id)).values()) == {DeliveryStatus.SENT}
    async with db.engine.connect() as conn:
        senders = await conn.execute(
            select(func.count(rows.c.claimed_by.distinct())).where(
                rows.c.campaign_id == campaign_id, rows.c.channel == TELEGRAM
            )
        )
        assert senders.scalar_one() == 2
