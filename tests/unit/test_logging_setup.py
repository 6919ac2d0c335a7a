"""Logs are JSON lines with personal values masked, and the platform SDKs never log a
message's text, even with SELFCARE_LOG_LEVEL=DEBUG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.logging_setup import JsonFormatter, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("telegram", "linebot")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in levels.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.usefixtures("restore_logging")
def test_debug_level_leaves_the_sdks_at_info() -> None:
    configure_logging("DEBUG")
    assert logging.getLogger("bot.delivery").isEnabledFor(logging.DEBUG)
    for sdk in ("telegram.ext.ExtBot", "linebot.v3.webhooks"):
        assert not logging.getLogger(sdk).isEnabledFor(logging.DEBUG), sdk
    # (The LINE SDK's Configuration sets its own client logger to WARNING itself.)
    assert logging.getLogger("telegram.ext.ExtBot").isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("restore_logging")
def test_a_quieter_level_stays_quieter_for_the_sdks_too() -> None:
    configure_logging("WARNING")
    assert not logging.getLogger("telegram.ext").isEnabledFor(logging.INFO)


def test_a_line_is_json_with_the_phone_masked() -> None:
    record = logging.makeLogRecord(
        {"name": "bot.x", "levelname": "INFO", "msg": "sms to 0812345678", "chat": "42"}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert "0812345678" not in json.dumps(entry) and entry["chat"] == "42"
