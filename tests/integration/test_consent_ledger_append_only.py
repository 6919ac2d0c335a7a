"""The consent ledger is append-only in the database itself (revision 0003), on SQLite and
PostgreSQL: no decision is ever rewritten, while erasure (``/forget``) and the billing
system's ``customer.deleted`` still remove a customer's rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from core.domain import ConsentPurpose, ConsentRecord, Customer
from core.services.integrations import delete_customer
from core.services.privacy_rights import erase_customer
from storage import tables as t
from storage.uow import Database
from tests.integration import factories as f


async def _customer_with_decisions(db: Database) -> tuple[Customer, list[ConsentRecord]]:
    customer = f.customer()
    decisions = [
        ConsentRecord(customer.id, ConsentPurpose.MARKETING, granted, "2026-11", "line", at)
        for granted, at in ((True, f.T0), (False, f.T0 + timedelta(days=1)))
    ]
    await f.add_customers(db, customer)
    async with db.uow() as uow:
        for decision in decisions:
            await uow.consent.record(decision)
        await uow.commit()
    return customer, decisions


async def _ledger_rows(db: Database, customer_id: str) -> int:
    async with db.engine.connect() as conn:
        query = select(func.count()).select_from(t.consent_ledger)
        query = query.where(t.consent_ledger.c.customer_id == customer_id)
        return int((await conn.execute(query)).scalar_one())


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consent_ledger SET granted = NOT granted",
        "UPDATE consent_ledger SET notice_version = 'rewritten' WHERE purpose = 'marketing'",
        "UPDATE consent_ledger SET customer_id = customer_id",  # even a no-op
    ],
    ids=["flip", "notice", "no-op"],
)
async def test_the_database_refuses_to_rewrite_a_consent_decision(
    db: Database, statement: str
) -> None:
    customer, decisions = await _customer_with_decisions(db)

    with pytest.raises(DBAPIError, match="consent_ledger is append-only"):
        async with db.engine.begin() as conn:
            await conn.execute(text(statement))

    async with db.uow() as uow:
        assert await uow.consent.history(customer.id) == decisions


async def test_postgresql_refuses_to_truncate_the_ledger(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE (a DELETE without WHERE is a DELETE)")
    customer, decisions = await _customer_with_decisions(db)

    with pytest.raises(DBAPIError, match="consent_ledger is append-only"):
        async with db.engine.begin() as conn:
            await conn.execute(text("TRUNCATE consent_ledger"))

    assert await _ledger_rows(db, customer.id) == len(decisions)


async def test_erasure_still_deletes_the_customers_decisions_and_only_theirs(
    db: Database,
) -> None:
    customer, decisions = await _customer_with_decisions(db)
    other, other_decisions = await _customer_with_decisions(db)

    async with db.uow() as uow:
        erasure = await erase_customer(uow, customer, channel="line", chat_id="U1", now=f.T0)
        await uow.commit()

    assert erasure.deleted["consent_ledger"] == len(decisions)
    assert await _ledger_rows(db, customer.id) == 0
    async with db.uow() as uow:
        assert await uow.consent.history(other.id) == other_decisions


async def test_a_customer_deleted_by_the_billing_system_takes_their_decisions_along(
    db: Database,
) -> None:
    customer, _ = await _customer_with_decisions(db)

    async with db.uow() as uow:
        result = await delete_customer(uow, customer.account_no, now=f.T0)
        await uow.commit()

    assert result["customer"] == "deleted"
    assert await _ledger_rows(db, customer.id) == 0
