"""Conversation state, inbox and outbox on both engines: the per-conversation lock, the
optimistic version, exactly-once intake and ordered, encrypted replies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.chat import Button, ImageReply, LinkButton, Reply, TextReply
from core.errors import Conflict
from storage import tables as t
from storage.uow import Database
from tests.integration import factories as f

NOW = f.T0


async def test_load_for_update_creates_the_state_once_then_returns_it(db: Database) -> None:
    async with db.uow() as uow:
        fresh = await uow.conversations.load_for_update("telegram", "42", "th")
        assert (fresh.flow, fresh.step, fresh.data, fresh.version) == (None, None, {}, 0)
        fresh.flow, fresh.step, fresh.language = "profile", "ask_address", "en"
        fresh.data = {"draft": "บ้านเลขที่ 9 🏡", "tries": 1}
        fresh.deadline = NOW + timedelta(minutes=10)
        fresh.seen_privacy_notice = True
        await uow.conversations.save(fresh)
        await uow.commit()

    async with db.uow() as uow:
        again = await uow.conversations.load_for_update("telegram", "42", "th")
        other_channel = await uow.conversations.load_for_update("line", "42", "th")

    assert again == fresh
    assert again.version == 1
    assert other_channel.version == 0 and other_channel.flow is None
    async with db.engine.connect() as conn:
        count = len((await conn.execute(select(t.conversations.c.id))).all())
    assert count == 1  # the LINE one was rolled back with its unit of work


async def test_each_save_bumps_the_version(db: Database) -> None:
    for expected in (1, 2, 3):
        async with db.uow() as uow:
            conv = await uow.conversations.load_for_update("telegram", "7", "th")
            await uow.conversations.save(conv)
            assert conv.version == expected
            await uow.commit()


async def test_a_stale_save_is_a_conflict(db: Database) -> None:
    async with db.uow() as uow:
        stale = await uow.conversations.load_for_update("telegram", "7", "th")
        await uow.conversations.save(stale)
        await uow.commit()

    async with db.uow() as uow:
        current = await uow.conversations.load_for_update("telegram", "7", "th")
        stale.version = current.version - 1
        with pytest.raises(Conflict):
            await uow.conversations.save(stale)

    async with db.uow() as uow:
        with pytest.raises(Conflict):  # never loaded in this unit of work
            await uow.conversations.save(current)


async def test_conversation_state_is_encrypted_at_rest(db: Database) -> None:
    typed = "บ้านเลขที่ 123 ถนนสุขุมวิท"
    async with db.uow() as uow:
        conv = await uow.conversations.load_for_update("telegram", "9", "th")
        conv.flow, conv.step = "profile", "ask_address"
        conv.data["typed"] = typed
        conv.data["email"] = "secret.person@example.co.th"
        await uow.conversations.save(conv)
        await uow.commit()

    async with db.engine.connect() as conn:
        raw = (await conn.execute(select(t.conversations.c.state_enc))).scalar_one()

    for needle in (typed, "secret.person", "ask_address", "typed"):
        assert needle.encode() not in raw
        assert needle.encode("utf-16-le") not in raw


async def test_a_duplicate_event_is_refused_and_the_transaction_stays_usable(
    db: Database,
) -> None:
    async with db.uow() as uow:
        assert await uow.inbox.accept("telegram", "update-1", NOW) is True
        assert await uow.inbox.accept("telegram", "update-1", NOW) is False
        assert await uow.inbox.accept("line", "update-1", NOW) is True  # other channel
        conv = await uow.conversations.load_for_update("telegram", "1", "th")
        await uow.conversations.save(conv)
        await uow.commit()

    async with db.uow() as uow:
        assert await uow.inbox.accept("telegram", "update-1", NOW) is False
        assert await uow.inbox.accept("telegram", "update-2", NOW) is True
        await uow.commit()

    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(t.inbox.c.channel, t.inbox.c.event_id))).all()
    assert sorted(rows) == [
        ("line", "update-1"),
        ("telegram", "update-1"),
        ("telegram", "update-2"),
    ]


# --- outbox --------------------------------------------------------------------------------

LEASE = timedelta(seconds=60)


async def _enqueue(db: Database, chat_id: str, *texts: str) -> list[int]:
    async with db.uow() as uow:
        ids = await uow.outbox.enqueue_replies(
            "telegram", chat_id, [f.reply(x) for x in texts], NOW
        )
        await uow.commit()
    return ids


async def test_claim_returns_the_decrypted_replies_in_order(db: Database) -> None:
    replies: list[Reply] = [
        TextReply(
            "บิลเดือนนี้ 640.93 บาท",
            buttons=((Button("จ่ายเลย", "pay:1"), LinkButton("ดูบิล", "https://x.th/b")),),
        ),
        ImageReply(png=b"\x89PNG\r\n\x1a\n\x00\xff", caption="QR พร้อมเพย์"),
        TextReply("ขอบคุณค่ะ 🙏", request_contact="แชร์เบอร์"),
    ]
    async with db.uow() as uow:
        ids = await uow.outbox.enqueue_replies("telegram", "5", replies, NOW)
        await uow.commit()

    async with db.uow() as uow:
        claimed = await uow.outbox.claim_chat("telegram", "5", NOW, lease=LEASE, owner="w1")
        await uow.commit()
    async with db.uow() as uow:
        # Leased: nobody else gets them until the lease runs out.
        assert await uow.outbox.claim_chat("telegram", "5", NOW, lease=LEASE, owner="w2") == []

    assert [m.id for m in claimed] == sorted(ids)
    assert [m.reply for m in claimed] == replies
    assert {(m.channel, m.chat_id, m.attempts) for m in claimed} == {("telegram", "5", 0)}
    async with db.engine.connect() as conn:
        payloads = (await conn.execute(select(t.outbox.c.payload_enc))).scalars().all()
    assert not any(b"640.93" in p or "พร้อมเพย์".encode() in p for p in payloads)


async def test_a_chat_waits_behind_its_oldest_unsent_reply(db: Database) -> None:
    a1, a2, a3 = await _enqueue(db, "A", "a1", "a2", "a3")
    b1, b2 = await _enqueue(db, "B", "b1", "b2")

    async with db.uow() as uow:
        assert await uow.outbox.chats_due(NOW) == [("telegram", "A"), ("telegram", "B")]
        assert await uow.outbox.chats_due(NOW - timedelta(seconds=1)) == []
        assert await uow.outbox.chats_due(NOW, limit=1) == [("telegram", "A")]
        [first] = await uow.outbox.claim_chat("telegram", "A", NOW, lease=LEASE, owner="w", limit=1)
        [other] = await uow.outbox.claim_chat("telegram", "B", NOW, lease=LEASE, owner="w", limit=1)
        assert (first.id, other.id) == (a1, b1)
        assert await uow.outbox.mark_sent(a1, NOW, owner="w")
        assert await uow.outbox.mark_failed(
            b1, NOW, "HTTP 502", retry_in=timedelta(seconds=30), owner="w"
        )
        await uow.commit()

    async with db.uow() as uow:
        # b1 waits to retry, and b2 waits behind it so the chat keeps its order.
        assert await uow.outbox.claim_chat("telegram", "B", NOW, lease=LEASE, owner="w") == []
        assert await uow.outbox.chats_due(NOW) == [("telegram", "A")]
        later = NOW + timedelta(seconds=30)
        retried = await uow.outbox.claim_chat("telegram", "B", later, lease=LEASE, owner="w")
        assert [(m.id, m.attempts) for m in retried] == [(b1, 1), (b2, 0)]
        assert await uow.outbox.release([b1, b2], owner="w") == 2
        await uow.outbox.mark_failed(a2, NOW, "blocked by user", retry_in=None)
        await uow.commit()

    async with db.uow() as uow:
        claimed = await uow.outbox.claim_chat("telegram", "A", NOW, lease=LEASE, owner="w")
        assert [m.id for m in claimed] == [a3]  # a dead reply stops nothing
        assert await uow.outbox.pending_count() == 3  # a3 (sending), b1 and b2
        await uow.commit()

    async with db.engine.connect() as conn:
        rows = {
            r.id: r
            for r in await conn.execute(
                select(
                    t.outbox.c.id, t.outbox.c.status, t.outbox.c.attempts, t.outbox.c.sent_at
                ).add_columns(t.outbox.c.last_error)
            )
        }
    assert (rows[a1].status, rows[a1].attempts, rows[a1].sent_at) == ("sent", 1, NOW)
    assert (rows[a2].status, rows[a2].last_error) == ("dead", "blocked by user")
    assert (rows[b1].status, rows[b1].last_error) == ("pending", "HTTP 502")
    assert rows[a3].status == "sending"
    assert rows[b2].status == "pending"


async def test_an_expired_lease_passes_to_another_worker_and_the_first_cannot_finish(
    db: Database,
) -> None:
    (only,) = await _enqueue(db, "D", "d1")
    async with db.uow() as uow:
        [mine] = await uow.outbox.claim_chat("telegram", "D", NOW, lease=LEASE, owner="w1")
        await uow.commit()

    async with db.uow() as uow:
        assert await uow.outbox.chats_due(NOW + LEASE / 2) == []
        assert (
            await uow.outbox.claim_chat("telegram", "D", NOW + LEASE / 2, lease=LEASE, owner="w2")
            == []
        )
        assert await uow.outbox.chats_due(NOW + LEASE) == [("telegram", "D")]
        [theirs] = await uow.outbox.claim_chat(
            "telegram", "D", NOW + LEASE, lease=LEASE, owner="w2"
        )
        assert mine.uid == theirs.uid  # one idempotency key for every attempt
        assert await uow.outbox.mark_sent(only, NOW + LEASE, owner="w1") is False
        assert await uow.outbox.mark_sent(only, NOW + LEASE, owner="w2") is True
        await uow.commit()

    async with db.engine.connect() as conn:
        row = (await conn.execute(select(t.outbox).where(t.outbox.c.id == only))).one()
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_long_error_is_cut_to_fit(db: Database) -> None:
    (only,) = await _enqueue(db, "C", "c1")
    async with db.uow() as uow:
        await uow.outbox.mark_failed(only, NOW, "x" * 1000, retry_in=timedelta(seconds=1))
        await uow.commit()
    async with db.engine.connect() as conn:
        error = (await conn.execute(select(t.outbox.c.last_error))).scalar_one()
    assert error == "x" * 200


# --- concurrency -----------------------------------------------------------------------------


async def test_fifty_simultaneous_events_for_one_chat_each_apply_exactly_once(
    db: Database,
) -> None:
    async def handle(event_no: int) -> None:
        async with db.uow() as uow:
            conv = await uow.conversations.load_for_update("telegram", "busy", "th")
            seen = conv.data.setdefault("seen", [])
            assert isinstance(seen, list)
            await asyncio.sleep(0)  # invite another event to interleave here
            seen.append(event_no)
            await uow.conversations.save(conv)
            await uow.commit()

    await asyncio.wait_for(asyncio.gather(*(handle(n) for n in range(50))), timeout=120)

    async with db.uow() as uow:
        conv = await uow.conversations.load_for_update("telegram", "busy", "th")
    seen = conv.data["seen"]
    assert isinstance(seen, list)
    assert sorted(seen) == list(range(50))
    assert conv.version == 50


async def test_events_for_different_chats_run_at_the_same_time_on_postgresql(
    db: Database,
) -> None:
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has a single writer")
    async with db.uow() as uow:  # create both rows first
        for chat in ("one", "two"):
            await uow.conversations.load_for_update("telegram", chat, "th")
        await uow.commit()

    async def handle(chat: str) -> None:
        async with db.uow() as uow:
            conv = await uow.conversations.load_for_update("telegram", chat, "th")
            conv.step = "done"
            await uow.conversations.save(conv)
            await uow.commit()

    async with db.uow() as holder:
        await holder.conversations.load_for_update("telegram", "one", "th")
        # While chat "one" is held: chat "two" goes through, chat "one" waits.
        await asyncio.wait_for(handle("two"), timeout=5)
        same_chat = asyncio.create_task(handle("one"))
        await asyncio.sleep(0.5)
        assert not same_chat.done()
    await asyncio.wait_for(same_chat, timeout=5)

    async with db.uow() as uow:
        for chat in ("one", "two"):
            conv = await uow.conversations.load_for_update("telegram", chat, "th")
            assert (conv.step, conv.version) == ("done", 1)
