"""Conversation state, the inbox (exactly-once intake) and the outbox (replies to send).

The conversation row is read under a per-conversation lock on every event and written
in the same transaction as the outbox rows, so a crash loses nothing and runs nothing
twice (DESIGN.md, "One update, end to end").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.chat import Reply, reply_from_json, reply_to_json
from core.domain import Conversation, new_id
from core.errors import Conflict
from storage import tables as t
from storage.crypto import FieldCipher
from storage.locks import advisory_xact_lock, try_advisory_xact_lock


def _now() -> datetime:
    return datetime.now(UTC)


class SqlConversationRepository:
    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher
        self._ids: dict[tuple[str, str], str] = {}

    def _state(self, conv: Conversation, row_id: str) -> bytes:
        state = {
            "flow": conv.flow,
            "step": conv.step,
            "data": conv.data,
            "seen_privacy_notice": conv.seen_privacy_notice,
        }
        return self._cipher.encrypt(
            json.dumps(state, ensure_ascii=False),
            table="conversations",
            column="state",
            row_id=row_id,
        )

    async def load_for_update(
        self, channel: str, chat_id: str, default_language: str
    ) -> Conversation:
        await advisory_xact_lock(self._conn, f"conversation:{channel}:{chat_id}")
        row = (
            (
                await self._conn.execute(
                    select(t.conversations).where(
                        t.conversations.c.channel == channel,
                        t.conversations.c.chat_id == chat_id,
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            conv = Conversation(channel=channel, chat_id=chat_id, language=default_language)
            row_id = new_id()
            await self._conn.execute(
                insert(t.conversations).values(
                    id=row_id,
                    channel=channel,
                    chat_id=chat_id,
                    language=conv.language,
                    state_enc=self._state(conv, row_id),
                    deadline=None,
                    version=0,
                    updated_at=_now(),
                )
            )
            self._ids[(channel, chat_id)] = row_id
            return conv
        self._ids[(channel, chat_id)] = row["id"]
        state: dict[str, Any] = json.loads(
            self._cipher.decrypt(
                row["state_enc"], table="conversations", column="state", row_id=row["id"]
            )
        )
        return Conversation(
            channel=channel,
            chat_id=chat_id,
            language=row["language"],
            flow=state.get("flow"),
            step=state.get("step"),
            data=state.get("data") or {},
            deadline=row["deadline"],
            version=row["version"],
            seen_privacy_notice=bool(state.get("seen_privacy_notice")),
        )

    async def save(self, conversation: Conversation) -> None:
        key = (conversation.channel, conversation.chat_id)
        row_id = self._ids.get(key)
        if row_id is None:
            raise Conflict("conversation saved without load_for_update in this unit of work")
        result = await self._conn.execute(
            update(t.conversations)
            .where(
                t.conversations.c.id == row_id,
                t.conversations.c.version == conversation.version,
            )
            .values(
                language=conversation.language,
                state_enc=self._state(conversation, row_id),
                deadline=conversation.deadline,
                version=conversation.version + 1,
                updated_at=_now(),
            )
        )
        if result.rowcount != 1:
            raise Conflict("conversation changed since it was read")
        conversation.version += 1

    async def delete(self, channel: str, chat_id: str) -> None:
        await self._conn.execute(
            t.conversations.delete().where(
                t.conversations.c.channel == channel, t.conversations.c.chat_id == chat_id
            )
        )
        self._ids.pop((channel, chat_id), None)

    async def language(self, channel: str, chat_id: str) -> str | None:
        """The chat's language, read without a lock (None if the chat never wrote)."""
        query = select(t.conversations.c.language).where(
            t.conversations.c.channel == channel, t.conversations.c.chat_id == chat_id
        )
        return (await self._conn.execute(query)).scalar_one_or_none()


class SqlInboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def accept(self, channel: str, event_id: str, received_at: datetime) -> bool:
        # A savepoint keeps the surrounding transaction usable after a duplicate key.
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(t.inbox).values(
                        channel=channel, event_id=event_id, received_at=received_at
                    )
                )
        except IntegrityError:
            return False
        return True


#: An outbox row's status: ``pending`` (waiting, maybe until ``available_at`` after a
#: failure) → ``sending`` (leased to one process until ``lease_until``) → ``sent``, or
#: ``dead`` (given up). A failed send goes back to ``pending``; an expired lease may be
#: taken over by any process.
PENDING, SENDING, SENT, DEAD = "pending", "sending", "sent", "dead"
_UNSENT = (PENDING, SENDING)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    uid: str  # stable across attempts: the idempotency key of a send
    channel: str
    chat_id: str
    reply: Reply
    attempts: int


class SqlOutboxRepository:
    """Replies waiting to be sent, claimed with a lease so that no transaction stays open
    while a platform is called: claim (commit), send, then mark sent or failed (commit).

    A chat's messages are claimed strictly in order, and only while no earlier message of
    the chat is still waiting or being sent by someone else, so replies never overtake
    each other, even across processes (a per-chat lock serialises the claims)."""

    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    async def enqueue_replies(
        self, channel: str, chat_id: str, replies: Sequence[Reply], now: datetime
    ) -> list[int]:
        if not replies:
            return []
        rows = []
        for reply in replies:
            uid = new_id()
            payload = json.dumps(reply_to_json(reply), ensure_ascii=False)
            rows.append(
                {
                    "uid": uid,
                    "kind": "chat",
                    "channel": channel,
                    "chat_id": chat_id,
                    "payload_enc": self._cipher.encrypt(
                        payload, table="outbox", column="payload", row_id=uid
                    ),
                    "status": PENDING,
                    "attempts": 0,
                    "created_at": now,
                    "available_at": now,
                }
            )
        # One statement for all of them (one round trip), ids in the order given.
        result = await self._conn.execute(
            insert(t.outbox).returning(t.outbox.c.id, sort_by_parameter_order=True), rows
        )
        return [int(i) for i in result.scalars().all()]

    def _message(self, row: Any) -> OutboxMessage:
        raw = self._cipher.decrypt(
            row.payload_enc, table="outbox", column="payload", row_id=row.uid
        )
        return OutboxMessage(
            id=row.id,
            uid=row.uid,
            channel=row.channel,
            chat_id=row.chat_id,
            reply=reply_from_json(json.loads(raw)),
            attempts=row.attempts,
        )

    @staticmethod
    def _claimable(now: datetime) -> ColumnElement[bool]:
        o = t.outbox.c
        return or_(
            and_(o.status == PENDING, o.available_at <= now),
            and_(o.status == SENDING, o.lease_until <= now),
        )

    async def chats_of(self, ids: Sequence[int]) -> list[tuple[str, str]]:
        """The (channel, chat id) of the chat messages among ``ids``."""
        if not ids:
            return []
        o = t.outbox.c
        query = (
            select(o.channel, o.chat_id)
            .where(o.id.in_(list(ids)), o.kind == "chat")
            .group_by(o.channel, o.chat_id)
            .order_by(func.min(o.id))
        )
        return [(r.channel, r.chat_id) for r in await self._conn.execute(query)]

    async def chats_due(
        self, now: datetime, limit: int = 100, *, channels: Sequence[str] | None = None
    ) -> list[tuple[str, str]]:
        """Chats (of ``channels``, default all) with a message ready to send (new, due to
        retry, or whose lease expired), the longest waiting first."""
        o = t.outbox.c
        older = t.outbox.alias("older")
        earlier_unsent = (
            select(older.c.id)
            .where(
                older.c.channel == o.channel,
                older.c.chat_id == o.chat_id,
                older.c.status.in_(_UNSENT),
                older.c.id < o.id,
            )
            .exists()
        )
        # Only a chat's oldest unsent message can start a claim (see claim_chat).
        query = (
            select(o.channel, o.chat_id)
            .where(o.kind == "chat", self._claimable(now), ~earlier_unsent)
            .order_by(o.id)
            .limit(limit)
        )
        if channels is not None:
            query = query.where(o.channel.in_(list(channels)))
        return [(r.channel, r.chat_id) for r in await self._conn.execute(query)]

    async def claim_chat(
        self,
        channel: str,
        chat_id: str,
        now: datetime,
        *,
        lease: timedelta,
        owner: str,
        limit: int = 10,
        wait: bool = True,
    ) -> list[OutboxMessage]:
        """Lease the chat's next messages, in order, to ``owner`` until ``now + lease``.

        Stops at the first message that is not ready (waiting to retry, or leased to
        someone else): what follows it must wait too. ``wait=False`` returns nothing at
        once when another transaction is claiming for the same chat (PostgreSQL), which
        is what a relay wants (SKIP LOCKED, per chat)."""
        lock = f"outbox:{channel}:{chat_id}"
        if wait:
            await advisory_xact_lock(self._conn, lock)
        elif not await try_advisory_xact_lock(self._conn, lock):
            return []
        o = t.outbox.c
        rows = (
            await self._conn.execute(
                select(t.outbox)
                .where(
                    o.kind == "chat",
                    o.channel == channel,
                    o.chat_id == chat_id,
                    o.status.in_(_UNSENT),
                )
                .order_by(o.id)
                .limit(limit)
            )
        ).all()
        taken = []
        for row in rows:
            ready = (row.status == PENDING and row.available_at <= now) or (
                row.status == SENDING and row.lease_until is not None and row.lease_until <= now
            )
            if not ready:
                break
            taken.append(row)
        if not taken:
            return []
        await self._conn.execute(
            update(t.outbox)
            .where(o.id.in_([r.id for r in taken]))
            .values(status=SENDING, lease_until=now + lease, lease_owner=owner)
        )
        return [self._message(r) for r in taken]

    async def mark_sent(self, message_id: int, now: datetime, *, owner: str | None = None) -> bool:
        """Record a delivery; with ``owner``, only if that claim still holds the message.
        Returns whether the row was updated."""
        result = await self._conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id == message_id, *self._held_by(owner))
            .values(
                status=SENT,
                sent_at=now,
                attempts=t.outbox.c.attempts + 1,
                lease_until=None,
                lease_owner=None,
            )
        )
        return result.rowcount == 1

    async def mark_sent_many(
        self, ids: Sequence[int], now: datetime, *, owner: str | None = None
    ) -> int:
        """:meth:`mark_sent` for several messages in one statement; returns how many."""
        if not ids:
            return 0
        result = await self._conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id.in_(list(ids)), *self._held_by(owner))
            .values(
                status=SENT,
                sent_at=now,
                attempts=t.outbox.c.attempts + 1,
                lease_until=None,
                lease_owner=None,
            )
        )
        return int(result.rowcount or 0)

    async def mark_failed(
        self,
        message_id: int,
        now: datetime,
        error: str,
        *,
        retry_in: timedelta | None,
        owner: str | None = None,
        count_attempt: bool = True,
    ) -> bool:
        """Record a failed attempt: retry after ``retry_in``, or give up (status ``dead``)
        when it is None. ``count_attempt=False`` for waits we impose on ourselves."""
        values: dict[str, Any] = {
            "last_error": error[:200],
            "lease_until": None,
            "lease_owner": None,
        }
        if count_attempt:
            values["attempts"] = t.outbox.c.attempts + 1
        if retry_in is None:
            values["status"] = DEAD
        else:
            values["status"] = PENDING
            values["available_at"] = now + retry_in
        result = await self._conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id == message_id, *self._held_by(owner))
            .values(**values)
        )
        return result.rowcount == 1

    async def release(self, ids: Sequence[int], *, owner: str) -> int:
        """Hand back claimed messages that were not sent (no attempt counted)."""
        if not ids:
            return 0
        result = await self._conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id.in_(list(ids)), *self._held_by(owner))
            .values(status=PENDING, lease_until=None, lease_owner=None)
        )
        return int(result.rowcount or 0)

    async def give_up_chat(self, channel: str, chat_id: str, reason: str) -> int:
        """Mark every unsent message of a chat dead (the chat cannot be reached)."""
        o = t.outbox.c
        result = await self._conn.execute(
            update(t.outbox)
            .where(
                o.kind == "chat",
                o.channel == channel,
                o.chat_id == chat_id,
                o.status.in_(_UNSENT),
            )
            .values(status=DEAD, last_error=reason[:200], lease_until=None, lease_owner=None)
        )
        return int(result.rowcount or 0)

    @staticmethod
    def _held_by(owner: str | None) -> list[ColumnElement[bool]]:
        if owner is None:
            return []
        return [t.outbox.c.status == SENDING, t.outbox.c.lease_owner == owner]

    async def pending_count(self) -> int:
        """Messages not sent yet (waiting or being sent)."""
        query = select(func.count()).select_from(t.outbox).where(t.outbox.c.status.in_(_UNSENT))
        return int((await self._conn.execute(query)).scalar_one())
