"""Outbox delivery with leases: claim, send with no transaction open, mark; per-chat order;
failures, blocked chats, our own throttling, shutdown; the worker's jobs. Both databases.

The messenger here is a scripted stand-in for a platform adapter (the port the delivery
talks to), so each failure can be staged exactly; the real adapters against their stubs
are in test_telegram_* and test_line_*.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot import bootstrap
from bot.bootstrap import Container
from bot.channels.telegram import SendRateLimiter
from bot.delivery import (
    MAX_ATTEMPTS,
    ChatUnreachable,
    OutboxDelivery,
    Throttled,
)
from bot.settings import load_settings
from bot.worker import Job, Worker, purge_expired_media
from core.chat import Reply, TextReply
from core.ports import DeliveryError
from storage import migrate
from storage import tables as t
from storage.uow import Database
from tests.integration.channels_support import FrozenClock

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


class ScriptedMessenger:
    """Records what it sends; ``script[text]`` says what happens when that text is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.script: dict[str, Callable[[], Any]] = {}
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def send(self, chat_id: str, reply: Reply) -> None:
        assert isinstance(reply, TextReply)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        action = self.script.pop(reply.text, None)
        if action is not None:
            action()
        self.sent.append((chat_id, reply.text))


def raise_(exc: BaseException) -> Callable[[], None]:
    def action() -> None:
        raise exc

    return action


async def enqueue(db: Database, chat_id: str, *texts: str, now: datetime = NOW) -> list[int]:
    async with db.uow() as uow:
        ids = await uow.outbox.enqueue_replies(
            "telegram", chat_id, [TextReply(x) for x in texts], now
        )
        await uow.commit()
    return ids


async def rows(db: Database) -> dict[int, Any]:
    async with db.engine.connect() as conn:
        return {r.id: r for r in await conn.execute(select(t.outbox).order_by(t.outbox.c.id))}


def delivery(db: Database, messenger: ScriptedMessenger, clock: FrozenClock) -> OutboxDelivery:
    return OutboxDelivery(db, {"telegram": messenger}, clock, lease=LEASE)


async def test_replies_go_out_in_order_and_are_marked_sent(db: Database) -> None:
    ids = await enqueue(db, "A", "a1", "a2", "a3")
    bot = ScriptedMessenger()
    assert await delivery(db, bot, FrozenClock(NOW)).deliver(ids) == 3
    assert bot.sent == [("A", "a1"), ("A", "a2"), ("A", "a3")]
    stored = await rows(db)
    assert {(r.status, r.attempts, r.lease_owner) for r in stored.values()} == {("sent", 1, None)}


async def test_a_leased_message_waits_for_its_lease_then_the_relay_takes_it_over(
    db: Database,
) -> None:
    await enqueue(db, "B", "b1", "b2")
    async with db.uow() as uow:  # a process claims them, then dies
        claimed = await uow.outbox.claim_chat("telegram", "B", NOW, lease=LEASE, owner="gone")
        await uow.commit()
    assert len(claimed) == 2
    bot = ScriptedMessenger()
    clock = FrozenClock(NOW + LEASE - timedelta(seconds=1))
    assert await delivery(db, bot, clock).relay_due() == 0
    clock.set(NOW + LEASE)
    assert await delivery(db, bot, clock).relay_due() == 2
    assert bot.sent == [("B", "b1"), ("B", "b2")]


async def test_a_later_turn_never_overtakes_one_being_sent(db: Database) -> None:
    first = await enqueue(db, "C", "c1", "c2")
    slow = ScriptedMessenger()
    slow.gate = asyncio.Event()
    clock = FrozenClock(NOW)
    sending = asyncio.create_task(delivery(db, slow, clock).deliver(first))
    await slow.entered.wait()  # c1 is on the wire, c1 and c2 are leased

    second = await enqueue(db, "C", "c3")
    other = ScriptedMessenger()
    assert await delivery(db, other, clock).deliver(second) == 0  # must wait its turn
    slow.gate.set()
    assert await sending == 3  # the first sender drains the chat, c3 included
    assert slow.sent == [("C", "c1"), ("C", "c2"), ("C", "c3")]
    assert other.sent == []


async def test_a_failed_send_is_retried_later_and_the_rest_waits_behind_it(
    db: Database,
) -> None:
    ids = await enqueue(db, "D", "d1", "d2", "d3")
    bot = ScriptedMessenger()
    bot.script["d2"] = raise_(DeliveryError("HTTP 502"))
    clock = FrozenClock(NOW)
    assert await delivery(db, bot, clock).deliver(ids) == 1
    stored = await rows(db)
    d1, d2, d3 = (stored[i] for i in ids)
    assert d1.status == "sent"
    assert (d2.status, d2.attempts, d2.last_error) == ("pending", 1, "HTTP 502")
    assert d2.available_at == NOW + timedelta(seconds=1)
    assert (d3.status, d3.attempts, d3.lease_owner) == ("pending", 0, None)
    assert await delivery(db, bot, clock).relay_due() == 0  # d3 waits behind d2
    clock.advance(timedelta(seconds=1))
    assert await delivery(db, bot, clock).relay_due() == 2
    assert [text for _, text in bot.sent] == ["d1", "d2", "d3"]


async def test_a_message_that_can_never_go_is_given_up_and_the_next_one_goes(
    db: Database,
) -> None:
    ids = await enqueue(db, "E", "e1", "e2")
    bot = ScriptedMessenger()
    bot.script["e1"] = raise_(DeliveryError("400 Bad Request", permanent=True))
    assert await delivery(db, bot, FrozenClock(NOW)).deliver(ids) == 1
    stored = await rows(db)
    assert [stored[i].status for i in ids] == ["dead", "sent"]


async def test_a_message_failing_every_time_is_given_up_after_the_last_attempt(
    db: Database,
) -> None:
    [only] = await enqueue(db, "F", "f1")
    async with db.engine.begin() as conn:
        await conn.execute(update(t.outbox).values(attempts=MAX_ATTEMPTS - 1))
    bot = ScriptedMessenger()
    bot.script["f1"] = raise_(DeliveryError("HTTP 500"))
    await delivery(db, bot, FrozenClock(NOW)).deliver([only])
    assert (await rows(db))[only].status == "dead"


async def test_a_chat_that_blocked_the_bot_loses_its_queue_until_it_writes_again(
    db: Database,
) -> None:
    ids = await enqueue(db, "G", "g1", "g2")
    bot = ScriptedMessenger()
    bot.script["g1"] = raise_(ChatUnreachable("blocked by the user"))
    clock = FrozenClock(NOW)
    assert await delivery(db, bot, clock).deliver(ids) == 0
    assert {r.status for r in (await rows(db)).values()} == {"dead"}
    later = await enqueue(db, "G", "g3")
    assert await delivery(db, bot, clock).relay_due() == 0
    assert (await rows(db))[later[0]].status == "dead"
    # The user writes again: the reply to that goes out.
    answer = await enqueue(db, "G", "g4")
    assert await delivery(db, bot, clock).deliver(answer, chat_spoke=True) == 1
    assert bot.sent == [("G", "g4")]


async def test_our_own_throttling_costs_no_attempt(db: Database) -> None:
    [only] = await enqueue(db, "H", "h1")
    bot = ScriptedMessenger()
    bot.script["h1"] = raise_(Throttled(retry_after=7))
    await delivery(db, bot, FrozenClock(NOW)).deliver([only])
    row = (await rows(db))[only]
    assert (row.status, row.attempts, row.available_at) == (
        "pending",
        0,
        NOW + timedelta(seconds=7),
    )


async def test_an_adapter_bug_does_not_lose_the_message(db: Database) -> None:
    [only] = await enqueue(db, "I", "i1")
    bot = ScriptedMessenger()
    bot.script["i1"] = raise_(KeyError("oops"))
    await delivery(db, bot, FrozenClock(NOW)).deliver([only])
    row = (await rows(db))[only]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "KeyError")


async def test_a_channel_without_a_messenger_keeps_its_messages(db: Database) -> None:
    async with db.uow() as uow:
        [only] = await uow.outbox.enqueue_replies("line", "U1", [TextReply("x")], NOW)
        await uow.commit()
    await delivery(db, ScriptedMessenger(), FrozenClock(NOW)).deliver([only])
    assert (await rows(db))[only].status == "pending"


async def test_the_relay_leaves_a_channel_it_cannot_send_to_for_a_process_that_can(
    db: Database,
) -> None:
    async with db.uow() as uow:
        [only] = await uow.outbox.enqueue_replies("line", "U2", [TextReply("x")], NOW)
        await uow.commit()
    assert await delivery(db, ScriptedMessenger(), FrozenClock(NOW)).relay_due() == 0
    row = (await rows(db))[only]
    assert (row.status, row.attempts) == ("pending", 0)


async def test_the_relay_leaves_a_fresh_reply_to_the_web_process_sending_it(
    db: Database,
) -> None:
    await enqueue(db, "L", "l1")
    bot = ScriptedMessenger()
    clock = FrozenClock(NOW + timedelta(seconds=1))
    grace = timedelta(seconds=2)
    assert await delivery(db, bot, clock).relay_due(grace=grace) == 0
    clock.set(NOW + grace)
    assert await delivery(db, bot, clock).relay_due(grace=grace) == 1


async def test_a_send_cancelled_at_shutdown_hands_its_messages_back(db: Database) -> None:
    ids = await enqueue(db, "J", "j1", "j2")
    stuck = ScriptedMessenger()
    stuck.gate = asyncio.Event()  # never opens
    task = asyncio.create_task(delivery(db, stuck, FrozenClock(NOW)).deliver(ids))
    await stuck.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = await rows(db)
    assert {(r.status, r.lease_owner) for r in stored.values()} == {("pending", None)}
    bot = ScriptedMessenger()
    assert await delivery(db, bot, FrozenClock(NOW)).relay_due() == 2


async def test_the_relay_serves_many_chats_in_one_pass(db: Database) -> None:
    for n in range(30):
        await enqueue(db, f"K{n}", f"k{n}-1", f"k{n}-2")
    bot = ScriptedMessenger()
    assert await delivery(db, bot, FrozenClock(NOW)).relay_due() == 60
    for n in range(30):
        assert [x for c, x in bot.sent if c == f"K{n}"] == [f"k{n}-1", f"k{n}-2"]


# --- the worker ------------------------------------------------------------------------------


async def test_expired_media_is_purged_by_the_cleanup_job(db: Database) -> None:
    async with db.uow() as uow:
        old = await uow.media.put(
            b"qr", filename="qr.png", mime_type="image/png", now=NOW, expires_at=NOW
        )
        fresh = await uow.media.put(
            b"qr",
            filename="qr.png",
            mime_type="image/png",
            now=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        await uow.commit()

    class Container:
        def __init__(self) -> None:
            self.db = db
            self.clock = FrozenClock(NOW)

    assert await purge_expired_media(Container()) == 1  # type: ignore[arg-type]
    async with db.uow() as uow:
        assert await uow.media.get(old, NOW - timedelta(seconds=1)) is None
        assert await uow.media.get(fresh, NOW) is not None


def test_a_job_is_a_name_an_interval_and_a_coroutine_function() -> None:
    async def reminders(container: object) -> int:
        return 0

    job = Job("bill-reminders", 3600, reminders)
    assert (job.name, job.interval, job.run) == ("bill-reminders", 3600, reminders)


# --- Telegram's pacing -----------------------------------------------------------------------


def test_the_rate_limiter_allows_short_bursts_per_chat_then_one_a_second() -> None:
    now = [100.0]
    limiter = SendRateLimiter(overall=30, per_chat=1, chat_burst=3, clock=lambda: now[0])
    waits = [limiter.reserve_chat("chat") for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(1.0) and waits[4] == pytest.approx(2.0)
    assert limiter.reserve_chat("another chat") == 0  # other chats are not held up


def test_the_rate_limiter_keeps_the_overall_rate() -> None:
    now = [100.0]
    limiter = SendRateLimiter(overall=30, per_chat=1, clock=lambda: now[0])
    waits = [limiter.reserve_overall() for _ in range(60)]
    assert waits[:30] == [0] * 30  # a second's worth at once
    assert waits[59] == pytest.approx(30 / 30, abs=0.05)


def test_a_wait_longer_than_allowed_sends_the_message_back_to_the_outbox() -> None:
    limiter = SendRateLimiter(overall=30, per_chat=1, chat_burst=1, max_wait=2, clock=lambda: 0.0)
    for _ in range(3):
        limiter.reserve_chat("chat")
    with pytest.raises(Throttled) as caught:
        limiter.reserve_chat("chat")
    assert caught.value.retry_after == pytest.approx(3.0)


async def test_a_failing_job_does_not_stop_the_others_and_stop_ends_the_worker(
    database_url: str, keyring_path: Path
) -> None:
    settings = await asyncio.to_thread(
        load_settings, database_url=database_url, keyring_file=keyring_path, env="test"
    )
    await migrate.upgrade(database_url)
    container = await bootstrap.build(settings)
    ran: list[str] = []

    async def broken(c: Container) -> None:
        raise RuntimeError("boom")

    async def counting(c: Container) -> int:
        ran.append("counting")
        return 3

    jobs = [Job("broken", 3600, broken), Job("counting", 3600, counting)]
    try:
        await Worker(container, jobs=jobs).run(once=True)
        assert ran == ["counting"]
        worker = Worker(container, jobs=jobs)
        running = asyncio.create_task(worker.run())
        while len(ran) < 2:  # noqa: ASYNC110 - the job itself reports it ran
            await asyncio.sleep(0.01)
        worker.stop()
        async with asyncio.timeout(30):
            await running
    finally:
        await container.close()
