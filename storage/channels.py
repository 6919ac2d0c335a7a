"""Repositories of the messaging channels: unreachable chats, media served by signed URL,
and Telegram callback payloads too long for a button.

Tables: storage/tables_channels.py.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import new_id
from storage import tables_channels as tc
from storage.crypto import FieldCipher

__all__ = [
    "MediaObject",
    "SqlCallbackPayloads",
    "SqlChatReachability",
    "SqlMediaStore",
]


class SqlChatReachability:
    """Which chats blocked the bot; implements ``core.ports.ChatReachabilityRepository``."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def mark_unreachable(
        self, channel: str, chat_id: str, reason: str, now: datetime
    ) -> None:
        """Record that ``chat_id`` cannot be reached (idempotent: the first reason stays)."""
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(tc.unreachable_chats).values(
                        channel=channel, chat_id=chat_id, reason=reason[:32], since=now
                    )
                )
        except IntegrityError:
            pass  # marked before

    async def mark_reachable(self, channel: str, chat_id: str) -> bool:
        """Forget that ``chat_id`` was unreachable; True if it was."""
        result = await self._conn.execute(
            delete(tc.unreachable_chats).where(
                tc.unreachable_chats.c.channel == channel,
                tc.unreachable_chats.c.chat_id == chat_id,
            )
        )
        return bool(result.rowcount)

    async def is_unreachable(self, channel: str, chat_id: str) -> bool:
        query = select(tc.unreachable_chats.c.id).where(
            tc.unreachable_chats.c.channel == channel,
            tc.unreachable_chats.c.chat_id == chat_id,
        )
        return (await self._conn.execute(query)).first() is not None


@dataclass(frozen=True, slots=True)
class MediaObject:
    id: str
    content: bytes
    filename: str
    mime_type: str
    expires_at: datetime


class SqlMediaStore:
    """Images and files kept (encrypted) until their URL expires."""

    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    async def put(
        self, content: bytes, *, filename: str, mime_type: str, now: datetime, expires_at: datetime
    ) -> str:
        """Store ``content``; returns its id (128 random bits, hex)."""
        media_id = new_id()
        where = {"table": "media_objects", "row_id": media_id}
        await self._conn.execute(
            insert(tc.media_objects).values(
                id=media_id,
                content_enc=self._cipher.encrypt_bytes(content, column="content", **where),
                filename_enc=self._cipher.encrypt(filename, column="filename", **where),
                mime_type=mime_type[:100],
                created_at=now,
                expires_at=expires_at,
            )
        )
        return media_id

    async def get(self, media_id: str, now: datetime) -> MediaObject | None:
        """The object ``media_id`` unless it is unknown or expired."""
        row = (
            await self._conn.execute(
                select(tc.media_objects).where(
                    tc.media_objects.c.id == media_id, tc.media_objects.c.expires_at > now
                )
            )
        ).first()
        if row is None:
            return None
        where = {"table": "media_objects", "row_id": row.id}
        return MediaObject(
            id=row.id,
            content=self._cipher.decrypt_bytes(row.content_enc, column="content", **where),
            filename=self._cipher.decrypt(row.filename_enc, column="filename", **where),
            mime_type=row.mime_type,
            expires_at=row.expires_at,
        )

    async def purge_expired(self, now: datetime) -> int:
        """Delete every expired object; returns how many."""
        result = await self._conn.execute(
            delete(tc.media_objects).where(tc.media_objects.c.expires_at <= now)
        )
        return int(result.rowcount or 0)


#: Marks callback data that is a digest to look up, not a payload.
DIGEST_MARK = "~"


class SqlCallbackPayloads:
    """Long button payloads behind short keyed digests (Telegram's callback_data holds 64
    bytes). The digest is an HMAC under a key derived from the keyring's index root, so
    equal payloads share a row and nobody can predict a digest."""

    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    def digest(self, payload: str) -> str:
        mac = self._cipher.blind_index("callback-payload", payload)
        return DIGEST_MARK + base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    async def shorten(self, payload: str, now: datetime) -> str:
        """The short callback data for ``payload`` (``~`` + 43 characters), stored."""
        short = self.digest(payload)
        row_id = short[1:]
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(tc.callback_payloads).values(
                        id=row_id,
                        payload_enc=self._cipher.encrypt(
                            payload, table="callback_payloads", column="payload", row_id=row_id
                        ),
                        created_at=now,
                    )
                )
        except IntegrityError:
            pass  # the same payload was shortened before
        return short

    async def resolve(self, short: str) -> str | None:
        """The payload behind ``short``; None when unknown (or not a digest)."""
        if not short.startswith(DIGEST_MARK):
            return None
        row_id = short[1:]
        row = (
            await self._conn.execute(
                select(tc.callback_payloads.c.payload_enc).where(
                    tc.callback_payloads.c.id == row_id
                )
            )
        ).first()
        if row is None:
            return None
        return self._cipher.decrypt(
            row.payload_enc, table="callback_payloads", column="payload", row_id=row_id
        )

    async def purge_older_than(self, cutoff: datetime) -> int:
        result = await self._conn.execute(
            delete(tc.callback_payloads).where(tc.callback_payloads.c.created_at < cutoff)
        )
        return int(result.rowcount or 0)
