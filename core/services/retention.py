"""Retention: rows kept only while they are useful are deleted after a set time.

- the inbox (ids of platform events already handled, so a redelivery is dropped): no
  platform redelivers after a few days;
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

__all__ = ["PurgeReport", "RetentionPolicy", "purge_expired"]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep: timedelta = timedelta(days=30)
    batch: int = 500

    def __post_init__(self) -> None:
        if self.keep < timedelta(days=1) or self.batch < 1:
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
    """Delete inbox, outbox and conversation rows older than ``policy.keep``."""
    before = now - policy.keep
    return PurgeReport(
        inbox=await _drain(uow_factory, lambda r, b, n: r.purge_inbox(b, n), before, policy.batch),
        outbox=await _drain(
            uow_factory, lambda r, b, n: r.purge_outbox(b, n), before, policy.batch
        ),
        conversations=await _drain(
            uow_factory, lambda r, b, n: r.purge_conversations(b, n), before, policy.batch
        ),
    )
