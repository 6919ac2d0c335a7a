"""Per-key transaction locks.

PostgreSQL: ``pg_advisory_xact_lock`` on a 64-bit key derived from the name, released at
commit or rollback. SQLite: every transaction already holds the database's single write
lock (``BEGIN IMMEDIATE``, see storage/db.py), so there is nothing more to take.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (stable across processes and versions)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def advisory_xact_lock(conn: AsyncConnection, name: str) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})


async def try_advisory_xact_lock(conn: AsyncConnection, name: str) -> bool:
    """Like :func:`advisory_xact_lock` but gives up at once: False when another
    transaction holds the lock (SQLite: always True, the write lock is held already)."""
    if conn.dialect.name != "postgresql":
        return True
    result = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(name)})
    return bool(result.scalar_one())
