"""Key rotation: re-encrypt every encrypted value under the keyring's active key.

Works in batches, each its own short transaction, so the service keeps reading and
writing meanwhile. The work left is read from the data itself (ciphertexts whose key-id
prefix is not the active key's), so a killed rotation resumes where it stopped.
An update only lands if the row still holds the ciphertext that was read: a value the
service rewrote in between is never overwritten with a stale one. A value that cannot be
decrypted (tampered with, or bound to another row) does not stop the rotation: its row is
left as it is and reported, so everything else moves to the new key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import tables as t
from storage.crypto import DecryptionError, FieldCipher

#: The column whose value is a ciphertext's row id (its associated data), by table.
ROW_ID_COLUMN = {"outbox": "uid", "integration_events": "event_id"}


@dataclass(frozen=True, slots=True)
class RotationProgress:
    table: str
    rewritten: int
    remaining: int


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored value the keyring cannot decrypt: where it is, never what it was."""

    table: str
    column: str
    row: str  # the row's primary key

    def __str__(self) -> str:
        return f"{self.table}.{self.column} of row {self.row}"


def _stale(table: Table, columns: tuple[str, ...], prefix: bytes) -> ColumnElement[bool]:
    n = len(prefix)
    return or_(
        *(
            and_(table.c[col].is_not(None), func.substr(table.c[col], 1, n) != prefix)
            for col in columns
        )
    )


async def count_stale(engine: AsyncEngine, cipher: FieldCipher) -> dict[str, int]:
    """How many rows of each table still hold a value under a key other than the active one."""
    prefix = cipher.key_prefix()
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        for name, columns in t.ENCRYPTED_COLUMNS.items():
            table = t.metadata.tables[name]
            query = select(func.count()).select_from(table).where(_stale(table, columns, prefix))
            counts[name] = int((await conn.execute(query)).scalar_one())
    return counts


async def keys_in_use(engine: AsyncEngine) -> set[str]:
    """Every key id some stored ciphertext still needs."""
    found: set[str] = set()
    async with engine.connect() as conn:
        for name, columns in t.ENCRYPTED_COLUMNS.items():
            table = t.metadata.tables[name]
            for col in columns:
                query = select(func.substr(table.c[col], 2, 4)).where(table.c[col].is_not(None))
                found.update(
                    bytes(v).hex() for v in (await conn.execute(query.distinct())).scalars()
                )
    return found


async def reencrypt_all(
    engine: AsyncEngine,
    cipher: FieldCipher,
    *,
    batch_size: int = 500,
    on_progress: Callable[[RotationProgress], None] | None = None,
    unreadable: list[Unreadable] | None = None,
) -> int:
    """Re-encrypt every value not under the active key; returns how many rows were rewritten.

    A row with a value that cannot be decrypted is skipped and added to ``unreadable``;
    without that list, ``storage.crypto.DecryptionError`` is raised instead."""
    prefix = cipher.key_prefix()
    total = 0
    remaining = await count_stale(engine, cipher)
    for name, columns in t.ENCRYPTED_COLUMNS.items():
        table = t.metadata.tables[name]
        id_col = table.c[ROW_ID_COLUMN.get(name, "id")]
        pk = table.c.id
        left = remaining[name]
        rewritten = 0
        last_pk: object = None
        while True:
            query = select(pk, id_col, *(table.c[c] for c in columns)).where(
                _stale(table, columns, prefix)
            )
            if last_pk is not None:
                query = query.where(pk > last_pk)
            query = query.order_by(pk).limit(batch_size)
            async with engine.begin() as conn:
                rows = (await conn.execute(query)).all()
                if not rows:
                    break
                for row in rows:
                    row_id = str(row[1])
                    old = dict(zip(columns, row[2:], strict=True))
                    new: dict[str, bytes | None] = {}
                    for col, value in old.items():
                        if value is None:
                            new[col] = None
                            continue
                        aad = {"table": name, "column": t.aad_column(col), "row_id": row_id}
                        try:
                            plain = cipher.decrypt_bytes(bytes(value), **aad)
                        except DecryptionError:
                            if unreadable is None:
                                raise
                            unreadable.append(Unreadable(name, col, str(row[0])))
                            break
                        new[col] = cipher.encrypt_bytes(plain, **aad)
                    else:
                        unchanged = [
                            table.c[c].is_(None) if v is None else table.c[c] == v
                            for c, v in old.items()
                        ]
                        result = await conn.execute(
                            update(table).where(pk == row[0], *unchanged).values(**new)
                        )
                        rewritten += result.rowcount
                        left -= result.rowcount
            last_pk = rows[-1][0]
            if on_progress is not None:
                on_progress(RotationProgress(name, rewritten, max(left, 0)))
        total += rewritten
    return total
