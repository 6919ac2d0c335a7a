"""The outbox relay and the campaign sender (both in ``selfcare worker``) killed and
restarted again and again — SIGKILL and SIGTERM in turn, at random moments mid-send — on
PostgreSQL, against the Telegram and LINE stubs (slowed down, so every stop lands on
requests in flight).

What must hold (bot/delivery.py, bot/broadcast.py):

- Outbox: nothing lost, every chat's replies in order. LINE exactly once (a repeat carries
  the same ``X-Line-Retry-Key`` and LINE drops it). Telegram at least once: a message is
  sent again only if it was on the wire (the first message its chat had leased) when a
  worker was SIGKILLed — never because of a SIGTERM, which finishes or hands back what it
  claimed.
- Campaigns: nobody gets a promotion twice. LINE recipients get it exactly once; a
  Telegram recipient who did not get it was in flight at a SIGKILL and is marked "outcome
  unknown"; a SIGTERM loses nobody. Every recipient row ends settled, and a customer who
  opts out mid-campaign is not sent to afterwards.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.bootstrap import SystemClock
from bot.broadcast import BroadcastSettings
from bot.delivery import RELAY_CONCURRENCY
from core.chat import TextReply
from core.domain import CampaignStatus, Channel, DeliveryStatus
from core.services.campaigns import CampaignService
from storage import tables as t
from storage.tables_staff import campaign_deliveries as rows
from storage.uow import Database
from tests.faults.worker_support import Round, describe, fault_seed, restart_rounds
from tests.integration.broadcast_support import (
    Audience,
    Recipient,
    add_customer,
    create_campaign,
    line_chat,
    record_consent,
    telegram_chat,
)
from tests.integration.channels_support import Process, channel_env, line_api_stub
from tests.stubs.broadcast_line import BroadcastLineStub
from tests.stubs.broadcast_telegram import BroadcastTelegramStub
from tests.stubs.line import LineStub
from tests.stubs.telegram import TelegramStub

pytestmark = [pytest.mark.slow, pytest.mark.faults]

TELEGRAM = Channel.TELEGRAM.value
LINE = Channel.LINE.value
#: Workers killed or stopped before the one that is let finish.
ROUNDS = 4


# --- the outbox relay ----------------------------------------------------------------------

OUTBOX_CHATS = 15  # per channel
OUTBOX_MESSAGES = 10  # per chat
OUTBOX_ENV = {
    "SELFCARE_OUTBOX_LEASE_SECONDS": "5",  # the shortest allowed: a dead worker's claims free up
    "SELFCARE_WORKER_POLL_SECONDS": "0.2",
    "SELFCARE_SHUTDOWN_TIMEOUT_SECONDS": "30",  # never reached: a SIGTERM takes a second or so
    "SELFCARE_TELEGRAM_MESSAGES_PER_SECOND": "1000",  # the stub's slowness paces the test
}


@pytest.fixture
async def line() -> AsyncIterator[LineStub]:
    async with line_api_stub() as stub:
        yield stub


async def enqueue_backlog(db: Database) -> tuple[dict[tuple[str, str], list[str]], dict[str, int]]:
    """A backlog as web processes leave it when they die after their commits: every
    chat's messages (chat → texts, in order) and each text's outbox id."""
    chats = [(TELEGRAM, telegram_chat()) for _ in range(OUTBOX_CHATS)]
    chats += [(LINE, line_chat()) for _ in range(OUTBOX_CHATS)]
    # Committed long enough ago that the relay does not leave them to a web process.
    at = datetime.now(UTC) - timedelta(minutes=1)
    script: dict[tuple[str, str], list[str]] = {chat: [] for chat in chats}
    ids: dict[str, int] = {}
    async with db.uow() as uow:
        for n in range(OUTBOX_MESSAGES):
            for number, (channel, chat_id) in enumerate(chats):
                text = f"แชต {channel} {number} ข้อความ {n}"
                [ids[text]] = await uow.outbox.enqueue_replies(
                    channel, chat_id, [TextReply(text)], at
                )
                script[(channel, chat_id)].append(text)
        await uow.commit()
    return script, ids


async def outbox_by_status(db: Database) -> dict[str, set[int]]:
    async with db.engine.connect() as conn:
        found = await conn.execute(select(t.outbox.c.status, t.outbox.c.id))
    by_status: dict[str, set[int]] = {}
    for status, row_id in found:
        by_status.setdefault(status, set()).add(row_id)
    return by_status


async def outbox_leases(db: Database) -> set[tuple[int, str]]:
    """(message id, lease owner) of every leased message (one owner per claim)."""
    async with db.engine.connect() as conn:
        found = await conn.execute(
            select(t.outbox.c.id, t.outbox.c.lease_owner).where(t.outbox.c.status == "sending")
        )
        return {(row_id, owner) for row_id, owner in found}


def telegram_texts(stub: TelegramStub, chat_id: str) -> list[str]:
    return [call.text for call in stub.sent(chat_id)]


def line_texts(stub: LineStub, chat_id: str) -> list[str]:
    return [m["text"] for m in stub.messages_to(chat_id, {})]


async def test_outbox_relay_killed_and_restarted_loses_nothing_and_keeps_order(
    db: Database, cli_env: dict[str, str], tg: TelegramStub, line: LineStub, tmp_path: Path
) -> None:
    seed = fault_seed()
    script, ids = await enqueue_backlog(db)
    tg.delay = 0.2  # a chat's 10 messages take 2 s: every stop lands mid-claim
    line.delay = 0.4  # LINE took the push, the worker has not heard back yet
    env = channel_env(cli_env, telegram=tg, line=line) | OUTBOX_ENV
    chat_of = {ids[text]: chat for chat, texts in script.items() for text in texts}
    leased_at_kill: list[set[tuple[int, str]]] = []  # (message, claim) leased at each SIGKILL
    # The first message of each claim the killed worker held: the one that may have been
    # on the wire (the ones before it were marked sent), the only one that may reach
    # Telegram twice.
    on_the_wire: list[set[int]] = []

    async def after(round_: Round, worker: Process) -> None:
        leased = await outbox_leases(db)
        earlier = set().union(*leased_at_kill)
        if round_.hard:
            first: dict[tuple[str, str], int] = {}
            for row_id, _ in sorted(leased - earlier):  # the dead worker's own claims
                first.setdefault(chat_of[row_id], row_id)
            leased_at_kill.append(leased)
            on_the_wire.append(set(first.values()))
        else:
            # A SIGTERM finishes or hands back what it claimed: what is still leased
            # is a killed worker's claim whose lease is not over yet.
            assert leased <= earlier, "a stopped worker left messages leased"

    async def all_sent() -> bool:
        return set(await outbox_by_status(db)) == {"sent"}

    def requests() -> int:
        return len(tg.sent()) + sum(1 for c in line.calls if c.kind == "push")

    history = await restart_rounds(
        env,
        tmp_path,
        seed=seed,
        rounds=ROUNDS,
        requests=requests,
        done=all_sent,
        after=after,
    )

    duplicates: Counter[str] = Counter()
    for (channel, chat_id), texts in script.items():
        if channel == LINE:
            # Exactly once and in order: a push repeated after a kill was refused (409).
            assert line_texts(line, chat_id) == texts
            continue
        got = telegram_texts(tg, chat_id)
        assert list(dict.fromkeys(got)) == texts, "lost or out of order"
        for text, times in Counter(got).items():
            if times > 1:
                duplicates[text] = times - 1
                kills = sum(ids[text] in wire for wire in on_the_wire)
                assert times - 1 <= kills, f"sent {times} times, on the wire at {kills} kills"
    # A SIGTERM let the sends on the wire finish and started none (one per chat at most).
    for round_ in history:
        assert round_.after_stopping <= RELAY_CONCURRENCY, round_
    repeated_pushes = sum(1 for c in line.calls if c.kind == "push" and c.status == 409)
    print(
        f"\noutbox relay, seed {seed}: {len(history)} rounds ({describe(history)}) + 1 to finish; "
        f"{sum(r.hard for r in history)} SIGKILLs leased "
        f"{[len(leased) for leased in leased_at_kill]} messages "
        f"(at most {[len(w) for w in on_the_wire]} on the wire); "
        f"Telegram duplicates {sum(duplicates.values())} of {len(script) // 2 * OUTBOX_MESSAGES} "
        f"({len(duplicates)} messages); LINE pushes refused as repeats: {repeated_pushes}"
    )
    assert any(leased_at_kill), "no SIGKILL caught a worker mid-send: nothing was tested"


# --- the campaign sender -------------------------------------------------------------------

CAMPAIGN_ENV = {
    "SELFCARE_BROADCAST_TELEGRAM_PER_SECOND": "40",
    "SELFCARE_LINE_MULTICAST_BATCH_SIZE": "4",
    "SELFCARE_BROADCAST_LEASE_SECONDS": "2",
    "SELFCARE_SHUTDOWN_TIMEOUT_SECONDS": "30",
}
#: Per channel, customers who withdraw their consent mid-campaign (LINE: if any is left; a
#: worker claims all of LINE's rows at once).
OPT_OUTS = 4


@pytest.fixture
async def bulk_telegram() -> AsyncIterator[BroadcastTelegramStub]:
    stub = BroadcastTelegramStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


@pytest.fixture
async def bulk_line() -> AsyncIterator[BroadcastLineStub]:
    stub = BroadcastLineStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


async def build_audience(db: Database) -> Audience:
    """~300 opted-in recipient chats: Telegram only, LINE only, both; and a few customers
    without consent (no row at all)."""
    audience = Audience()
    for channels, many in (([TELEGRAM], 130), ([LINE], 110), ([TELEGRAM, LINE], 30)):
        for first in range(0, many, 10):
            group = (add_customer(db, channels=channels) for _ in range(min(10, many - first)))
            audience.opted_in.extend(await asyncio.gather(*group))
    for _ in range(5):
        audience.others.append(await add_customer(db, channels=[TELEGRAM, LINE], consents=[]))
    return audience


@dataclass(frozen=True)
class Delivery:
    """One recipient row of the campaign."""

    channel: str
    chat_id: str
    status: DeliveryStatus
    error: str | None
    claimed_by: str | None
    lease_until: datetime | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.channel, self.chat_id)

    @property
    def leased(self) -> bool:
        return self.status in (DeliveryStatus.CLAIMED, DeliveryStatus.SENDING)


async def deliveries(db: Database, campaign_id: str) -> list[Delivery]:
    async with db.engine.connect() as conn:
        found = await conn.execute(
            select(
                rows.c.channel,
                rows.c.chat_id,
                rows.c.status,
                rows.c.error,
                rows.c.claimed_by,
                rows.c.lease_until,
            ).where(rows.c.campaign_id == campaign_id, rows.c.preview.is_(False))
        )
        return [
            Delivery(ch, chat, DeliveryStatus(st), err, by, until)
            for ch, chat, st, err, by, until in found
        ]


async def test_campaign_worker_killed_and_restarted_messages_nobody_twice(
    db: Database,
    cli_env: dict[str, str],
    bulk_telegram: BroadcastTelegramStub,
    bulk_line: BroadcastLineStub,
    tmp_path: Path,
) -> None:
    seed = fault_seed()
    audience = await build_audience(db)
    clock = SystemClock()
    campaign = await create_campaign(db, clock)
    service = CampaignService(db.uow, clock)
    await service.schedule(campaign.id, actor="test")
    bulk_telegram.delay = 0.1  # ~4 s of Telegram sends at 40/s, 8 in flight
    bulk_line.delay = 0.5  # LINE took the multicast, the worker has not heard back yet
    env = channel_env(cli_env, telegram=bulk_telegram, line=bulk_line) | CAMPAIGN_ENV
    in_flight_at_kill: set[tuple[str, str]] = set()  # Telegram/LINE rows `sending` at a SIGKILL
    leased_at_kill: list[int] = []
    opted_out: list[Recipient] = []

    async def after(round_: Round, worker: Process) -> None:
        found = await deliveries(db, campaign.id)
        if round_.hard:
            leased_at_kill.append(sum(d.leased for d in found))
            in_flight_at_kill.update(d.key for d in found if d.status is DeliveryStatus.SENDING)
        else:
            # SIGTERM: the worker finished or handed back everything it held — except a
            # LINE request in doubt since a kill that it had no time to resend: that one
            # is left due now, for a takeover with the same retry key.
            pid = f":{worker.process.pid}:"
            now = datetime.now(UTC)
            held = [d for d in found if d.leased and pid in (d.claimed_by or "")]
            handed_over = [
                d
                for d in held
                if d.channel == LINE
                and d.status is DeliveryStatus.SENDING
                and d.key in in_flight_at_kill
                and d.lease_until is not None
                and d.lease_until <= now
            ]
            assert held == handed_over, f"a stopped worker left {len(held)} rows leased"
        if round_.number == 1:
            # Between two workers: customers whose rows were not handed to the platform
            # yet (queued, or claimed by the dead worker: queued again later) opt out.
            unsent = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED)
            queued = {d.key for d in found if d.status in unsent}
            now = datetime.now(UTC)
            for channel in (TELEGRAM, LINE):
                single = [r for r in audience.opted_in if list(r.chats) == [channel]]
                chosen = [r for r in single if (channel, r.chats[channel]) in queued][:OPT_OUTS]
                for recipient in chosen:
                    await record_consent(db, recipient.customer_id, False, now)
                opted_out.extend(chosen)

    async def campaign_done() -> bool:
        report = await service.report(campaign.id)
        return report.campaign.status is CampaignStatus.DONE

    def requests() -> int:
        return len(bulk_telegram.sent()) + len(bulk_line.multicasts)

    history = await restart_rounds(
        env,
        tmp_path,
        seed=seed,
        rounds=ROUNDS,
        requests=requests,
        done=campaign_done,
        after=after,
    )

    found = await deliveries(db, campaign.id)
    status_of = {d.key: d.status for d in found}
    error_of = {d.key: d.error for d in found}
    out = {(ch, chat) for r in opted_out for ch, chat in r.chats.items()}
    assert out, "nobody was left to opt out after round 1"
    line_chats = audience.chats(LINE)
    telegram_chats = audience.chats(TELEGRAM)
    everyone = {(LINE, c) for c in line_chats} | {(TELEGRAM, c) for c in telegram_chats}
    assert set(status_of) == everyone, "one row per opted-in chat, none for the others"

    # LINE: exactly once (a multicast cut off by a kill went again with its retry key).
    expected_line = {c: 1 for c in line_chats if (LINE, c) not in out}
    assert dict(bulk_line.per_user()) == expected_line
    # Telegram: at most once; whoever did not get it was in flight at a SIGKILL.
    got = bulk_telegram.per_chat()
    assert max(got.values()) == 1, "someone was messaged twice"
    missing = {c for c in telegram_chats if not got[c] and (TELEGRAM, c) not in out}
    unknown = {key for key, status in status_of.items() if status is DeliveryStatus.FAILED}
    assert {(TELEGRAM, c) for c in missing} <= unknown
    assert unknown <= in_flight_at_kill, "given up without a SIGKILL mid-send"
    assert all((error_of[key] or "").startswith("outcome unknown") for key in unknown)
    assert not {key for key in unknown if key[0] == LINE}, "LINE requests are resent, not given up"
    # Opted out between two workers: not sent to, and the row says why.
    assert not {c for c in got if (TELEGRAM, c) in out}
    assert {status_of[key] for key in out} == {DeliveryStatus.SKIPPED_NO_CONSENT}
    # Every other row was sent, and the platform saw each of those.
    sent = {key for key, status in status_of.items() if status is DeliveryStatus.SENT}
    assert sent | unknown | out == set(status_of)
    assert {c for ch, c in sent if ch == TELEGRAM} <= set(got)
    report = await service.report(campaign.id)
    assert report.total == len(status_of) and report.pending == 0
    assert report.counts[DeliveryStatus.SENT] == len(sent)

    # A SIGTERM let the requests on the wire finish and launched none.
    in_flight = 2 * BroadcastSettings().concurrency  # requests at once, per channel
    for round_ in history:
        assert round_.after_stopping <= in_flight, round_
    repeats = sum(1 for m in bulk_line.multicasts if m.status == 409)
    print(
        f"\ncampaign, seed {seed}: {len(history)} rounds ({describe(history)}) + 1 to finish; "
        f"SIGKILLs left {leased_at_kill} rows leased, {len(in_flight_at_kill)} in flight; "
        f"{len(status_of)} recipients: {len(sent)} sent, {len(unknown)} outcome unknown "
        f"({len(missing)} of them never reached), {len(out)} opted out; "
        f"LINE multicasts refused as repeats: {repeats}"
    )
    assert any(leased_at_kill), "no SIGKILL caught the worker mid-campaign: nothing was tested"
