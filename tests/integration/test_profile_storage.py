"""The profile repository on SQLite and PostgreSQL: contact changes waiting for a code and
correction requests, their values encrypted (bound to their row), looked up without
decrypting anything."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.domain import (
    ContactChange,
    ContactKind,
    CorrectionRequest,
    CorrectionStatus,
    ProfileField,
    new_id,
)
from storage import tables_profile as tp
from storage.crypto import DecryptionError, FieldCipher
from storage.uow import Database
from tests.integration import factories
from tests.integration.factories import T0

WORDS = "ชื่อสะกดผิดค่ะ 😊 ที่ถูกคือ 'สมหญิง'; DROP TABLE customers;--"


def change(customer_id: str, **overrides: object) -> ContactChange:
    values: dict[str, object] = {
        "id": new_id(),
        "customer_id": customer_id,
        "kind": ContactKind.EMAIL,
        "value": "New.Person@example.com",
        "channel": "telegram",
        "chat_id": "777",
        "code_digest": b"\x01" * 32,
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=10),
    }
    values.update(overrides)
    return ContactChange(**values)  # type: ignore[arg-type]


async def test_a_contact_change_round_trips_and_only_the_newest_is_open(db: Database) -> None:
    c = factories.customer()
    await factories.add_customers(db, c)
    first = change(c.id)
    second = change(c.id, value="second@example.com", created_at=T0 + timedelta(minutes=1))
    phone = change(c.id, kind=ContactKind.PHONE, value="0912345678")
    async with db.uow() as uow:
        await uow.profile.add_contact_change(first)
        await uow.profile.add_contact_change(phone)
        await uow.profile.add_contact_change(second)
        await uow.commit()
    async with db.uow() as uow:
        assert (
            await uow.profile.open_contact_change(c.id, ContactKind.EMAIL, "telegram", "777")
            == second
        )
        assert (
            await uow.profile.open_contact_change(c.id, ContactKind.PHONE, "telegram", "777")
            == phone
        )
        assert await uow.profile.open_contact_change(c.id, ContactKind.EMAIL, "line", "777") is None
        await uow.profile.update_contact_change(second.id, attempts=2, used_at=None)
        await uow.commit()
    async with db.uow() as uow:
        found = await uow.profile.open_contact_change(c.id, ContactKind.EMAIL, "telegram", "777")
        assert found == dataclasses.replace(second, attempts=2)
        await uow.profile.update_contact_change(second.id, attempts=3, used_at=T0)
        await uow.commit()
    async with db.uow() as uow:
        assert (
            await uow.profile.open_contact_change(c.id, ContactKind.EMAIL, "telegram", "777")
            is None
        )


async def test_new_values_and_words_are_stored_encrypted_and_bound_to_their_row(
    db: Database, cipher: FieldCipher
) -> None:
    c = factories.customer()
    await factories.add_customers(db, c)
    pending = change(c.id)
    request = CorrectionRequest(new_id(), c.id, ProfileField.NAME, WORDS, "line", T0)
    async with db.uow() as uow:
        await uow.profile.add_contact_change(pending)
        await uow.profile.add_correction(request)
        await uow.profile.resolve_correction(
            request.id, by="staff:a", note="แก้แล้ว 0812345678", at=T0
        )
        await uow.commit()
    async with db.engine.connect() as conn:
        value = (await conn.execute(select(tp.contact_changes.c.value_enc))).scalar_one()
        text, note = (
            await conn.execute(
                select(tp.correction_requests.c.text_enc, tp.correction_requests.c.note_enc)
            )
        ).one()
    for blob, clear in ((value, pending.value), (text, WORDS), (note, "0812345678")):
        assert clear.encode() not in bytes(blob)
    assert (
        cipher.decrypt(bytes(value), table="contact_changes", column="value", row_id=pending.id)
        == pending.value
    )
    with pytest.raises(DecryptionError):  # moved to another row, it does not decrypt
        cipher.decrypt(bytes(text), table="correction_requests", column="text", row_id=new_id())


async def test_an_email_is_found_by_its_blind_index_in_any_case(db: Database) -> None:
    c = factories.customer(email="Somying.J@Example.co.th")
    other = factories.customer(email=None)
    await factories.add_customers(db, c, other)
    async with db.uow() as uow:
        assert await uow.profile.customer_id_by_email("somying.j@example.CO.TH ") == c.id
        assert await uow.profile.customer_id_by_email("nobody@example.co.th") is None


async def test_a_correction_is_resolved_once(db: Database) -> None:
    c = factories.customer()
    await factories.add_customers(db, c)
    older = CorrectionRequest(new_id(), c.id, ProfileField.ADDRESS, "ที่อยู่ผิด", "telegram", T0)
    newer = CorrectionRequest(
        new_id(), c.id, ProfileField.OTHER, WORDS, "line", T0 + timedelta(minutes=5)
    )
    async with db.uow() as uow:
        await uow.profile.add_correction(newer)
        await uow.profile.add_correction(older)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.profile.open_corrections() == [older, newer]
        assert await uow.profile.corrections_for(c.id) == [older, newer]
        at = T0 + timedelta(hours=1)
        assert await uow.profile.resolve_correction(
            older.id, by="staff:somchai", note="แก้แล้ว", at=at
        )
        assert not await uow.profile.resolve_correction(older.id, by="staff:other", note="x", at=at)
        assert not await uow.profile.resolve_correction(new_id(), by="staff:other", note="x", at=at)
        await uow.commit()
    async with db.uow() as uow:
        resolved = await uow.profile.get_correction(older.id)
        assert resolved == dataclasses.replace(
            older,
            status=CorrectionStatus.RESOLVED,
            resolved_at=T0 + timedelta(hours=1),
            resolved_by="staff:somchai",
            resolution_note="แก้แล้ว",
        )
        assert await uow.profile.open_corrections() == [newer]
        assert await uow.profile.get_correction(new_id()) is None
