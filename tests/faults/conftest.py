"""Fixtures of the fault suite: PostgreSQL (what several processes share; each test in a
schema of its own) and the Telegram Bot API stub. Every test here is ``slow`` and ``faults``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import PG_URL
from tests.integration.channels_support import telegram_stub
from tests.stubs.telegram import TelegramStub

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def database_url(pg_schema: str) -> str:
    """PostgreSQL only: the database several processes share (SQLite runs one process)."""
    return f"{PG_URL}?search_path={pg_schema}"


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub
