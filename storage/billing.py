"""Repositories of payment links, notification preferences and sent bill reminders."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from sqlalchemy import Insert, Table, and_, delete, exists, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import Bill, NotificationKind, PayLink
from storage import tables as t
from storage import tables_billing as tb
from storage.repositories import _bill


class SqlPayLinkRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, link: PayLink) -> None:
        await self._conn.execute(
            insert(tb.pay_links).values(
                token_hash=link.token_hash,
                bill_id=link.bill_id,
                language=link.language,
                created_at=link.created_at,
                expires_at=link.expires_at,
            )
        )

    async def find(self, token_hash: bytes) -> PayLink | None:
        query = (
            select(tb.pay_links, t.bills.c.reference)
            .join(t.bills, t.bills.c.id == tb.pay_links.c.bill_id)
            .where(tb.pay_links.c.token_hash == token_hash)
        )
        row = (await self._conn.execute(query)).mappings().first()
        if row is None:
            return None
        return PayLink(
            token_hash=bytes(row["token_hash"]),
            bill_id=row["bill_id"],
            bill_reference=row["reference"],
            language=row["language"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    async def purge_expired(self, before: datetime) -> int:
        result = await self._conn.execute(
            delete(tb.pay_links).where(tb.pay_links.c.expires_at < before)
        )
        return int(result.rowcount)


class SqlNotificationPreferenceRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def for_customer(self, customer_id: str) -> dict[NotificationKind, bool]:
        table = tb.notification_preferences
        rows = await self._conn.execute(
            select(table.c.kind, table.c.enabled).where(table.c.customer_id == customer_id)
        )
        known = {kind.value for kind in NotificationKind}
        # A kind this version no longer knows is ignored, not an error.
        return {NotificationKind(kind): bool(on) for kind, on in rows if kind in known}

    async def set(
        self, customer_id: str, kind: NotificationKind, enabled: bool, at: datetime
    ) -> None:
        table = tb.notification_preferences
        changed = await self._conn.execute(
            update(table)
            .where(table.c.customer_id == customer_id, table.c.kind == kind.value)
            .values(enabled=enabled, updated_at=at)
        )
        if changed.rowcount == 0:
            await self._conn.execute(
                _insert_ignoring_duplicates(self._conn, table).values(
                    customer_id=customer_id, kind=kind.value, enabled=enabled, updated_at=at
                )
            )


class SqlReminderLedger:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def open_bills(
        self, today: date, *, after: tuple[date, str] | None = None, limit: int = 200
    ) -> list[Bill]:
        bills = t.bills
        linked = exists().where(t.chat_links.c.customer_id == bills.c.customer_id)
        query = select(bills).where(
            bills.c.paid_satang < bills.c.amount_satang,
            bills.c.issued_on <= today,
            bills.c.due_on >= today,
            linked,
        )
        if after is not None:
            due, bill_id = after
            query = query.where(
                or_(bills.c.due_on > due, and_(bills.c.due_on == due, bills.c.id > bill_id))
            )
        query = query.order_by(bills.c.due_on, bills.c.id).limit(limit)
        return [_bill(row) for row in (await self._conn.execute(query)).mappings()]

    async def sent_kinds(self, bill_ids: Collection[str]) -> dict[str, set[str]]:
        if not bill_ids:
            return {}
        table = tb.sent_reminders
        rows = await self._conn.execute(
            select(table.c.bill_id, table.c.kind).where(table.c.bill_id.in_(list(bill_ids)))
        )
        found: dict[str, set[str]] = {}
        for bill_id, kind in rows:
            found.setdefault(bill_id, set()).add(kind)
        return found

    async def claim(self, bill_id: str, kind: str, at: datetime) -> bool:
        result = await self._conn.execute(
            _insert_ignoring_duplicates(self._conn, tb.sent_reminders).values(
                bill_id=bill_id, kind=kind, sent_at=at
            )
        )
        return bool(result.rowcount)


def _insert_ignoring_duplicates(conn: AsyncConnection, table: Table) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING``: a concurrent duplicate waits for the first
    writer and then inserts nothing (rowcount 0), without aborting the transaction."""
    if conn.dialect.name == "postgresql":
        return pg_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()
