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

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.chat import Reply, reply_from_json, reply_to_json
from core.domain import Conversation, new_id
from core.errors import Conflict
from storage import tables as t
from storage.crypto import FieldCipher
from storage.locks import advisory_xact_lock


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


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    channel: str
    chat_id: str
    reply: Reply
    attempts: int


class SqlOutboxRepository:
    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    async def enqueue_replies(
        self, channel: str, chat_id: str, replies: Sequence[Reply], now: datetime
    ) -> list[int]:
        ids: list[int] = []
        for reply in replies:
            uid = new_id()
            payload = json.dumps(reply_to_json(reply), ensure_ascii=False)
            result = await self._conn.execute(
                insert(t.outbox)
                .values(
                    uid=uid,
                    kind="chat",
                    channel=channel,
                    chat_id=chat_id,
                    payload_enc=self._cipher.encrypt(
                        payload, table="outbox", column="payload", row_id=uid
                    ),
                    status="pending",
                    attempts=0,
                    created_at=now,
                    available_at=now,
                )
                .returning(t.outbox.c.id)
            )
            ids.append(int(result.scalar_one()))
        return ids

    def _message(self, row: Any) -> OutboxMessage:
        raw = self._cipher.decrypt(
            row.payload_enc, table="outbox", column="payload", row_id=row.uid
        )
        return OutboxMessage(
            id=row.id,
            channel=row.channel,
            chat_id=row.chat_id,
            reply=reply_from_json(json.loads(raw)),
            attempts=row.attempts,
        )

    async def claim(self, ids: Sequence[int]) -> list[OutboxMessage]:
        """The still-pending chat messages among ``ids``, locked, in order."""
        if not ids:
            return []
        query = (
            select(t.outbox)
            .where(t.outbox.c.id.in_(list(ids)), t.outbox.c.status == "pending")
            .order_by(t.outbox.c.id)
        )
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [self._message(r) for r in (await self._conn.execute(query))]

    async def due(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        """Pending chat messages whose time has come, oldest first, locked (SKIP LOCKED on
        PostgreSQL). Only the oldest pending message of each chat is eligible, so a
        chat's replies keep their order even when an earlier one is waiting to retry."""
        older = t.outbox.alias("older")
        earlier_pending = (
            select(older.c.id)
            .where(
                older.c.channel == t.outbox.c.channel,
                older.c.chat_id == t.outbox.c.chat_id,
                older.c.status == "pending",
                older.c.id < t.outbox.c.id,
            )
            .exists()
        )
        query = (
            select(t.outbox)
            .where(
                t.outbox.c.kind == "chat",
                t.outbox.c.status == "pending",
                t.outbox.c.available_at <= now,
                ~earlier_pending,
            )
            .order_by(t.outbox.c.id)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=t.outbox)
        return [self._message(r) for r in (await self._conn.execute(query))]

    async def mark_sent(self, message_id: int, now: datetime) -> None:
        await self._conn.execute(
            update(t.outbox)
            .where(t.outbox.c.id == message_id)
            .values(status="sent", sent_at=now, attempts=t.outbox.c.attempts + 1)
        )

    async def mark_failed(
        self, message_id: int, now: datetime, error: str, *, retry_in: timedelta | None
    ) -> None:
        """Record a failed attempt; ``retry_in=None`` gives up (status ``dead``)."""
        values: dict[str, Any] = {
            "attempts": t.outbox.c.attempts + 1,
            "last_error": error[:200],
        }
        if retry_in is None:
            values["status"] = "dead"
        else:
            values["available_at"] = now + retry_in
        await self._conn.execute(
            update(t.outbox).where(t.outbox.c.id == message_id).values(**values)
        )

    async def pending_count(self) -> int:
        query = select(func.count()).select_from(t.outbox).where(t.outbox.c.status == "pending")
        return int((await self._conn.execute(query)).scalar_one())
