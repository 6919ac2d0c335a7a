"""Atheris harness: a Telegram webhook body, as ``POST /webhooks/telegram`` reads it after
the secret token matched: JSON, an object, ``telegram.parse_update``.

Allowed outcomes: an update (or None, a kind the bot ignores) whose chat and event ids are
consistent, or the route's 400 (``ValueError``, or ``RecursionError`` for JSON nested too
deep). Any other exception is a crash (a 500 that Telegram would retry).

Run: ``python -m fuzz.telegram_update -max_total_time=60`` (see fuzz/README.md).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from fuzz._common import instrumented, run

with instrumented(__name__, ["bot.channels.telegram", "core.chat", "telegram"]):
    from bot.channels import telegram

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def test_one_input(data: bytes) -> None:
    try:
        body = json.loads(data)
        if not isinstance(body, dict):
            return  # the route's 400
        update = telegram.parse_update(body, NOW)
    except (ValueError, RecursionError):
        return  # the route's 400
    if update is None or update.incoming is None:
        return
    if update.incoming.chat_id != update.chat_id:
        raise AssertionError("the incoming event names another chat than the update")
    if update.incoming.event_id != str(body["update_id"]):
        raise AssertionError("the event id is not the update id")


def seeds() -> list[bytes]:
    from tests.stubs import telegram as shapes

    updates = [
        shapes.text(7001, "สวัสดี"),
        shapes.text(7001, "/start link_abc"),
        shapes.callback(7001, "pay:B100000000125111"),
        shapes.contact(7001, "+66812345678", owner_id=7001),
        shapes.photo(7001),
        shapes.membership(7001, "kicked"),
        shapes.membership(7001, "member"),
    ]
    return [json.dumps(u, ensure_ascii=False).encode() for u in updates]


if __name__ == "__main__":
    run("telegram_update", test_one_input, seeds())
    sys.exit(0)
