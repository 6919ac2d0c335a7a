"""Schema migrations: ``selfcare db upgrade`` (safe to run twice, or by two processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema at ``url`` to ``revision`` in one transaction.

    Alembic reads its scripts from disk, so it runs in a thread (with its own engine and
    event loop, see migrations/env.py) rather than blocking this loop."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def head_revision() -> str | None:
    """The newest revision the code knows (reads the scripts in a thread)."""

    def read() -> str | None:
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    return await asyncio.to_thread(read)
