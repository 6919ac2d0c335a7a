"""Key rotation on both engines: everything ends up under the new key and still reads,
whether the rotation runs straight through, is interrupted, is killed with SIGKILL, or
races the service writing at the same time."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.util import await_only

from core.domain import Customer, new_id
from core.integration_events import OutboundEvent, WebhookEndpoint
from storage import tables as t
from storage.crypto import DecryptionError, FieldCipher, Keyring
from storage.db import create_engine
from storage.rotation import (
    ROW_ID_COLUMN,
    RotationProgress,
    count_stale,
    keys_in_use,
    reencrypt_all,
)
from storage.uow import Database
from tests.integration import factories as f
from tests.integration.support import decrypt_every_value, run_cli


async def _assert_customers_intact(db: Database, customers: list[Customer]) -> None:
    """Every customer reads back as stored and is found by phone and by user id."""
    async with db.uow() as uow:
        for c in customers:
            stored = await uow.customers.get(c.id)
            assert stored is not None and replace(stored, created_at=None) == c
            by_phone = await uow.customers.find_by_phone(c.phone)
            assert by_phone is not None and by_phone.id == c.id
            owner = await uow.users.get_by_user_id(f"U{c.account_no}")
            assert owner is not None and owner.customer_id == c.id
            (account,) = await uow.customers.service_accounts(c.id)
            assert account.number == c.phone
            conv = await uow.conversations.load_for_update("telegram", c.account_no, "th")
            assert conv.data["typed"] == c.name


async def _assert_all_on_one_key(db: Database, cipher: FieldCipher) -> None:
    assert set((await count_stale(db.engine, cipher)).values()) == {0}
    assert await keys_in_use(db.engine) == {cipher.keyring.active_key_id}
    await decrypt_every_value(db.engine, cipher)


async def _stale_total(db: Database, cipher: FieldCipher) -> int:
    return sum((await count_stale(db.engine, cipher)).values())


async def test_rotation_moves_every_value_to_the_new_key_and_the_old_key_can_go(
    db: Database, cipher: FieldCipher
) -> None:
    customers = await f.seed_population(db, 30)
    sparse = f.customer(email=None, national_id=None)
    await f.add_customers(db, sparse)
    old_ring = cipher.keyring
    values_before = await decrypt_every_value(db.engine, cipher)

    new_ring = old_ring.rotated()
    cipher.use(new_ring)
    stale = await count_stale(db.engine, cipher)
    assert all(stale[name] for name in f.POPULATED_TABLES), stale
    progress: list[RotationProgress] = []

    rewritten = await reencrypt_all(db.engine, cipher, batch_size=7, on_progress=progress.append)

    assert rewritten == sum(stale.values())
    assert {p.table for p in progress} == {name for name, n in stale.items() if n}
    assert [p.remaining for p in progress if p.table == "customers"][-1] == 0
    await _assert_all_on_one_key(db, cipher)
    assert await decrypt_every_value(db.engine, cipher) == values_before
    await _assert_customers_intact(db, [*customers])
    assert await reencrypt_all(db.engine, cipher) == 0  # nothing left: a no-op

    cipher.use(new_ring.without(old_ring.active_key_id))
    await _assert_all_on_one_key(db, cipher)
    await _assert_customers_intact(db, customers)
    async with db.uow() as uow:
        stored = await uow.customers.get(sparse.id)
    assert stored is not None and (stored.email, stored.national_id) == (None, None)

    cipher.use(old_ring)  # the retired key alone reads nothing any more
    with pytest.raises(DecryptionError, match="not in the keyring"):
        await decrypt_every_value(db.engine, cipher)


def test_every_encrypted_column_of_the_schema_is_rotated() -> None:
    """A ``*_enc`` column rotation missed would keep an old key in use unseen, and
    ``keys retire`` would then make it unreadable for good."""
    in_schema = {
        (table.name, column.name)
        for table in t.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_enc")
    }
    rotated = {
        (name, column) for name, columns in t.ENCRYPTED_COLUMNS.items() for column in columns
    }
    assert in_schema == rotated
    for name in t.ENCRYPTED_COLUMNS:
        table = t.metadata.tables[name]
        row_id = table.c[ROW_ID_COLUMN.get(name, "id")]
        assert table.c.id.primary_key  # what a rotation pages by
        assert row_id.primary_key or row_id.unique, f"{name}.{row_id.name} binds one row"


async def test_rotation_covers_media_callbacks_webhook_secrets_and_events(
    db: Database, cipher: FieldCipher
) -> None:
    endpoint = WebhookEndpoint(
        id=new_id(),
        url="https://billing.example.co.th/hooks",
        events=("profile.updated",),
        secret="whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        created_at=f.T0,
    )
    async with db.uow() as uow:
        media_id = await uow.media.put(
            b"\x89PNG\r\n\x1a\n-qr",
            filename="ใบแจ้งหนี้.png",
            mime_type="image/png",
            now=f.T0,
            expires_at=f.T0 + timedelta(days=1),
        )
        short = await uow.callback_payloads.shorten("pay:B100000000126101", f.T0)
        await uow.webhooks.add_endpoint(endpoint)
        event_id = await uow.events.publish(
            OutboundEvent("profile.updated", {"account_no": "1000000001"}), occurred_at=f.T0
        )
        await uow.commit()
    old_key = cipher.keyring.active_key_id
    cipher.use(cipher.keyring.rotated())

    await reencrypt_all(db.engine, cipher, batch_size=2)
    cipher.use(cipher.keyring.without(old_key))

    await _assert_all_on_one_key(db, cipher)
    async with db.uow() as uow:
        media = await uow.media.get(media_id, f.T0)
        assert media is not None and media.filename == "ใบแจ้งหนี้.png"
        assert await uow.callback_payloads.resolve(short) == "pay:B100000000126101"
        stored = await uow.webhooks.get_endpoint(endpoint.id)
        assert stored is not None and stored.secret == endpoint.secret
        (delivery,) = await uow.webhook_deliveries.claim_due(
            f.T0 + timedelta(days=1), 10, timedelta(minutes=1)
        )
    assert (delivery.event_id, delivery.secret) == (event_id, endpoint.secret)
    assert "1000000001" in delivery.body


async def test_an_interrupted_rotation_resumes_where_it_stopped(
    db: Database, cipher: FieldCipher
) -> None:
    customers = await f.seed_population(db, 25)
    cipher.use(cipher.keyring.rotated())
    total = await _stale_total(db, cipher)

    class Interrupted(Exception):
        pass

    def stop_after_first_batch(progress: RotationProgress) -> None:
        assert (progress.table, progress.rewritten) == ("customers", 4)
        raise Interrupted

    with pytest.raises(Interrupted):
        await reencrypt_all(db.engine, cipher, batch_size=4, on_progress=stop_after_first_batch)
    assert await _stale_total(db, cipher) == total - 4

    assert await reencrypt_all(db.engine, cipher, batch_size=4) == total - 4
    await _assert_all_on_one_key(db, cipher)
    await _assert_customers_intact(db, customers)


async def test_keys_rotate_killed_with_sigkill_resumes_and_loses_nothing(
    db: Database, cipher: FieldCipher, cli_env: dict[str, str], keyring_path: Path, tmp_path: Path
) -> None:
    customers = await f.seed_population(db, 300)
    first_key = cipher.keyring.active_key_id

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot", "keys", "rotate", "--batch-size", "5", "--grace", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    seen = b""
    try:
        async with asyncio.timeout(60):
            while b"rewritten" not in seen and (chunk := await proc.stderr.read(4096)):
                seen += chunk
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.communicate()
    assert b"rewritten" in seen, seen.decode(errors="replace")

    ring = await asyncio.to_thread(Keyring.load, keyring_path)
    assert ring.active_key_id != first_key  # the keyring is written before any row
    cipher.use(ring)
    interrupted = await _stale_total(db, cipher) > 0

    result = await run_cli(cli_env, "keys", "rotate", "--grace", "0", cwd=tmp_path)

    assert result.code == 0, result.stderr
    assert ("resuming" in result.stdout) is interrupted, result.stdout
    ring = await asyncio.to_thread(Keyring.load, keyring_path)
    if interrupted:
        assert ring.active_key_id == cipher.keyring.active_key_id  # no third key
    cipher.use(ring)
    await _assert_all_on_one_key(db, cipher)
    await _assert_customers_intact(db, customers)


async def test_a_value_changed_between_a_batch_read_and_its_write_is_not_overwritten(
    db: Database, cipher: FieldCipher, database_url: str
) -> None:
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has a single writer: a rotation batch holds it from read to write")
    customers = await f.seed_population(db, 10)
    cipher.use(cipher.keyring.rotated())
    moved = replace(min(customers, key=lambda c: c.id), address="ที่อยู่ใหม่ระหว่างหมุนกุญแจ")
    rotation_engine = create_engine(database_url)
    changed = False

    def service_writes_after_the_batch_is_read(conn: Any, _c: Any, sql: str, *_: Any) -> None:
        nonlocal changed
        if not changed and "FROM customers" in sql and "LIMIT" in sql:
            changed = True
            await_only(f.update_customer(db, moved))  # its own connection, committed

    event.listen(
        rotation_engine.sync_engine, "after_cursor_execute", service_writes_after_the_batch_is_read
    )
    try:
        await reencrypt_all(rotation_engine, cipher, batch_size=5)
    finally:
        await rotation_engine.dispose()

    assert changed
    async with db.uow() as uow:
        stored = await uow.customers.get(moved.id)
    assert stored is not None and stored.address == moved.address
    await _assert_all_on_one_key(db, cipher)


@pytest.mark.parametrize("writer_key", ["new", "old"])
async def test_rotation_while_the_service_keeps_writing(
    db: Database, cipher: FieldCipher, writer_key: str
) -> None:
    """``new``: the service already encrypts under the new key. ``old``: a process not yet
    restarted still writes under the old key, so a second pass is needed."""
    seeded = await f.seed_population(db, 60)
    old_ring = cipher.keyring
    new_ring = old_ring.rotated()
    cipher.use(new_ring)
    service = db if writer_key == "new" else Database(db.engine, FieldCipher(old_ring))
    expected = {c.id: c for c in seeded}
    rotation_done = asyncio.Event()
    first_write = asyncio.Event()
    writes_during_rotation = 0

    async def service_writes() -> None:
        nonlocal writes_during_rotation
        for n in itertools.count():
            if rotation_done.is_set() and n >= 40:
                return
            changed = replace(seeded[n % len(seeded)], address=f"ย้ายบ้านครั้งที่ {n} 🚚")
            added = f.customer()
            async with service.uow() as uow:
                await uow.customers.update(changed)
                await uow.customers.add(added)
                await uow.commit()
            expected[changed.id] = changed
            expected[added.id] = added
            writes_during_rotation += not rotation_done.is_set()
            first_write.set()
            await asyncio.sleep(0)

    writer = asyncio.create_task(service_writes())
    try:
        # The service is writing before the rotation starts, whatever the machine's load.
        await asyncio.wait_for(first_write.wait(), timeout=60)
        await reencrypt_all(db.engine, cipher, batch_size=5)
        rotation_done.set()
        await asyncio.wait_for(writer, timeout=60)
    finally:
        writer.cancel()
    assert writes_during_rotation > 0

    if writer_key == "old":
        await reencrypt_all(db.engine, cipher, batch_size=5)
    await _assert_all_on_one_key(db, cipher)
    async with db.uow() as uow:
        for c in expected.values():
            stored = await uow.customers.get(c.id)
            # A value the service wrote is never replaced by a stale re-encryption.
            assert stored is not None and replace(stored, created_at=None) == c
