"""Keyring changes across processes: one rotation at a time, running processes reload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import keys
from storage import rotation
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
