"""The worker's retention job on SQLite and PostgreSQL: sent or given-up messages and idle
conversations older than ``SELFCARE_RETENTION_DAYS`` go, inbox entries after 3 days; newer
rows and messages still waiting to be sent stay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot import bootstrap, privacy_jobs
from bot.settings import Settings
from bot.worker import JOBS
from core.chat import TextReply
from core.services.retention import RetentionPolicy, purge_expired
from storage import tables as t
from storage.uow import Database

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=31)
RECENT = NOW - timedelta(days=29)
#: Inbox entries: older than Telegram's 24 h of redelivery, younger than its week of silence.
HANDLED_4_DAYS_AGO = NOW - timedelta(days=4)
HANDLED_2_DAYS_AGO = NOW - timedelta(days=2)


class Clock:
    def now(self) -> datetime:
        return NOW


async def _seed(db: Database) -> None:
    async with db.uow() as uow:
        for n, at in enumerate([OLD, OLD, HANDLED_4_DAYS_AGO, HANDLED_2_DAYS_AGO]):
            assert await uow.inbox.accept("telegram", f"evt-{n}", at)
        old_sent, old_dead, old_pending = await uow.outbox.enqueue_replies(
            "telegram", "100", [TextReply("a"), TextReply("b"), TextReply("c")], OLD
        )
        (new_sent,) = await uow.outbox.enqueue_replies("telegram", "100", [TextReply("d")], RECENT)
        for chat_id in ("idle", "active"):
            conv = await uow.conversations.load_for_update("line", chat_id, "th")
            await uow.conversations.save(conv)
        await uow.commit()
    async with db.engine.begin() as conn:
        o = t.outbox.c
        await conn.execute(
            update(t.outbox).where(o.id.in_([old_sent, new_sent])).values(status="sent")
        )
        await conn.execute(update(t.outbox).where(o.id == old_dead).values(status="dead"))
        await conn.execute(update(t.outbox).where(o.id == old_pending).values(status="pending"))
        c = t.conversations.c
        await conn.execute(
            update(t.conversations).where(c.chat_id == "idle").values(updated_at=OLD)
        )
        await conn.execute(
            update(t.conversations).where(c.chat_id == "active").values(updated_at=RECENT)
        )


async def _left(db: Database) -> tuple[list[str], list[str], list[str]]:
    async with db.engine.connect() as conn:
        inbox = (await conn.execute(select(t.inbox.c.event_id).order_by(t.inbox.c.id))).scalars()
        inbox_left = list(inbox)
        outbox = await conn.execute(select(t.outbox.c.status).order_by(t.outbox.c.id))
        outbox_left = list(outbox.scalars())
        convs = await conn.execute(
            select(t.conversations.c.chat_id).order_by(t.conversations.c.chat_id)
        )
        conv_left = list(convs.scalars())
    return inbox_left, outbox_left, conv_left


@pytest.fixture
async def container(
    db: Database, database_url: str, keyring_path: Path
) -> AsyncIterator[bootstrap.Container]:
    settings = await asyncio.to_thread(
        Settings,
        database_url=database_url,
        keyring_file=keyring_path,
        env="test",
        retention_days=30,
    )
    built = await bootstrap.build(settings)
    built.clock = Clock()  # type: ignore[assignment]
    try:
        yield built
    finally:
        await built.close()


async def test_the_worker_job_purges_what_is_older_than_the_setting(
    db: Database, container: bootstrap.Container
) -> None:
    await _seed(db)
    assert await privacy_jobs.purge_expired(container) == 6  # 3 inbox, 2 messages, 1 chat
    inbox, outbox, conversations = await _left(db)
    assert inbox == ["evt-3"]  # 3 days, whatever SELFCARE_RETENTION_DAYS says
    assert outbox == ["pending", "sent"]  # the old unsent one waits; the recent one stays
    assert conversations == ["active"]
    assert await privacy_jobs.purge_expired(container) == 0


async def test_the_purge_works_in_batches_until_done(db: Database) -> None:
    async with db.uow() as uow:
        for n in range(7):
            await uow.inbox.accept("line", f"old-{n}", OLD)
        await uow.commit()
    report = await purge_expired(
        db.uow, now=NOW, policy=RetentionPolicy(keep=timedelta(days=30), batch=2)
    )
    assert (report.inbox, report.outbox, report.conversations) == (7, 0, 0)
    assert (await _left(db))[0] == []


def test_the_retention_job_is_one_of_the_workers_jobs() -> None:
    assert any(job.run is privacy_jobs.purge_expired for job in JOBS)


async def test_a_shorter_retention_setting_also_shortens_the_inbox(db: Database) -> None:
    async with db.uow() as uow:
        await uow.inbox.accept("telegram", "two-days", HANDLED_2_DAYS_AGO)
        await uow.commit()
    report = await purge_expired(db.uow, now=NOW, policy=RetentionPolicy(keep=timedelta(days=1)))
    assert report.inbox == 1


def test_retention_keeps_rows_at_least_a_day() -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(keep=timedelta(hours=1))
    with pytest.raises(ValueError):
        RetentionPolicy(inbox_keep=timedelta(hours=12))
    with pytest.raises(ValueError):
        RetentionPolicy(batch=0)
