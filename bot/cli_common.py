"""What every ``selfcare`` command shares: the one-line error, running a command's body with
the application's container, and the schema check before a long-running command.

A module of its own because bot/cli.py imports the modules it builds its parser from
(bot/cli_*.py): they import these from here, at the top and typed, instead of importing
bot/cli.py back at run time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import bootstrap
from bot.settings import Settings

__all__ = ["CliError", "ensure_schema", "with_container"]


class CliError(Exception):
    """A failure explained in one line to the operator (exit code 1)."""


async def with_container(
    settings: Settings, body: Callable[[bootstrap.Container], Awaitable[int]]
) -> int:
    """Run ``body`` with the application's container, closed afterwards however it ends."""
    container = await bootstrap.build(settings)
    try:
        return await body(container)
    finally:
        await container.close()


async def ensure_schema(container: bootstrap.Container, settings: Settings) -> None:
    """Development upgrades an old schema; production refuses to run on one."""
    from storage import migrate

    current = await migrate.current_revision(container.db.engine)
    head = await migrate.head_revision()
    if current != head:
        if settings.is_production:
            raise CliError(f"database at {current}, code at {head}: run `selfcare db upgrade`")
        await migrate.upgrade(settings.database_url)
