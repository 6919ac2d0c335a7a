"""Retention: rows kept only while they are useful are deleted after a set time.

- the inbox (ids of platform events already handled, so a redelivery is dropped): kept
  :data:`INBOX_KEEP` (3 days) whatever the setting says. Telegram keeps an undelivered update
  for 24 hours, and after a week without updates it picks the next ``update_id`` at random:
  an inbox older than that week could drop a new update as a "redelivery" of an old one;
- the outbox (copies of messages sent or given up): the chat already shows them;
- conversation state of chats idle that long (language, an unfinished dialogue): a chat
  that comes back starts afresh and sees the short privacy notice again.

Pending messages are never purged. Work goes in short transactions of ``batch`` rows, so
the purge can run beside the service, from several workers at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.ports import RetentionRepository, UnitOfWorkFactory

__all__ = ["INBOX_KEEP", "PurgeReport", "RetentionPolicy", "purge_expired"]

#: Longer than any platform redelivers (Telegram: 24 h), shorter than the week of silence
#: after which Telegram's update ids restart at random.
INBOX_KEEP = timedelta(days=3)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep: timedelta = timedelta(days=30)
    batch: int = 500
    inbox_keep: timedelta = INBOX_KEEP

    def __post_init__(self) -> None:
        if min(self.keep, self.inbox_keep) < timedelta(days=1) or self.batch < 1:
            raise ValueError("retention keeps rows at least a day, in positive batches")


@dataclass(frozen=True, slots=True)
class PurgeReport:
    inbox: int
    outbox: int
    conversations: int

    @property
    def total(self) -> int:
        return self.inbox + self.outbox + self.conversations


Purge = Callable[[RetentionRepository, datetime, int], Awaitable[int]]


async def _drain(uow_factory: UnitOfWorkFactory, purge: Purge, before: datetime, batch: int) -> int:
    total = 0
    while True:
        async with uow_factory() as uow:
            deleted = await purge(uow.retention, before, batch)
            await uow.commit()
        total += deleted
        if deleted < batch:
            return total


async def purge_expired(
    uow_factory: UnitOfWorkFactory, *, now: datetime, policy: RetentionPolicy
) -> PurgeReport:
    """Delete outbox and conversation rows older than ``policy.keep`` and inbox rows older
    than the shorter of ``policy.keep`` and ``policy.inbox_keep``."""
    before = now - policy.keep
    inbox_before = now - min(policy.keep, policy.inbox_keep)
    return PurgeReport(
        inbox=await _drain(
            uow_factory, lambda r, b, n: r.purge_inbox(b, n), inbox_before, policy.batch
        ),
        outbox=await _drain(
            uow_factory, lambda r, b, n: r.purge_outbox(b, n), before, policy.batch
        ),
        conversations=await _drain(
            uow_factory, lambda r, b, n: r.purge_conversations(b, n), before, policy.batch
        ),
    )
