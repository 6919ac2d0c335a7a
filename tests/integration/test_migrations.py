"""The schema is created by Alembic from an empty database, on both engines."""

from __future__ import annotations

from sqlalchemy import inspect

from storage import migrate, tables
from storage.db import create_engine


async def test_upgrade_from_empty_creates_every_table_and_is_safe_twice(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(database_url)
        await migrate.upgrade(database_url)
        assert await migrate.current_revision(engine) == await migrate.head_revision()
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert set(tables.metadata.tables) <= names
    finally:
        await engine.dispose()


async def test_migrations_match_the_table_definitions(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    await migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), tables.metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []
