"""A customer's data as a whole: the export behind ``/mydata``, the erasure behind
``/forget`` (``core.ports.PersonalDataStore``), and the retention purge of old inbox,
outbox and conversation rows (``core.ports.RetentionRepository``).

What belongs to a customer is read from the schema, not listed by hand: every table that
reaches the ``customers`` row through foreign keys (service numbers, users, chat links,
bills and the payments and reminders of those bills, consents, preferences, corrections,
codes…), plus what is kept per chat for the chats linked to them (conversation state,
messages, one-time secrets, delivery rows). A table a later feature adds with a foreign key
to one of those is covered without a change here; tests/integration/test_privacy_rights.py
fills every such table and checks it.

Erasure deletes those rows with SQLite's ``secure_delete`` on (freed space is zeroed, so the
file keeps no copy), and after the commit truncates SQLite's write-ahead log, which holds
earlier versions of the pages (:func:`truncate_wal`). PostgreSQL leaves dead rows in its
files until ``VACUUM`` (a ``pg_dump`` never shows them); see docs/privacy.md.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    delete,
    false,
    or_,
    select,
    union,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import tables as t
from storage.crypto import FieldCipher
from storage.rotation import ROW_ID_COLUMN

__all__ = [
    "WITHHELD_SUFFIXES",
    "SqlPersonalDataStore",
    "SqlRetention",
    "chat_tables",
    "customer_conditions",
    "customer_tables",
    "truncate_wal",
]

#: Columns holding one-way values (blind indexes, password and code hashes): derived from
#: data, useless to its owner and risky to hand out, so never exported.
WITHHELD_SUFFIXES = ("_bidx", "_hash", "_digest")
_CHAT_COLUMNS = ("channel", "chat_id")

log = logging.getLogger(__name__)


@cache
def customer_tables() -> tuple[tuple[Table, tuple[tuple[str, Table, str], ...]], ...]:
    """Every table whose rows belong to one customer, parents before children, each with
    its foreign keys into tables already listed (``(column, parent table, parent column)``).
    The first entry is ``customers`` itself."""
    owned: dict[str, tuple[tuple[str, Table, str], ...]] = {t.customers.name: ()}
    order: list[Table] = [t.customers]
    for table in t.metadata.sorted_tables:  # parents before children
        if table.name in owned:
            continue
        edges = tuple(
            (fk.parent.name, fk.column.table, fk.column.name)
            for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name)
            if isinstance(fk.column.table, Table) and fk.column.table.name in owned
        )
        if edges:
            owned[table.name] = edges
            order.append(table)
    return tuple((table, owned[table.name]) for table in order)


def chat_tables() -> tuple[Table, ...]:
    """Tables kept per chat (a ``channel`` and a ``chat_id`` column): conversation state,
    messages, chat-bound secrets and delivery rows, the chat links themselves."""
    return tuple(
        table
        for table in reversed(t.metadata.sorted_tables)  # children before parents
        if all(c in table.c for c in _CHAT_COLUMNS)
    )


def customer_conditions(customer_id: str) -> dict[str, ColumnElement[bool]]:
    """For each customer table, the WHERE clause selecting the customer's rows."""
    where: dict[str, ColumnElement[bool]] = {t.customers.name: t.customers.c.id == customer_id}
    for table, edges in customer_tables()[1:]:
        if len(edges) == 1 or len(table.primary_key.columns) != 1:
            where[table.name] = or_(
                *(
                    table.c[column].in_(select(parent.c[parent_column]).where(where[parent.name]))
                    for column, parent, parent_column in edges
                )
            )
            continue
        # Several ways in (a bill: its customer, its service number): an OR of IN-subqueries
        # makes PostgreSQL scan the whole table; a union of one index lookup per way does not.
        (key,) = table.primary_key.columns
        inner = table.alias()
        where[table.name] = key.in_(
            union(
                *(
                    select(inner.c[key.name]).where(
                        inner.c[column].in_(
                            select(parent.c[parent_column]).where(where[parent.name])
                        )
                    )
                    for column, parent, parent_column in edges
                )
            )
        )
    return where


def _of_chats(table: Table, chats: Iterable[tuple[str, str]]) -> ColumnElement[bool]:
    wanted = [
        and_(table.c.channel == channel, table.c.chat_id == chat_id) for channel, chat_id in chats
    ]
    return or_(*wanted) if wanted else false()


def _withheld(column: str) -> bool:
    return column.endswith(WITHHELD_SUFFIXES)


def _json_value(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


async def _secure_delete(conn: AsyncConnection) -> None:
    # Deleted rows are overwritten with zeros instead of lingering in free space.
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("PRAGMA secure_delete=ON")


class SqlPersonalDataStore:
    """``core.ports.PersonalDataStore`` on one transaction. ``after_commit`` schedules work
    for after the unit of work commits (the unit of work passes its own list's append)."""

    def __init__(
        self,
        conn: AsyncConnection,
        cipher: FieldCipher,
        after_commit: Callable[[Callable[[], Awaitable[object]]], None] | None = None,
    ) -> None:
        self._conn = conn
        self._cipher = cipher
        self._after_commit = after_commit

    def _row(self, table: Table, row: Any) -> dict[str, object]:
        row_id_column = ROW_ID_COLUMN.get(table.name, "id")
        encrypted = set(t.ENCRYPTED_COLUMNS.get(table.name, ()))
        out: dict[str, object] = {}
        for column, value in row.items():
            if _withheld(column):
                continue
            if column in encrypted:
                name = t.aad_column(column)
                out[name] = (
                    None
                    if value is None
                    else self._cipher.decrypt(
                        bytes(value), table=table.name, column=name, row_id=str(row[row_id_column])
                    )
                )
            else:
                out[column] = _json_value(value)
        return out

    async def _linked_chats(self, customer_id: str) -> list[tuple[str, str]]:
        rows = await self._conn.execute(
            select(t.chat_links.c.channel, t.chat_links.c.chat_id).where(
                t.chat_links.c.customer_id == customer_id
            )
        )
        return [(r.channel, r.chat_id) for r in rows]

    async def export(self, customer_id: str) -> dict[str, list[dict[str, object]]]:
        where = customer_conditions(customer_id)
        found: dict[str, list[dict[str, object]]] = {}
        for table, _ in customer_tables():
            pk = list(table.primary_key.columns)
            rows = await self._conn.execute(select(table).where(where[table.name]).order_by(*pk))
            found[table.name] = [self._row(table, r) for r in rows.mappings()]
        # The state of the linked chats (their language, an unfinished dialogue). Message
        # copies in the outbox are left out: they are what the chat already shows.
        chats = await self._linked_chats(customer_id)
        conversations = t.conversations
        rows = await self._conn.execute(
            select(conversations)
            .where(_of_chats(conversations, chats))
            .order_by(conversations.c.channel, conversations.c.chat_id)
        )
        found[conversations.name] = []
        for r in rows.mappings():
            row = self._row(conversations, r)
            state = row.get("state")
            if isinstance(state, str):
                row["state"] = json.loads(state)
            found[conversations.name].append(row)
        # What was done with the customer's data, and by whom (staff by role, not name).
        log = t.audit_log
        rows = await self._conn.execute(
            select(log.c.at, log.c.actor, log.c.action, log.c.details)
            .where(log.c.subject == customer_id)
            .order_by(log.c.id)
        )
        found[log.name] = [
            {
                "at": _json_value(r.at),
                "by": str(r.actor).split(":", 1)[0],
                "action": r.action,
                "details": json.loads(r.details),
            }
            for r in rows
        ]
        return found

    async def erase(
        self, customer_id: str, *, keep_conversation: tuple[str, str] | None = None
    ) -> dict[str, int]:
        await _secure_delete(self._conn)
        deleted: dict[str, int] = {}
        account_no = (
            await self._conn.execute(
                select(t.customers.c.account_no).where(t.customers.c.id == customer_id)
            )
        ).scalar_one_or_none()
        chats = await self._linked_chats(customer_id)
        for table in chat_tables():
            where = _of_chats(table, chats)
            if table is t.conversations and keep_conversation is not None:
                channel, chat_id = keep_conversation
                where = and_(where, ~and_(table.c.channel == channel, table.c.chat_id == chat_id))
            result = await self._conn.execute(delete(table).where(where))
            deleted[table.name] = int(result.rowcount or 0)
        if account_no is not None:
            # A payment that matched no bill keeps the account number it named (ref1).
            result = await self._conn.execute(
                delete(t.payments).where(t.payments.c.ref1 == account_no)
            )
            deleted[t.payments.name] = int(result.rowcount or 0)
        where_owned = customer_conditions(customer_id)
        # Children first: each child's rows are found through its parents' rows.
        for table, _ in reversed(customer_tables()):
            result = await self._conn.execute(delete(table).where(where_owned[table.name]))
            deleted[table.name] = deleted.get(table.name, 0) + int(result.rowcount or 0)
        if self._after_commit is not None:
            engine = self._conn.engine
            self._after_commit(lambda: _truncate_wal_quietly(engine))
        return {name: count for name, count in deleted.items() if count}


class SqlRetention:
    """``core.ports.RetentionRepository``: deletes in batches of ``limit`` rows, oldest
    first, so each transaction stays short."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def _purge(self, table: Table, where: ColumnElement[bool], limit: int) -> int:
        await _secure_delete(self._conn)
        pk = table.c.id
        batch = select(pk).where(where).order_by(pk).limit(limit).scalar_subquery()
        result = await self._conn.execute(delete(table).where(pk.in_(batch)))
        return int(result.rowcount or 0)

    async def purge_inbox(self, before: datetime, limit: int) -> int:
        return await self._purge(t.inbox, t.inbox.c.received_at < before, limit)

    async def purge_outbox(self, before: datetime, limit: int) -> int:
        o = t.outbox.c
        done = o.status.in_(("sent", "dead"))
        return await self._purge(t.outbox, and_(done, o.created_at < before), limit)

    async def purge_conversations(self, before: datetime, limit: int) -> int:
        c = t.conversations.c
        return await self._purge(t.conversations, c.updated_at < before, limit)


async def _truncate_wal_quietly(engine: AsyncEngine) -> None:
    try:
        if not await truncate_wal(engine):
            log.info("write-ahead log busy; the retention job truncates it later")
    except Exception as exc:  # the erasure is committed: this is only tidying up after it
        log.warning("write-ahead log not truncated", extra={"exc_type": type(exc).__name__})


async def truncate_wal(engine: AsyncEngine) -> bool:
    """SQLite: copy the write-ahead log into the database file and cut it to zero bytes, so
    no earlier version of a page (say, of a row since erased) stays in it. Best effort:
    False when a reader still needs the log (the next call tries again). Other engines:
    nothing to do (True)."""
    if engine.dialect.name != "sqlite":
        return True
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        # Outside SQLAlchemy's transaction (which would BEGIN IMMEDIATE first): a checkpoint
        # runs in no transaction.
        driver: Any = raw.driver_connection
        cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy, *_ = await cursor.fetchone()
        await cursor.close()
    return not busy
