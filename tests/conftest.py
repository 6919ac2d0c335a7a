"""Fixtures shared by every test.

- ``blockbuster`` (autouse): a coroutine that blocks the event loop (file I/O, time.sleep,
  argon2 on the loop…) fails its test.
- ``database_url``: every storage test runs on SQLite and on PostgreSQL
  (``SELFCARE_TEST_PG_URL``, default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``),
  each test in a schema of its own. Without a reachable PostgreSQL the PostgreSQL half is
  skipped with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

# Importing alembic reads package metadata from disk: do it at collection time, not inside
# the `db` fixture's coroutine (where the blocking-call guard would refuse it).
import storage.migrate  # noqa: F401

PG_URL = os.environ.get("SELFCARE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
_pg_state: dict[str, str | None] = {}
T = TypeVar("T")


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    # Alembic runs in a thread with an event loop of its own (storage/migrate.py): its
    # file reads block nobody else.
    with blockbuster_ctx(
        ["bot", "core", "storage", "tests"], excluded_modules=["storage.migrations"]
    ) as bb:
        # Building a SQLite engine makes its path absolute: a getcwd, not a wait.
        bb.functions["os.path.abspath"].can_block_in(
            "sqlalchemy/dialects/sqlite/pysqlite.py", "create_connect_args"
        )
        # asyncpg looks for ~/.pgpass once per new connection when the URL has no password.
        for guarded in bb.functions.values():
            guarded.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
        yield bb


def _pg_unreachable_reason() -> str | None:
    """None if PostgreSQL answers, else why not (checked once per session)."""
    if "reason" not in _pg_state:
        import asyncpg

        async def probe() -> None:
            conn = await asyncpg.connect(_asyncpg_dsn(), timeout=3)
            await conn.close()

        try:
            asyncio.run(probe())
            _pg_state["reason"] = None
        except Exception as exc:  # any failure to connect means "not available"
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} unreachable: {type(exc).__name__}"
    return _pg_state["reason"]


def _asyncpg_dsn(url: str = PG_URL) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def require_postgres() -> None:
    reason = _pg_unreachable_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
        pytest.skip(reason)


def run_unguarded(bb: BlockBuster, coro: Coroutine[Any, Any, T]) -> T:
    """Run set-up work (test scaffolding, not code under test) with the guard off."""
    bb.deactivate()
    try:
        return asyncio.run(coro)
    finally:
        bb.activate()


async def pg_execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_schema(blockbuster: BlockBuster) -> Iterator[str]:
    """A fresh schema in the PostgreSQL test database, dropped afterwards."""
    blockbuster.deactivate()
    try:
        require_postgres()
    finally:
        blockbuster.activate()
    schema = f"t_{secrets.token_hex(6)}"
    run_unguarded(blockbuster, pg_execute(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        run_unguarded(blockbuster, pg_execute(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'selfcare.db'}"
    schema = request.getfixturevalue("pg_schema")
    return f"{PG_URL}?search_path={schema}"


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    from storage.crypto import Keyring

    path = tmp_path / "keyring.json"
    Keyring.generate(for_development=True).save(path)
    return path


@pytest.fixture
def cipher(keyring_path: Path):  # type: ignore[no-untyped-def]
    from storage.crypto import FieldCipher, Keyring

    return FieldCipher(Keyring.load(keyring_path))


@pytest.fixture
async def db(database_url: str, cipher) -> AsyncIterator[object]:  # type: ignore[no-untyped-def]
    """A migrated database (SQLite and PostgreSQL) behind a ``storage.uow.Database``."""
    from storage import migrate
    from storage.uow import Database

    await migrate.upgrade(database_url)
    database = Database.connect(database_url, cipher)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def cli_env(database_url: str, keyring_path: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for running ``selfcare`` in a subprocess against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCARE_")}
    env.update(
        SELFCARE_DATABASE_URL=database_url,
        SELFCARE_KEYRING_FILE=str(keyring_path),
        SELFCARE_ENV="test",
        PYTHONUNBUFFERED="1",
    )
    return env
