"""The payments ledger (``core.ports.PaymentRepository``): payments confirmed by banks and
gateways, and their effect on the bills' paid amounts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import case, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import Bill, Payment, PaymentStatus
from core.errors import NotFound
from storage import tables as t
from storage.locks import advisory_xact_lock
from storage.repositories import _bill


def _payment(row: RowMapping) -> Payment:
    return Payment(
        id=row["id"],
        external_id=row["external_id"],
        bill_id=row["bill_id"],
        amount_satang=row["amount_satang"],
        paid_at=row["paid_at"],
        method=row["method"],
        ref1=row["ref1"],
        ref2=row["ref2"],
        status=PaymentStatus(row["status"]),
    )


class SqlPaymentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_for_update(self, external_id: str) -> Payment | None:
        # The lock covers an id with no row yet, which FOR UPDATE cannot; SQLite's single
        # writer (BEGIN IMMEDIATE) already serialises.
        await advisory_xact_lock(self._conn, f"payment:{external_id}")
        row = (
            (
                await self._conn.execute(
                    select(t.payments).where(t.payments.c.external_id == external_id)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _payment(row)

    async def add(self, payment: Payment) -> None:
        await self._conn.execute(
            insert(t.payments).values(
                id=payment.id,
                external_id=payment.external_id,
                bill_id=payment.bill_id,
                amount_satang=payment.amount_satang,
                method=payment.method,
                ref1=payment.ref1,
                ref2=payment.ref2,
                status=payment.status.value,
                paid_at=payment.paid_at,
                created_at=datetime.now(UTC),
            )
        )

    async def set_status(self, payment_id: str, status: PaymentStatus) -> None:
        await self._conn.execute(
            update(t.payments).where(t.payments.c.id == payment_id).values(status=status.value)
        )

    async def add_to_bill(self, bill_id: str, delta_satang: int) -> Bill:
        paid = t.bills.c.paid_satang
        # One statement, so concurrent payments of one bill add up; never below zero (a
        # bill re-issued with a smaller paid amount, then a reversal).
        await self._conn.execute(
            update(t.bills)
            .where(t.bills.c.id == bill_id)
            .values(
                paid_satang=case((paid + delta_satang < 0, 0), else_=paid + delta_satang),
                updated_at=datetime.now(UTC),
            )
        )
        row = (
            (await self._conn.execute(select(t.bills).where(t.bills.c.id == bill_id)))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound("bill")
        return _bill(row)

    async def for_external_ids(self, external_ids: list[str]) -> list[Payment]:
        rows = await self._conn.execute(
            select(t.payments).where(t.payments.c.external_id.in_(external_ids))
        )
        return [_payment(r) for r in rows.mappings()]
