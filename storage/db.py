"""Async engines for the two supported databases.

SQLite (the embedded default) runs in WAL mode with foreign keys on and a busy
timeout; every transaction starts with ``BEGIN IMMEDIATE`` so SQLite's single writer is
the per-conversation lock and two writers never deadlock on a lock upgrade.
PostgreSQL (asyncpg) is what the project scales out on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: SQLSTATE classes that say "the database is not there right now", not "this statement is
#: wrong": 08 connection exception, 53 insufficient resources (too many connections), 57P
#: operator intervention (shutting down, starting up, terminated by the administrator).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached right now, so that the same
    work may succeed later (answer 503, retry, wait): a refused or lost connection (the
    driver raises those unwrapped while connecting), or :func:`is_database_outage`."""
    return isinstance(exc, ConnectionError | TimeoutError) or is_database_outage(exc)


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc``, raised by the database layer, says the database is unreachable
    rather than that the statement is wrong: a connection lost mid-statement, a server
    shutting down or starting up, a pool with no connection to give, SQLite busy. A
    constraint or a bad statement is a bug or bad data, not an outage."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return True
    # The drivers' errors carry the server's SQLSTATE (asyncpg's as sqlstate, psycopg's as
    # pgcode); a connection error while connecting is not flagged as invalidated.
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(code, str) and code.startswith(_UNAVAILABLE_SQLSTATES)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for in-memory databases)."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite database file if missing (blocking: call in a thread)."""
    if is_sqlite(url) and (path := sqlite_path(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An engine for ``url`` (``sqlite+aiosqlite://…`` or ``postgresql+asyncpg://…``,
    optionally with ``?search_path=SCHEMA``). See :func:`ensure_sqlite_folder`."""
    if is_sqlite(url):
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        _configure_sqlite(engine)
        return engine
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if "search_path" in parsed.query:
        # A schema per deployment (and per test): ?search_path=name on the URL.
        search_path = parsed.query["search_path"]
        connect_args["server_settings"] = {"search_path": str(search_path)}
        parsed = parsed.difference_update_query(["search_path"])
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so we can BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
