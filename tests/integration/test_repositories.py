"""The repositories on both engines: encryption at rest, blind-index lookups, the
append-only ledgers, and what the database refuses to hand back."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from core.domain import AuditEntry, Channel, ConsentPurpose, ConsentRecord, ServiceKind
from storage import tables as t
from storage.crypto import DecryptionError, FieldCipher
from storage.repositories import AUDIT_GENESIS, audit_hash
from storage.rotation import reencrypt_all
from storage.uow import Database
from tests.integration import factories as f

SQL_INJECTION = "'; DROP TABLE customers;--"


async def _raw_sql(db: Database, sql: str, **params: object) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text(sql), params)


# --- customers --------------------------------------------------------------------------


async def test_customer_round_trip_keeps_thai_emoji_and_missing_optional_fields(
    db: Database,
) -> None:
    customer = f.customer(
        name="นางสาวพรทิพย์ ศรีสุข 🌸",
        address="99/1 ซอยสุขุมวิท 63 แขวงคลองตันเหนือ เขตวัฒนา กรุงเทพมหานคร 10110 🏠",
        email=None,
        national_id=None,
        language="en",
    )
    await f.add_customers(db, customer)

    async with db.uow() as uow:
        stored = await uow.customers.get(customer.id)
        by_account = await uow.customers.get_by_account_no(customer.account_no)

    assert stored is not None and stored.created_at is not None
    assert replace(stored, created_at=None) == customer
    assert by_account == stored


async def test_customer_update_re_encrypts_and_moves_the_phone_index(db: Database) -> None:
    customer = f.customer(phone="0812345678")
    await f.add_customers(db, customer)
    moved = replace(customer, phone="0899999999", address="ที่อยู่ใหม่ 🚚", email=None)

    async with db.uow() as uow:
        await uow.customers.update(moved)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.customers.find_by_phone("0812345678") is None
        found = await uow.customers.find_by_phone("089-999-9999")

    assert found is not None
    assert replace(found, created_at=None) == moved


async def test_customers_for_a_number_tell_a_shared_number_apart(db: Database) -> None:
    alone, contact, subscriber, landline = (f.customer() for _ in range(4))
    contact = replace(contact, phone="0811111111")
    await f.add_customers(db, alone, contact, subscriber, landline)
    async with db.uow() as uow:
        # A mobile number on file twice for its owner is still one customer.
        await uow.customers.add_service_account(f.service_account(alone))
        await uow.customers.add_service_account(f.service_account(subscriber, number="0811111111"))
        fixed = f.service_account(landline, number="02-111-1111", kind=ServiceKind.FIXED)
        await uow.customers.add_service_account(fixed)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.customers.customer_ids_for_number(alone.phone) == [alone.id]
        shared = await uow.customers.customer_ids_for_number("+66 81 111 1111")
        assert sorted(shared) == sorted([contact.id, subscriber.id])
        assert await uow.customers.customer_ids_for_number("081-111-1111", limit=1) in (
            [contact.id],
            [subscriber.id],
        )
        assert await uow.customers.customer_ids_for_number("021111111") == []  # not a mobile
        assert await uow.customers.customer_ids_for_number(SQL_INJECTION) == []


PHONE_SPELLINGS = [
    "0812345678",
    "081-234-5678",
    "+66 81-234-5678",
    "+66812345678",
    "66 (0)81 234 5678",
    "๐๘๑๒๓๔๕๖๗๘",
]


async def _assert_lookups_work(db: Database, customer_id: str, user_id: str) -> None:
    async with db.uow() as uow:
        for spelling in PHONE_SPELLINGS:
            found = await uow.customers.find_by_phone(spelling)
            assert found is not None and found.id == customer_id, spelling
        account = await uow.customers.find_service_account_by_number("+66 81 234 5678")
        assert account is not None and account.customer_id == customer_id
        for spelling in (user_id, user_id.upper(), f"  {user_id.lower()} "):
            found_user = await uow.users.get_by_user_id(spelling)
            assert found_user is not None and found_user.user_id == user_id, spelling
        assert await uow.customers.find_by_phone("0812345679") is None
        assert await uow.customers.find_by_phone("not a phone") is None
        assert await uow.users.get_by_user_id(user_id + "x") is None


async def test_lookups_by_blind_index_survive_key_rotation(
    db: Database, cipher: FieldCipher
) -> None:
    customer = f.customer(phone="081-234-5678")
    owner = f.user(customer, user_id="Somchai.J")
    async with db.uow() as uow:
        await uow.customers.add(customer)
        await uow.customers.add_service_account(f.service_account(customer))
        await uow.users.add(owner)
        await uow.commit()
    await _assert_lookups_work(db, customer.id, "Somchai.J")

    old_key = cipher.keyring.active_key_id
    cipher.use(cipher.keyring.rotated())
    await _assert_lookups_work(db, customer.id, "Somchai.J")  # rows still on the old key

    await reencrypt_all(db.engine, cipher)
    cipher.use(cipher.keyring.without(old_key))
    await _assert_lookups_work(db, customer.id, "Somchai.J")


# --- what the database cannot forge -------------------------------------------------------


async def test_ciphertext_copied_to_another_row_is_refused(db: Database) -> None:
    victim, attacker = f.customer(), f.customer()
    await f.add_customers(db, victim, attacker)

    await _raw_sql(
        db,
        "UPDATE customers SET name_enc = (SELECT name_enc FROM customers WHERE id = :src) "
        "WHERE id = :dst",
        src=victim.id,
        dst=attacker.id,
    )

    async with db.uow() as uow:
        with pytest.raises(DecryptionError, match=r"customers\.name"):
            await uow.customers.get(attacker.id)
        assert await uow.customers.get(victim.id) is not None


async def test_ciphertext_copied_to_another_column_of_the_same_row_is_refused(
    db: Database,
) -> None:
    customer = f.customer()
    await f.add_customers(db, customer)

    await _raw_sql(db, "UPDATE customers SET address_enc = name_enc WHERE id = :id", id=customer.id)

    async with db.uow() as uow:
        with pytest.raises(DecryptionError, match=r"customers\.address"):
            await uow.customers.get(customer.id)


@pytest.mark.parametrize("position", [0, 1, 7, 20, -1], ids=lambda p: f"byte{p}")
async def test_one_flipped_byte_in_a_stored_ciphertext_is_refused(
    db: Database, position: int
) -> None:
    customer = f.customer()
    await f.add_customers(db, customer)
    async with db.engine.begin() as conn:
        token = bytearray(
            (
                await conn.execute(
                    select(t.customers.c.phone_enc).where(t.customers.c.id == customer.id)
                )
            ).scalar_one()
        )
        token[position] ^= 0x01
        await conn.execute(
            update(t.customers)
            .where(t.customers.c.id == customer.id)
            .values(phone_enc=bytes(token))
        )

    async with db.uow() as uow:
        with pytest.raises(DecryptionError):
            await uow.customers.get(customer.id)


async def test_sql_looking_values_are_stored_and_read_back_verbatim(db: Database) -> None:
    customer = f.customer(
        name=SQL_INJECTION, address="Robert'); DROP TABLE students;--", email="a'--@x.th"
    )
    owner = f.user(customer, user_id="x' OR '1'='1")
    async with db.uow() as uow:
        await uow.customers.add(customer)
        await uow.users.add(owner)
        await uow.links.link(f.chat_link(owner, chat_id=SQL_INJECTION))
        await uow.commit()

    async with db.uow() as uow:
        stored = await uow.customers.get(customer.id)
        found_user = await uow.users.get_by_user_id("x' OR '1'='1")
        link = await uow.links.get("telegram", SQL_INJECTION)
        assert await uow.customers.get_by_account_no("' OR '1'='1") is None
        assert await uow.users.get_by_user_id("' OR '1'='1") is None
        assert await uow.customers.count() == 1

    assert stored is not None
    assert (stored.name, stored.address, stored.email) == (
        customer.name,
        customer.address,
        customer.email,
    )
    assert found_user is not None and found_user.user_id == "x' OR '1'='1"
    assert link is not None and link.chat_id == SQL_INJECTION


# --- bills -----------------------------------------------------------------------------


async def test_bills_come_newest_first_and_since_cuts_older_ones(db: Database) -> None:
    customer = f.customer()
    account = f.service_account(customer)
    months = [date(2026, m, 1) for m in (3, 1, 4, 2)]
    async with db.uow() as uow:
        await uow.customers.add(customer)
        await uow.customers.add_service_account(account)
        for month in months:
            await uow.bills.add(f.bill(account, month))
        await uow.commit()

    async with db.uow() as uow:
        every = await uow.bills.for_customer(customer.id)
        recent = await uow.bills.for_customer(customer.id, since=date(2026, 3, 1))
        newest_two = await uow.bills.for_customer(customer.id, limit=2)
        others = await uow.bills.for_customer(f.customer().id)

    assert [b.period_start.month for b in every] == [4, 3, 2, 1]
    assert [b.period_start.month for b in recent] == [4, 3]
    assert [b.period_start.month for b in newest_two] == [4, 3]
    assert others == []
    async with db.uow() as uow:
        assert await uow.bills.get_by_reference(every[0].reference) == every[0]


# --- chat links, consent, audit ------------------------------------------------------------


async def test_chat_links_link_unlink_and_list_per_customer(db: Database) -> None:
    first, second = f.customer(), f.customer()
    first_user, second_user = f.user(first), f.user(second)
    async with db.uow() as uow:
        for c, u in ((first, first_user), (second, second_user)):
            await uow.customers.add(c)
            await uow.users.add(u)
        await uow.links.link(f.chat_link(first_user, chat_id="100"))
        await uow.links.link(f.chat_link(first_user, chat_id="U200", channel=Channel.LINE))
        await uow.commit()

    async with db.uow() as uow:
        assert [(x.channel, x.chat_id) for x in await uow.links.for_customer(first.id)] == [
            (Channel.TELEGRAM, "100"),
            (Channel.LINE, "U200"),
        ]
        # The same chat id on another channel is another chat.
        assert await uow.links.get("line", "100") is None
        assert await uow.links.unlink("line", "U200") is True
        assert await uow.links.unlink("line", "U200") is False
        await uow.commit()

    async with db.uow() as uow:
        assert [x.chat_id for x in await uow.links.for_customer(first.id)] == ["100"]


async def test_relinking_a_chat_replaces_its_old_link(db: Database) -> None:
    first, second = f.customer(), f.customer()
    first_user, second_user = f.user(first), f.user(second)
    async with db.uow() as uow:
        for c, u in ((first, first_user), (second, second_user)):
            await uow.customers.add(c)
            await uow.users.add(u)
        await uow.links.link(f.chat_link(first_user, chat_id="100"))
        await uow.commit()

    async with db.uow() as uow:
        await uow.links.link(f.chat_link(second_user, chat_id="100"))
        await uow.commit()

    async with db.uow() as uow:
        link = await uow.links.get("telegram", "100")
        assert link is not None and link.customer_id == second.id
        assert await uow.links.for_customer(first.id) == []
        assert await uow.links.for_customer(second.id) == [link]


async def test_consent_ledger_keeps_every_decision_in_order(db: Database) -> None:
    customer = f.customer()
    decisions = [
        ConsentRecord(customer.id, purpose, granted, "2026-11", "telegram", f.T0 + timedelta(i))
        for i, (purpose, granted) in enumerate(
            [
                (ConsentPurpose.PRIVACY_NOTICE, True),
                (ConsentPurpose.MARKETING, True),
                (ConsentPurpose.MARKETING, False),
                (ConsentPurpose.MARKETING, True),
            ]
        )
    ]
    await f.add_customers(db, customer)
    for decision in decisions:  # one transaction each, as the service records them
        async with db.uow() as uow:
            await uow.consent.record(decision)
            await uow.commit()

    async with db.uow() as uow:
        assert await uow.consent.history(customer.id) == decisions
        assert await uow.consent.history(f.customer().id) == []


async def test_audit_log_rows_form_a_hash_chain(db: Database) -> None:
    entries = [
        f.audit_entry(at=f.T0 + timedelta(seconds=i), details={"n": i, "note": "ดูข้อมูล 👀"})
        for i in range(4)
    ]
    for entry in entries[:2]:
        async with db.uow() as uow:
            await uow.audit.append(entry)
            await uow.commit()
    async with db.uow() as uow:
        for entry in entries[2:]:
            await uow.audit.append(entry)
        await uow.commit()

    async with db.engine.connect() as conn:
        result = await conn.execute(select(t.audit_log).order_by(t.audit_log.c.id))
        rows = list(result.mappings())

    assert len(rows) == len(entries)
    prev = AUDIT_GENESIS
    for row, entry in zip(rows, entries, strict=True):
        stored = AuditEntry(
            actor=row["actor"],
            action=row["action"],
            subject=row["subject"],
            details=json.loads(row["details"]),
            at=row["at"],
        )
        assert stored == entry
        assert row["prev_hash"] == prev
        assert row["hash"] == audit_hash(prev, stored)
        prev = row["hash"]
    assert rows[0]["prev_hash"] == "0" * 64


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET actor = 'someone-else'", "DELETE FROM audit_log"],
    ids=["update", "delete"],
)
async def test_the_database_refuses_to_rewrite_the_audit_log(db: Database, statement: str) -> None:
    async with db.uow() as uow:
        await uow.audit.append(f.audit_entry())
        await uow.commit()

    with pytest.raises(DBAPIError, match="append-only"):
        await _raw_sql(db, statement)

    async with db.engine.connect() as conn:
        actors = (await conn.execute(select(t.audit_log.c.actor))).scalars().all()
    assert actors == ["staff:somchai"]


# --- units of work ------------------------------------------------------------------------


async def test_unit_of_work_without_commit_leaves_nothing(db: Database) -> None:
    customer = f.customer()
    async with db.uow() as uow:
        await uow.customers.add(customer)
        await uow.consent.record(
            ConsentRecord(customer.id, ConsentPurpose.MARKETING, True, "v1", "line", f.T0)
        )
        await uow.audit.append(f.audit_entry())

    with pytest.raises(RuntimeError, match="boom"):
        async with db.uow() as uow:
            await uow.customers.add(f.customer())
            raise RuntimeError("boom")

    async with db.uow() as uow:
        assert await uow.customers.get(customer.id) is None
        assert await uow.customers.count() == 0
        assert await uow.consent.history(customer.id) == []
    async with db.engine.connect() as conn:
        assert (await conn.execute(select(t.audit_log.c.id))).first() is None
