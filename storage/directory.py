"""Bulk reads and writes of customers, service numbers and bills for the billing system's
events and ``selfcare import`` (``core.ports.BillingDirectory``).

A batch of a thousand import lines costs a handful of statements (one lookup per kind,
one ``executemany`` per write), not thousands. Personal values are encrypted exactly as
:class:`~storage.repositories.SqlCustomerRepository` does it: this class is one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import Bill, Customer, ServiceAccount, ServiceKind
from storage import tables as t
from storage.crypto import FieldCipher, normalise_phone
from storage.locks import lock_key
from storage.repositories import SqlCustomerRepository, _bill

#: Lookups go in chunks: SQLite's limit of bound parameters, PostgreSQL's plan sizes.
CHUNK = 500
T = TypeVar("T")


def _chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def lock_names(conn: AsyncConnection, names: Collection[str]) -> None:
    """Transaction-scoped advisory locks on every name, taken in key order in one statement
    (two batches that overlap wait for each other, never deadlock). SQLite: nothing to do,
    the transaction holds the single write lock."""
    if conn.dialect.name != "postgresql" or not names:
        return
    keys = sorted({lock_key(name) for name in names})
    await conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(k) "
            "FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS u(k, n) ORDER BY n"
        ),
        {"keys": keys},
    )


class SqlBillingDirectory(SqlCustomerRepository):
    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        super().__init__(conn, cipher)

    async def lock(self, names: Collection[str]) -> None:
        await lock_names(self._conn, names)

    async def customer_ids(self, account_nos: Collection[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        c = t.customers.c
        for chunk in _chunks(sorted(account_nos)):
            rows = await self._conn.execute(
                select(c.account_no, c.id).where(c.account_no.in_(chunk))
            )
            found.update({account_no: cid for account_no, cid in rows})
        return found

    async def service_accounts_by_number(
        self, numbers: Collection[str]
    ) -> dict[str, ServiceAccount]:
        by_index: dict[bytes, str] = {}
        for number in numbers:
            try:
                by_index[self._cipher.blind_index("phone", normalise_phone(number))] = number
            except ValueError:
                continue  # not a phone number: no account has it
        found: dict[str, ServiceAccount] = {}
        c = t.service_accounts.c
        for chunk in _chunks(list(by_index)):
            rows = await self._conn.execute(
                select(c.id, c.customer_id, c.number_bidx, c.kind, c.plan).where(
                    c.number_bidx.in_(chunk)
                )
            )
            for row in rows.mappings():
                number = by_index[bytes(row["number_bidx"])]
                found[number] = ServiceAccount(
                    id=row["id"],
                    customer_id=row["customer_id"],
                    number=number,
                    kind=ServiceKind(row["kind"]),
                    plan=row["plan"],
                )
        return found

    async def bills(self, references: Collection[str]) -> dict[str, Bill]:
        found: dict[str, Bill] = {}
        for chunk in _chunks(sorted(references)):
            rows = await self._conn.execute(select(t.bills).where(t.bills.c.reference.in_(chunk)))
            found.update({row["reference"]: _bill(row) for row in rows.mappings()})
        return found

    async def save_customers(self, added: Sequence[Customer], changed: Sequence[Customer]) -> None:
        now = datetime.now(UTC)
        if added:
            await self._conn.execute(
                insert(t.customers),
                [
                    {"id": c.id, "created_at": now, "updated_at": now, **self._values(c)}
                    for c in added
                ],
            )
        if changed:
            # executemany binds may not be named like the columns they set: prefix them.
            rows = [
                {f"b_{k}": v for k, v in {"id": c.id, "updated_at": now, **self._values(c)}.items()}
                for c in changed
            ]
            columns: dict[str, Any] = {k[2:]: bindparam(k) for k in rows[0] if k != "b_id"}
            await self._conn.execute(
                update(t.customers).where(t.customers.c.id == bindparam("b_id")).values(**columns),
                rows,
            )

    def _account_values(self, account: ServiceAccount) -> dict[str, Any]:
        return {
            "customer_id": account.customer_id,
            "number_enc": self._enc(account.number, "number", account.id, "service_accounts"),
            "number_bidx": self._cipher.blind_index("phone", normalise_phone(account.number)),
            "kind": account.kind.value,
            "plan": account.plan,
        }

    async def save_service_accounts(
        self, added: Sequence[ServiceAccount], changed: Sequence[ServiceAccount]
    ) -> None:
        if added:
            now = datetime.now(UTC)
            await self._conn.execute(
                insert(t.service_accounts),
                [{"id": a.id, "created_at": now, **self._account_values(a)} for a in added],
            )
        if changed:
            await self._conn.execute(
                update(t.service_accounts)
                .where(t.service_accounts.c.id == bindparam("b_id"))
                .values(kind=bindparam("b_kind"), plan=bindparam("b_plan")),
                [{"b_id": a.id, "b_kind": a.kind.value, "b_plan": a.plan} for a in changed],
            )

    async def save_bills(self, added: Sequence[Bill], changed: Sequence[Bill]) -> None:
        now = datetime.now(UTC)
        if added:
            await self._conn.execute(
                insert(t.bills),
                [
                    {
                        "id": b.id,
                        "customer_id": b.customer_id,
                        "service_account_id": b.service_account_id,
                        "reference": b.reference,
                        "period_start": b.period_start,
                        "period_end": b.period_end,
                        "issued_on": b.issued_on,
                        "due_on": b.due_on,
                        "amount_satang": b.amount_satang,
                        "paid_satang": b.paid_satang,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for b in added
                ],
            )
        if changed:
            # paid_satang is the payments' business: not overwritten from a bill event.
            await self._conn.execute(
                update(t.bills)
                .where(t.bills.c.id == bindparam("b_id"))
                .values(
                    service_account_id=bindparam("b_service_account_id"),
                    period_start=bindparam("b_period_start"),
                    period_end=bindparam("b_period_end"),
                    issued_on=bindparam("b_issued_on"),
                    due_on=bindparam("b_due_on"),
                    amount_satang=bindparam("b_amount_satang"),
                    updated_at=bindparam("b_updated_at"),
                ),
                [
                    {
                        "b_id": b.id,
                        "b_service_account_id": b.service_account_id,
                        "b_period_start": b.period_start,
                        "b_period_end": b.period_end,
                        "b_issued_on": b.issued_on,
                        "b_due_on": b.due_on,
                        "b_amount_satang": b.amount_satang,
                        "b_updated_at": now,
                    }
                    for b in changed
                ],
            )

    async def delete_customer(self, customer_id: str) -> None:
        # Foreign keys cascade to numbers, users, chat links, bills and consents.
        await self._conn.execute(delete(t.customers).where(t.customers.c.id == customer_id))
