"""Alembic environment: runs on the connection storage.migrate hands it (asyncio),
or on its own engine when called by the ``alembic`` command line."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from storage.db import create_engine, ensure_sqlite_folder
from storage.locks import lock_key
from storage.tables import metadata

config = context.config


def do_run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Two release processes upgrading at once: the second waits, then finds nothing to do.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key("alembic-upgrade")}
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.begin() as connection:
        await connection.run_sync(do_run_migrations)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    ensure_sqlite_folder(config.get_main_option("sqlalchemy.url") or "")
    asyncio.run(run_async_migrations())
