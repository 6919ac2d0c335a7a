"""SIGTERM, the polite stop (a deploy, a scale-down): nothing lost, nothing twice.

A web process stops taking connections, answers every request it had already read,
sends (or hands back) the replies it committed, and exits within
``SELFCARE_SHUTDOWN_TIMEOUT_SECONDS``. A worker stopped while it relays a backlog finishes
the sends on the wire, hands back what it claimed and did not send, and exits within the
same time; the next worker sends the rest, none of it twice.

To have requests truly in flight at the signal, the test holds them inside the handler:
its own open transaction has inserted their update ids into the inbox, so the server's
insert of the same ids waits on PostgreSQL's unique index until the test rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from core.chat import TextReply
from storage import tables as t
from storage.uow import Database
from tests.faults.harness import (
    SCRIPT,
    Stopwatch,
    compare_transcripts,
    deployment,
    fault_env,
    inbox_update_ids,
    outbox_statuses,
    summarize,
    transcript,
    unexpected_attempts,
    wait_all_sent,
)
from tests.faults.sender import WEBHOOK_PATH, TelegramLikeSender
from tests.integration.channels_support import SECRET, Process, insecure_client_context
from tests.stubs import telegram as updates
from tests.stubs.telegram import TelegramStub

#: SELFCARE_SHUTDOWN_TIMEOUT_SECONDS for these tests, and what an exit may take beyond it
#: (interpreter and connection teardown on a loaded machine).
GRACE_SECONDS = 20
EXIT_MARGIN_SECONDS = 20
WAIT_SECONDS = 60

CONTROL_CHAT = 720_000
CHATS = range(720_001, 720_017)
HELD_CHATS = range(720_101, 720_109)
HELD_FIRST_UPDATE_ID = 500_000


class HeldUpdates:
    """Watches the server connections stuck behind the test's transaction."""

    def __init__(self, db: Database, pid: int) -> None:
        self._db = db
        self._pid = pid

    async def waiting(self) -> int:
        """How many server connections wait on the test's transaction."""
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
        )
        async with self._db.engine.connect() as conn:
            return int((await conn.execute(query, {"pid": self._pid})).scalar_one())

    async def wait_waiting(self, count: int) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while await self.waiting() < count:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.05)  # the server process is getting there


@contextlib.asynccontextmanager
async def held_in_handler(db: Database, update_ids: list[int]) -> AsyncIterator[HeldUpdates]:
    """Updates whose handling waits, inside the server, until the block ends."""
    async with db.engine.connect() as conn:
        transaction = await conn.begin()
        now = datetime.now(UTC)
        await conn.execute(
            t.inbox.insert(),
            [{"channel": "telegram", "event_id": str(i), "received_at": now} for i in update_ids],
        )
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        try:
            yield HeldUpdates(db, int(pid))
        finally:
            await transaction.rollback()  # the held handlers go on as if nothing happened


async def post_update(session: aiohttp.ClientSession, url: str, update: dict[str, object]) -> int:
    """One delivery, no retry: the status, or raises what the connection did."""
    async with session.post(
        url + WEBHOOK_PATH,
        data=json.dumps(update),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
    ) as response:
        return response.status


async def wait_refused(port: int) -> None:
    """Wait until nothing listens on ``port`` any more (a connection is refused)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.05)


async def exit_code(process: Process) -> int:
    async with asyncio.timeout(GRACE_SECONDS + EXIT_MARGIN_SECONDS):
        code = await process.process.wait()
    await process.reader
    return code


async def duplicates_seen(url: str) -> float:
    """Updates a web process found already handled (a platform's repeat delivery)."""
    connector = aiohttp.TCPConnector(ssl=insecure_client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url + "/metrics") as response:
            body = await response.text()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "selfcare_updates_total" and sample.labels == {
                "channel": "telegram",
                "outcome": "duplicate",
            }:
                return sample.value
    return 0.0


async def chat_statuses(db: Database, chats: range) -> Counter[str]:
    o = t.outbox.c
    async with db.engine.connect() as conn:
        query = (
            select(o.status, func.count())
            .where(o.chat_id.in_([str(c) for c in chats]))
            .group_by(o.status)
        )
        return Counter({row[0]: int(row[1]) for row in await conn.execute(query)})


async def test_sigterm_lets_a_web_process_answer_what_it_read_and_lose_nothing(
    db: Database, cli_env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> None:
    env = fault_env(
        cli_env, tg, shutdown_timeout_seconds=str(GRACE_SECONDS), worker_poll_seconds="0.2"
    )
    async with deployment(env, tmp_path, web=2, workers=1) as running:
        sender = TelegramLikeSender(running.urls, SECRET)
        await sender.run({CONTROL_CHAT: SCRIPT})  # no fault: what every chat must get
        await wait_all_sent(db)
        control = transcript(tg, CONTROL_CHAT)
        assert len(set(control)) == len(control), "the script's replies must all differ"

        victim = running.web[0]
        assert victim is not None
        victim_url, survivor_url = running.urls
        total = len(SCRIPT) * (1 + len(CHATS))
        held_ids = [HELD_FIRST_UPDATE_ID + n for n in range(len(HELD_CHATS))]
        load = asyncio.create_task(sender.run({chat: SCRIPT for chat in CHATS}))
        connector = aiohttp.TCPConnector(ssl=insecure_client_context(), limit=0)
        try:
            await sender.wait_accepted(len(SCRIPT) + total // 3)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with held_in_handler(db, held_ids) as held:
                    in_flight = [
                        asyncio.create_task(
                            post_update(
                                session, victim_url, updates.text(chat, SCRIPT[0], update_id)
                            )
                        )
                        for chat, update_id in zip(HELD_CHATS, held_ids, strict=True)
                    ]
                    await held.wait_waiting(len(in_flight))
                    tg.delay = 0.3  # the held updates' replies are still on the wire at the stop
                    signalled = Stopwatch()
                    victim.process.send_signal(signal.SIGTERM)
                    await victim.wait_for("selfcare: stopping", WAIT_SECONDS)
                    # It stopped listening while the requests it read are still in its hands.
                    await wait_refused(running.ports[0])
                    assert await held.waiting() == len(in_flight)
                    held_for = signalled.seconds
                answers = await asyncio.gather(*in_flight, return_exceptions=True)
            code = await exit_code(victim)
            stop_seconds = signalled.seconds
            held_replies = await chat_statuses(db, HELD_CHATS)
            tg.delay = 0
            await load
        finally:
            load.cancel()
        # The held chats go on with their script, on the process that still runs.
        await sender.run({chat: SCRIPT[1:] for chat in HELD_CHATS})
        statuses = await wait_all_sent(db)
        survivor_duplicates = await duplicates_seen(survivor_url)

    check = compare_transcripts(tg, control, [*CHATS, *HELD_CHATS])
    print(
        f"\nSIGTERM after {total // 3} updates; held {len(in_flight)} requests for "
        f"{held_for:.1f}s; exit {code} after {stop_seconds:.1f}s (grace {GRACE_SECONDS}s); "
        f"held chats' replies at exit {dict(held_replies)}; attempts {len(sender.attempts)} "
        f"({summarize(sender.attempts)}); sent twice: {check.duplicate_count}; "
        f"outbox {dict(statuses)}"
    )
    # Every request it had read got its answer; it exited cleanly, in time.
    assert answers == [200] * len(in_flight), victim.text
    assert code == 0, victim.text
    assert stop_seconds < GRACE_SECONDS + EXIT_MARGIN_SECONDS
    # The replies it committed went out before it exited, or were handed back: none leased.
    assert held_replies["sending"] == 0
    assert held_replies["sent"] + held_replies["pending"] == 2 * len(HELD_CHATS)
    # The platform saw refusals only, and no update it was refused had been handled.
    assert unexpected_attempts(sender.attempts) == []
    assert survivor_duplicates == 0
    handled = Counter(await inbox_update_ids(db))
    assert set(handled) == set(sender.update_ids()) | set(held_ids)
    assert set(handled.values()) == {1}
    # Nothing lost, nothing twice, in order.
    assert check.problems == []
    assert check.duplicate_count == 0
    assert set(statuses) == {"sent"}
    assert len(tg.sent()) == statuses["sent"]


async def test_sigterm_lets_the_worker_finish_its_sends_and_hand_back_the_rest(
    db: Database, cli_env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> None:
    chats = [str(c) for c in range(730_001, 730_041)]
    per_chat = 8
    now = datetime.now(UTC)
    async with db.uow() as uow:  # a backlog, as web processes that crashed leave it
        for chat in chats:
            replies = [TextReply(f"ข้อความ {n} ถึง {chat}") for n in range(per_chat)]
            await uow.outbox.enqueue_replies("telegram", chat, replies, now)
        await uow.commit()
    backlog = len(chats) * per_chat
    tg.delay = 0.2  # a slow Bot API: the relay is mid-backlog when the signal comes
    env = fault_env(cli_env, tg, shutdown_timeout_seconds=str(GRACE_SECONDS))
    async with deployment(env, tmp_path, web=0, workers=1) as running:
        [first] = running.workers
        await tg.wait_until(lambda: len(tg.sent()) >= backlog // 10, within=WAIT_SECONDS)
        signalled = Stopwatch()
        first.process.send_signal(signal.SIGTERM)
        code = await exit_code(first)
        stop_seconds = signalled.seconds
        sent_by_first = len(tg.sent())
        after_first = await outbox_statuses(db)
        tg.delay = 0
        await running.start_worker()
        statuses = await wait_all_sent(db)

    texts = Counter(call.text for call in tg.sent())
    print(
        f"\nworker stopped after {stop_seconds:.1f}s (grace {GRACE_SECONDS}s), exit {code}; "
        f"it sent {sent_by_first}/{backlog}, left {dict(after_first)}; "
        f"sent twice: {sum(texts.values()) - len(texts)}"
    )
    assert code == 0, first.text
    assert stop_seconds < GRACE_SECONDS + EXIT_MARGIN_SECONDS
    assert after_first["sending"] == 0  # nothing left leased to a process that is gone
    assert after_first["pending"] > 0, "the signal came mid-backlog"
    assert statuses == Counter({"sent": backlog})
    assert set(texts.values()) == {1}, "a graceful stop sends nothing twice"
    for chat in chats:
        assert [c.text for c in tg.sent(chat)] == [f"ข้อความ {n} ถึง {chat}" for n in range(per_chat)]
