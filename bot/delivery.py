"""Delivering the outbox: replies go out right after the transaction that queued them
commits, and the worker's relay sends whatever a crash left behind.

Each message is claimed, sent, then marked sent in its own short transaction per chat,
so a crash between send and mark can repeat a message (at least once), never lose one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta

from core.ports import Clock, DeliveryError, Messenger
from storage.conversations import OutboxMessage, SqlOutboxRepository
from storage.uow import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … capped at 5 minutes."""
    return timedelta(seconds=min(2**attempts, 300))


class OutboxDelivery:
    def __init__(self, db: Database, messengers: Mapping[str, Messenger], clock: Clock) -> None:
        self._db = db
        self._messengers = messengers
        self._clock = clock

    async def deliver(self, outbox_ids: Sequence[int]) -> int:
        """Send the given (just committed) messages in order; returns how many went out."""
        async with self._db.uow() as uow:
            messages = await uow.outbox.claim(outbox_ids)
            sent = await self._send_all(uow.outbox, messages)
            await uow.commit()
        return sent

    async def relay_due(self, limit: int = 100) -> int:
        """Send pending messages whose time has come (the worker's loop body)."""
        async with self._db.uow() as uow:
            messages = await uow.outbox.due(self._clock.now(), limit)
            sent = await self._send_all(uow.outbox, messages)
            await uow.commit()
        return sent

    async def _send_all(
        self, outbox: SqlOutboxRepository, messages: Sequence[OutboxMessage]
    ) -> int:
        sent = 0
        failed_chats: set[tuple[str, str]] = set()
        for message in messages:
            chat = (message.channel, message.chat_id)
            if chat in failed_chats:
                continue  # keep a chat's order: nothing after a failed message goes first
            messenger = self._messengers.get(message.channel)
            now = self._clock.now()
            if messenger is None:
                await outbox.mark_failed(
                    message.id, now, "no messenger for channel", retry_in=backoff(message.attempts)
                )
                failed_chats.add(chat)
                continue
            try:
                await messenger.send(message.chat_id, message.reply)
            except DeliveryError as exc:
                failed_chats.add(chat)
                give_up = exc.permanent or message.attempts + 1 >= MAX_ATTEMPTS
                retry = (
                    None
                    if give_up
                    else timedelta(seconds=exc.retry_after)
                    if exc.retry_after is not None
                    else backoff(message.attempts)
                )
                await outbox.mark_failed(message.id, now, exc.reason, retry_in=retry)
                log.warning(
                    "delivery failed",
                    extra={"channel": message.channel, "outbox_id": message.id, "dead": give_up},
                )
                continue
            await outbox.mark_sent(message.id, now)
            sent += 1
        return sent
