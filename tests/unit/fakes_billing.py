"""In-memory fakes of the billing ports: payment links, notification preferences and the
bill-reminder ledger. ``FakeUnitOfWork`` (fakes.py) carries one of each."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import TYPE_CHECKING

from core.domain import Bill, NotificationKind, PayLink

if TYPE_CHECKING:
    from fakes import FakeUnitOfWork


class FakePayLinks:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, link: PayLink) -> None:
        assert link.token_hash not in self._uow.state.pay_links, "token hash reused"
        self._uow.state.pay_links[link.token_hash] = link

    async def find(self, token_hash: bytes) -> PayLink | None:
        return self._uow.state.pay_links.get(token_hash)

    async def purge_expired(self, before: datetime) -> int:
        links = self._uow.state.pay_links
        gone = [h for h, link in links.items() if link.expires_at < before]
        for token_hash in gone:
            del links[token_hash]
        return len(gone)


class FakeNotificationPreferences:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def for_customer(self, customer_id: str) -> dict[NotificationKind, bool]:
        chosen = self._uow.state.notification_preferences
        return {kind: on for (cid, kind), on in chosen.items() if cid == customer_id}

    async def set(
        self, customer_id: str, kind: NotificationKind, enabled: bool, at: datetime
    ) -> None:
        self._uow.state.notification_preferences[(customer_id, kind)] = enabled


class FakeReminderLedger:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def open_bills(
        self, today: date, *, after: tuple[date, str] | None = None, limit: int = 200
    ) -> list[Bill]:
        state = self._uow.state
        linked = {link.customer_id for link in state.links.values()}
        bills = sorted(
            (
                b
                for b in state.bills.values()
                if b.paid_satang < b.amount_satang
                and b.issued_on <= today <= b.due_on
                and b.customer_id in linked
                and (after is None or (b.due_on, b.id) > after)
            ),
            key=lambda b: (b.due_on, b.id),
        )
        return bills[:limit]

    async def sent_kinds(self, bill_ids: Collection[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for bill_id, kind in self._uow.state.sent_reminders:
            if bill_id in bill_ids:
                found.setdefault(bill_id, set()).add(kind)
        return found

    async def claim(self, bill_id: str, kind: str, at: datetime) -> bool:
        sent = self._uow.state.sent_reminders
        if (bill_id, kind) in sent:
            return False
        sent[(bill_id, kind)] = at
        return True
