"""The worker's retention job: old inbox, outbox and conversation rows are deleted after
``SELFCARE_RETENTION_DAYS`` (core/services/retention.py), then SQLite's write-ahead log is
cut back so the deleted rows' earlier page versions do not linger in it."""

from __future__ import annotations

import logging

from bot.bootstrap import Container
from core.services.retention import purge_expired as purge_rows
from storage.privacy import truncate_wal

__all__ = ["purge_expired"]

log = logging.getLogger(__name__)


async def purge_expired(container: Container) -> int:
    """One pass of the retention purge; returns how many rows went."""
    report = await purge_rows(
        container.db.uow, now=container.clock.now(), policy=container.retention_policy()
    )
    if report.total:
        log.info(
            "retention purge",
            extra={
                "inbox": report.inbox,
                "outbox": report.outbox,
                "conversations": report.conversations,
            },
        )
    await truncate_wal(container.db.engine)
    return report.total
