"""``kill -9`` of a web process in the middle of load: once Telegram's retries are done,
every update was handled exactly once and every chat got its replies, in order.

Two ``selfcare serve`` processes and a worker on PostgreSQL; twenty chats talk at once
through a sender that behaves like Telegram (a round-robin balancer in front of both
processes, every refused update retried). A third of the way in, one process is killed
with SIGKILL, and started again a while later. A reply may come twice only if it was on
the wire when the process died (Telegram has no idempotency key: at least once, never
lost): the replies claimed for sending at the kill bound the duplicates.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from storage.uow import Database
from tests.faults.harness import (
    SCRIPT,
    compare_transcripts,
    deployment,
    fault_env,
    inbox_update_ids,
    leased_replies,
    summarize,
    transcript,
    unexpected_attempts,
    wait_all_sent,
)
from tests.faults.sender import TelegramLikeSender
from tests.integration.channels_support import SECRET
from tests.stubs.telegram import TelegramStub

CONTROL_CHAT = 710_000
CHATS = range(710_001, 710_021)


async def test_killing_a_web_process_mid_load_loses_no_update_and_no_reply(
    db: Database, cli_env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> None:
    env = fault_env(cli_env, tg, outbox_lease_seconds="10", worker_poll_seconds="0.2")
    async with deployment(env, tmp_path, web=2, workers=1) as running:
        sender = TelegramLikeSender(running.urls, SECRET)
        await sender.run({CONTROL_CHAT: SCRIPT})  # no fault: what every chat must get
        await wait_all_sent(db)
        control = transcript(tg, CONTROL_CHAT)
        assert len(control) > len(SCRIPT)  # /start answers with the notice and a greeting
        assert len(set(control)) == len(control), "the script's replies must all differ"

        total = len(SCRIPT) * (1 + len(CHATS))
        load = asyncio.create_task(sender.run({chat: SCRIPT for chat in CHATS}))
        try:
            await sender.wait_accepted(len(SCRIPT) + total // 3)
            victim = running.web[0]
            assert victim is not None
            await running.kill(victim)
            killed_at = len(sender.accepted)
            # What the dead process had claimed and not recorded as sent: the only
            # replies that may reach a chat twice.
            in_flight = await leased_replies(db)
            await running.start_web(0)  # the platform restarts it
            restarted_at = len(sender.accepted)
            await load
        finally:
            load.cancel()
        # The restarted process serves again (an update sent to it alone).
        again = TelegramLikeSender(running.urls[:1], SECRET, first_update_id=100_000)
        await again.run({CONTROL_CHAT: ["/help"]})
        statuses = await wait_all_sent(db)

    attempts = sender.attempts
    check = compare_transcripts(tg, control, CHATS, allowed_twice=in_flight)
    print(
        f"\nkilled after {killed_at}/{total} updates accepted; restarted after {restarted_at}; "
        f"attempts {len(attempts)} ({summarize(attempts)}); "
        f"replies leased at the kill: {sum(map(len, in_flight.values()))}; "
        f"sent twice: {check.duplicate_count} ({check.describe()}); outbox {dict(statuses)}"
    )
    assert check.problems == []
    assert unexpected_attempts(attempts) == []
    assert any(a.status is None for a in attempts), "the kill was seen by the platform"
    assert [a.status for a in again.attempts] == [200]
    # Every update handled exactly once.
    handled = Counter(await inbox_update_ids(db))
    assert set(handled) == set(sender.update_ids() + again.update_ids())
    assert set(handled.values()) == {1}
    # Every reply sent (none given up); the platform got each once, but for the repeats.
    assert set(statuses) == {"sent"}
    assert len(tg.sent()) == statuses["sent"] + check.duplicate_count
