"""The billing feature's periodic jobs for ``selfcare worker`` (bot/worker.py ``JOBS``)."""

from __future__ import annotations

from datetime import timedelta

from bot.bootstrap import Container
from core.services.reminders import queue_bill_reminders

__all__ = ["PAY_LINK_KEEP", "purge_expired_pay_links", "send_bill_reminders"]

#: Expired payment links are kept this long, so that an old link still gets the "expired"
#: page in its chat's language rather than the generic one.
PAY_LINK_KEEP = timedelta(days=30)


async def send_bill_reminders(container: Container) -> int:
    """Queue the bill reminders due now (new bills, N days before due); returns how many
    messages were queued. The relay loop of the worker sends them."""
    return await queue_bill_reminders(
        container.db.uow, now=container.clock.now(), settings=container.reminder_settings()
    )


async def purge_expired_pay_links(container: Container) -> int:
    """Delete payment links that expired more than :data:`PAY_LINK_KEEP` ago."""
    async with container.db.uow() as uow:
        gone = await uow.pay_links.purge_expired(container.clock.now() - PAY_LINK_KEEP)
        await uow.commit()
    return gone
