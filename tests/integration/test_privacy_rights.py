"""The export behind /mydata and the erasure behind /forget, on SQLite and PostgreSQL.

Two customers have a row in every table that holds something about a customer; the export
of one holds every stored field of theirs and nothing of the other's; after the erasure a
raw dump of the database (SQLite's files, WAL included; ``pg_dump``) holds no trace of the
erased customer's values while the other's data is intact."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from core.domain import AuditEntry, ContactKind
from core.services.privacy_rights import erase_customer, export_customer
from storage import tables as t
from storage.privacy import (
    WITHHELD_SUFFIXES,
    chat_tables,
    customer_conditions,
    customer_tables,
)
from storage.uow import Database
from tests.integration.factories import T0
from tests.integration.privacy_support import (
    Filled,
    add_campaign,
    fill_everything,
    raw_dump,
    search_forms,
)
from tests.integration.support import find_values


async def _two_customers(db: Database) -> tuple[Filled, Filled]:
    campaign = await add_campaign(db)
    return (
        await fill_everything(db, "4411", campaign_id=campaign),
        await fill_everything(db, "5522", campaign_id=campaign),
    )


async def _rows_of(db: Database, customer_id: str) -> dict[str, int]:
    where = customer_conditions(customer_id)
    counts = {}
    async with db.engine.connect() as conn:
        for table, _ in customer_tables():
            query = select(func.count()).select_from(table).where(where[table.name])
            counts[table.name] = int((await conn.execute(query)).scalar_one())
    return counts


async def test_every_customer_table_is_filled_for_the_tests(db: Database) -> None:
    a, _ = await _two_customers(db)
    counts = await _rows_of(db, a.customer.id)
    empty = [name for name, n in counts.items() if n == 0]
    assert not empty, f"fill_everything does not fill {empty}: add a row for each"
    assert {"customers", "bills", "payments", "contact_changes", "correction_requests"} <= set(
        counts
    )


async def test_the_export_holds_every_stored_field_of_the_customer_and_nothing_else(
    db: Database,
) -> None:
    a, b = await _two_customers(db)
    async with db.uow() as uow:
        customer = await uow.customers.get(a.customer.id)
        assert customer is not None
        export = await export_customer(uow, customer, channel="telegram", now=T0)
        await uow.commit()
    document = json.loads(export.content)
    data = document["data"]
    counts = await _rows_of(db, a.customer.id)
    for table, _ in customer_tables():
        rows = data[table.name]
        assert len(rows) == counts[table.name], table.name
        expected = {
            t.aad_column(c.name) for c in table.columns if not c.name.endswith(WITHHELD_SUFFIXES)
        }
        for row in rows:
            assert set(row) == expected, table.name
    (row,) = data["customers"]
    assert row["name"] == a.values["name"] and row["national_id"] == a.values["national id"]
    assert data["eservice_users"][0]["user_id"] == a.user_id
    assert data["contact_changes"][0]["value"] == a.values["new email"]
    assert data["correction_requests"][0]["text"] == a.values["correction words"]
    assert sorted((r["channel"], r["chat_id"]) for r in data["conversations"]) == sorted(a.chats)
    assert any(
        r["state"]["data"] == {"typed": a.values["typed in a chat"]} for r in data["conversations"]
    )
    assert data["audit_log"] == []  # nothing was looked at before; this export comes next
    raw = export.content.decode("utf-8")
    for what, value in a.values.items():
        if what != "a message sent":  # message copies are not exported
            assert value in raw, what
    leaks = find_values(export.content, search_forms(b.values))
    assert not leaks, f"another customer's data in the export: {leaks}"
    for other_id in (b.customer.id, *b.bill_references, *(chat for _, chat in b.chats)):
        assert other_id not in raw
    assert "$argon2id$" not in raw and all("password_hash" not in r for r in data["eservice_users"])


async def test_erasure_deletes_every_trace_and_leaves_the_other_customer_alone(
    db: Database, database_url: str
) -> None:
    a, b = await _two_customers(db)
    b_before = await _rows_of(db, b.customer.id)
    async with db.uow() as uow:
        await uow.audit.append(
            AuditEntry("staff:tester", "customer.view", a.customer.id, {"reason": "complaint"}, T0)
        )
        await uow.commit()
    before = await raw_dump(db, database_url)
    # The search below means something: the account number (stored in clear) is there before.
    assert a.customer.account_no.encode() in before

    async with db.uow() as uow:
        customer = await uow.customers.get(a.customer.id)
        assert customer is not None
        erasure = await erase_customer(
            uow, customer, channel=a.chats[0][0], chat_id=a.chats[0][1], now=T0 + timedelta(days=1)
        )
        await uow.commit()

    assert erasure.chats_unlinked == 2
    assert erasure.deleted["customers"] == 1 and erasure.deleted["chat_links"] == 2
    assert set((await _rows_of(db, a.customer.id)).values()) == {0}
    assert await _rows_of(db, b.customer.id) == b_before
    async with db.engine.connect() as conn:
        for table in chat_tables():
            for channel, chat_id in a.chats:
                query = (
                    select(func.count())
                    .select_from(table)
                    .where(table.c.channel == channel, table.c.chat_id == chat_id)
                )
                left = int((await conn.execute(query)).scalar_one())
                # Only the conversation state of the chat that asked stays (reset by the flow).
                kept = table is t.conversations and (channel, chat_id) == a.chats[0]
                assert left == (1 if kept else 0), (table.name, channel)
        audit = (await conn.execute(select(t.audit_log.c.action, t.audit_log.c.details))).all()
    assert [action for action, _ in audit][-1] == "customer.erased"
    async with db.uow() as uow:
        for channel, chat_id in a.chats:
            assert await uow.links.get(channel, chat_id) is None
        assert await uow.customers.find_by_phone(a.customer.phone) is None
        assert await uow.profile.customer_id_by_email(a.values["email"]) is None
        assert await uow.users.get_by_user_id(a.user_id) is None
        assert (
            await uow.profile.open_contact_change(a.customer.id, ContactKind.EMAIL, *a.chats[0])
            is None
        )
        other = await uow.customers.get(b.customer.id)
        assert other is not None and other.name == b.values["name"]

    after = await raw_dump(db, database_url)
    values = search_forms(a.values)
    # The kept conversation row has the chat id: it is the chat the customer is using now.
    leaks = find_values(after, values)
    assert not leaks, f"erased values still in the raw database: {leaks}"
    for chat_id in [a.chats[1][1], *a.bill_references]:
        assert chat_id.encode() not in after
    assert b.customer.account_no.encode() in after


async def test_erasing_twice_or_a_missing_customer_deletes_nothing_else(db: Database) -> None:
    a, b = await _two_customers(db)
    b_before = await _rows_of(db, b.customer.id)
    async with db.uow() as uow:
        deleted = await uow.personal_data.erase(a.customer.id)
        again = await uow.personal_data.erase(a.customer.id)
        missing = await uow.personal_data.erase("0" * 32)
        await uow.commit()
    assert deleted["customers"] == 1
    assert again == {} and missing == {}
    assert await _rows_of(db, b.customer.id) == b_before
