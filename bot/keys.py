"""Keyring operations that span processes: the rotation lock, the reload watcher, rotation.

- Only one ``keys rotate``/``keys retire`` at a time (an exclusive ``flock`` on
  ``<keyring>.lock``): two rotations saving the keyring at once would lose a key.
- Every long-running process reloads the keyring file when it changes
  (:class:`KeyringWatcher`, started by bootstrap), so rows re-encrypted under a new key
  stay readable everywhere without a restart.
- :func:`rotate` makes the new key active, waits a grace period for the other processes to
  load it, then re-encrypts, and passes again until no row is left on an old key.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import rotation
from storage.crypto import FieldCipher, Keyring, KeyringError

log = logging.getLogger(__name__)

RELOAD_INTERVAL_SECONDS = 2.0
MAX_PASSES = 5


class KeyringBusy(Exception):
    """Another process holds the keyring lock."""


class UnreadableValues(RuntimeError):
    """A rotation moved everything to the new key but values it cannot decrypt."""

    def __init__(self, found: list[rotation.Unreadable]) -> None:
        self.found = found
        shown = ", ".join(str(u) for u in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        super().__init__(
            f"every other value is under the new key, but {len(found)} rows hold a value "
            f"that cannot be decrypted (tampered with, or copied from another row): "
            f"{shown}{more}; restore those rows from a backup or erase them, then run "
            "`selfcare keys rotate` again"
        )


@contextlib.asynccontextmanager
async def keyring_lock(path: Path) -> AsyncIterator[None]:
    """Hold the exclusive lock of the keyring at ``path``; raises :class:`KeyringBusy`."""
    lock_path = path.with_name(path.name + ".lock")

    def acquire() -> int:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise KeyringBusy(f"another process is changing {path}") from None
        return fd

    fd = await asyncio.to_thread(acquire)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except FileNotFoundError:
        return None


class KeyringWatcher:
    """Reloads the keyring into ``cipher`` whenever the file changes."""

    def __init__(self, path: Path, cipher: FieldCipher, interval: float = RELOAD_INTERVAL_SECONDS):
        self._path = path
        self._cipher = cipher
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._seen = await asyncio.to_thread(_mtime, self._path)
        self._task = asyncio.create_task(self._run(), name="keyring-watcher")

    async def check(self) -> bool:
        """Reload now if the file changed; True when a new keyring was loaded."""
        mtime = await asyncio.to_thread(_mtime, self._path)
        if mtime is None or mtime == self._seen:
            return False
        try:
            keyring = await asyncio.to_thread(Keyring.load, self._path)
        except KeyringError as exc:
            # Half-written files cannot happen (saves are atomic); a bad edit can.
            log.error("keyring reload failed", extra={"reason": str(exc)})
            return False
        self._seen = mtime
        self._cipher.use(keyring)
        log.info("keyring reloaded", extra={"active_key": keyring.active_key_id})
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception as exc:  # a watcher must never die quietly
                log.error("keyring watcher error", extra={"exc_type": type(exc).__name__})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def rotate(
    engine: AsyncEngine,
    cipher: FieldCipher,
    path: Path,
    *,
    batch_size: int,
    grace_seconds: float,
    say: Callable[[str], None],
    on_progress: Callable[[rotation.RotationProgress], None] | None = None,
) -> int:
    """Rotate to a new key (or resume an interrupted rotation); returns rows rewritten.

    Raises :class:`KeyringBusy` while another rotation runs, ``KeyringError`` when rows
    use keys the keyring lacks (the wrong keyring: nothing is touched),
    :class:`UnreadableValues` when all is rotated but values that cannot be decrypted,
    and ``RuntimeError`` when rows are still on an old key after several passes (a
    process without the new keyring keeps writing)."""
    async with keyring_lock(path):
        keyring = await asyncio.to_thread(Keyring.load, path)  # fresh: not a stale copy
        missing = sorted(await rotation.keys_in_use(engine) - set(keyring.keys))
        if missing:
            raise KeyringError(
                f"rows are encrypted under keys {path} lacks ({', '.join(missing)}): is "
                "SELFCARE_KEYRING_FILE this database's keyring? Nothing was rotated"
            )
        cipher.use(keyring)
        stale = sum((await rotation.count_stale(engine, cipher)).values())
        if stale:
            say(f"resuming: {stale} rows still on older keys, active key {keyring.active_key_id}")
        else:
            keyring = keyring.rotated()
            await asyncio.to_thread(keyring.save, path)
            cipher.use(keyring)
            say(f"new active key {keyring.active_key_id}")
            # Let running processes load the new key before rows start using it.
            await asyncio.sleep(grace_seconds)
        total = 0
        unreadable: dict[tuple[str, str], rotation.Unreadable] = {}
        for _ in range(MAX_PASSES):
            found: list[rotation.Unreadable] = []
            total += await rotation.reencrypt_all(
                engine, cipher, batch_size=batch_size, on_progress=on_progress, unreadable=found
            )
            unreadable.update({(u.table, u.row): u for u in found})
            stale = sum((await rotation.count_stale(engine, cipher)).values())
            left = stale - len(unreadable)
            if left <= 0:
                if unreadable:
                    raise UnreadableValues(sorted(unreadable.values(), key=str))
                return total
            await asyncio.sleep(grace_seconds)
        raise RuntimeError(
            f"{left} rows are still on an older key after {MAX_PASSES} passes; a process "
            "without the new keyring may still be writing — restart it and run again"
        )


async def retire(engine: AsyncEngine, cipher: FieldCipher, path: Path, key_id: str) -> None:
    """Remove ``key_id`` from the keyring; raises ``KeyringError`` if it is active, unknown
    or still used by a row, :class:`KeyringBusy` while a rotation runs."""
    async with keyring_lock(path):
        keyring = await asyncio.to_thread(Keyring.load, path)
        if key_id in await rotation.keys_in_use(engine):
            raise KeyringError(f"key {key_id} is still in use; run `selfcare keys rotate` first")
        new = keyring.without(key_id)
        await asyncio.to_thread(new.save, path)
        cipher.use(new)
