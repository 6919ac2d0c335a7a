"""Keyring changes across processes: one rotation at a time, running processes reload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot import keys
from storage import rotation
from storage import tables as t
from storage.crypto import FieldCipher, Keyring, KeyringError
from storage.uow import Database
from tests.integration import factories


async def test_a_second_rotation_while_one_runs_is_refused(
    db: Database, keyring_path: Path
) -> None:
    async with keys.keyring_lock(keyring_path):
        with pytest.raises(keys.KeyringBusy):
            await keys.rotate(
                db.engine,
                db.cipher,
                keyring_path,
                batch_size=10,
                grace_seconds=0,
                say=lambda _: None,
            )
    before = await asyncio.to_thread(Keyring.load, keyring_path)
    assert len(before.keys) == 1  # nothing was rotated while the lock was held


async def test_a_running_process_reads_rows_rotated_under_a_new_key(
    db: Database, keyring_path: Path
) -> None:
    customer = factories.customer()
    async with db.uow() as uow:
        await uow.customers.add(customer)
        await uow.commit()
    # "Another process": its own cipher over the same database, watching the keyring file.
    service_cipher = FieldCipher(await asyncio.to_thread(Keyring.load, keyring_path))
    service = Database(db.engine, service_cipher)
    watcher = keys.KeyringWatcher(keyring_path, service_cipher, interval=3600)
    await watcher.start()
    try:
        said: list[str] = []
        await keys.rotate(
            db.engine, db.cipher, keyring_path, batch_size=10, grace_seconds=0, say=said.append
        )
        assert said[0].startswith("new active key")
        assert await watcher.check() is True
        async with service.uow() as uow:
            stored = await uow.customers.get(customer.id)
        assert stored is not None and stored.name == customer.name
        assert service_cipher.keyring.active_key_id == db.cipher.keyring.active_key_id
        assert await watcher.check() is False  # nothing changed since
    finally:
        await watcher.stop()


async def test_retire_refuses_a_key_still_in_use_and_removes_an_unused_one(
    db: Database, keyring_path: Path
) -> None:
    async with db.uow() as uow:
        await uow.customers.add(factories.customer())
        await uow.commit()
    old = db.cipher.keyring.active_key_id
    # Make a new key active without re-encrypting: the old one is still in use.
    rotated = db.cipher.keyring.rotated()
    await asyncio.to_thread(rotated.save, keyring_path)
    db.cipher.use(rotated)
    with pytest.raises(KeyringError, match="still in use"):
        await keys.retire(db.engine, db.cipher, keyring_path, old)
    await rotation.reencrypt_all(db.engine, db.cipher)
    await keys.retire(db.engine, db.cipher, keyring_path, old)
    with pytest.raises(KeyringError, match=r"in use|active"):
        await keys.retire(db.engine, db.cipher, keyring_path, rotated.active_key_id)
    on_disk = await asyncio.to_thread(Keyring.load, keyring_path)
    assert old not in on_disk.keys


async def test_a_tampered_value_does_not_stop_the_rotation_of_everything_else(
    db: Database, keyring_path: Path
) -> None:
    customers = [factories.customer() for _ in range(5)]
    await factories.add_customers(db, *customers)
    victim = customers[2]
    # Someone edits one ciphertext in place: one byte of the name flipped.
    async with db.engine.begin() as conn:
        name = t.customers.c.name_enc
        stored = (
            await conn.execute(select(name).where(t.customers.c.id == victim.id))
        ).scalar_one()
        tampered = bytes(stored[:-1]) + bytes([stored[-1] ^ 1])
        await conn.execute(
            update(t.customers).where(t.customers.c.id == victim.id).values(name_enc=tampered)
        )

    with pytest.raises(keys.UnreadableValues) as refused:
        await keys.rotate(
            db.engine, db.cipher, keyring_path, batch_size=2, grace_seconds=0, say=lambda _: None
        )

    assert [str(u) for u in refused.value.found] == [f"customers.name_enc of row {victim.id}"]
    assert victim.name not in str(refused.value)  # where, never what
    stale = await rotation.count_stale(db.engine, db.cipher)
    assert sum(stale.values()) == 1 and stale["customers"] == 1  # only the tampered row
    async with db.uow() as uow:  # everyone else reads under the new key
        for c in customers:
            if c is not victim:
                found = await uow.customers.get(c.id)
                assert found is not None and found.name == c.name


async def test_rotating_with_the_wrong_keyring_touches_nothing(
    db: Database, keyring_path: Path
) -> None:
    await factories.add_customers(db, factories.customer())
    used = db.cipher.keyring.active_key_id
    await asyncio.to_thread(Keyring.generate().save, keyring_path)

    with pytest.raises(KeyringError, match=used):
        await keys.rotate(
            db.engine, db.cipher, keyring_path, batch_size=10, grace_seconds=0, say=lambda _: None
        )

    ring = await asyncio.to_thread(Keyring.load, keyring_path)
    assert len(ring.keys) == 1  # no new key was made
    assert await rotation.keys_in_use(db.engine) == {used}
