"""What the webhook routes refuse, and that a refused or ignored request stores nothing.

Both channels, both databases, through the real app on loopback with the platforms'
stubs behind the real SDKs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.channels_support import (
    RunningApp,
    line_api_stub,
    running_app,
    telegram_stub,
)
from tests.stubs import line as events
from tests.stubs import telegram as updates
from tests.stubs.line import LineStub
from tests.stubs.telegram import TelegramStub

STATE_TABLES = ("inbox", "outbox", "conversations", "unreachable_chats")


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub


@pytest.fixture
async def ln() -> AsyncIterator[LineStub]:
    async with line_api_stub() as stub:
        yield stub


@pytest.fixture
async def app(
    database_url: str, keyring_path: Path, tg: TelegramStub, ln: LineStub
) -> AsyncIterator[RunningApp]:
    async with running_app(database_url, keyring_path, telegram=tg, line=ln) as running:
        yield running


async def assert_nothing_stored(app: RunningApp) -> None:
    await app.idle()
    assert {name: await app.count(name) for name in STATE_TABLES} == dict.fromkeys(STATE_TABLES, 0)


# --- authentication ----------------------------------------------------------------------


async def test_a_telegram_update_without_the_secret_token_is_refused_with_401(
    app: RunningApp, tg: TelegramStub
) -> None:
    response = await app.telegram(updates.text(501, "/start"), secret=None)
    assert response.status == 401
    assert response.body["error"] == "unauthorized"
    await assert_nothing_stored(app)
    assert tg.calls == []


@pytest.mark.parametrize(
    "secret", ["wrong-token", "", "s3cret-token_for_test", "ไทย🙂", "' OR 1=1 --"]
)
async def test_a_telegram_update_with_a_wrong_secret_token_is_refused_with_403(
    app: RunningApp, tg: TelegramStub, secret: str
) -> None:
    raw = json.dumps(updates.text(502, "/start")).encode()
    headers = {"Content-Type": "application/json"}
    # Non-ASCII header values travel as raw bytes, as a client may send them.
    headers["X-Telegram-Bot-Api-Secret-Token"] = secret.encode("utf-8").decode("latin-1")
    response = await app.post("/webhooks/telegram", raw, headers)
    assert response.status == 403
    await assert_nothing_stored(app)
    assert tg.calls == []
    assert app.metric("selfcare_updates_total", channel="telegram", outcome="forbidden") == 1


async def test_the_secret_token_is_checked_before_the_body_is_read(app: RunningApp) -> None:
    # Not JSON at all: a wrong secret still answers 403, not 400.
    response = await app.telegram(b"{not json", secret="nope")
    assert response.status == 403


async def test_a_line_event_without_a_signature_is_refused_with_401(
    app: RunningApp, ln: LineStub
) -> None:
    response = await app.line(events.text("U1", "/start"), signature=None)
    assert response.status == 401
    await assert_nothing_stored(app)
    assert ln.calls == []


async def test_a_line_event_with_a_wrong_signature_is_refused_with_403(
    app: RunningApp, ln: LineStub
) -> None:
    body = events.body(events.text("U1", "/start"))
    forged = events.sign(body, secret="not-the-channel-secret")
    assert (await app.line(raw=body, signature=forged)).status == 403
    empty = {"Content-Type": "application/json", "X-Line-Signature": ""}
    assert (await app.post("/webhooks/line", body, empty)).status == 403
    tampered = body.replace(b"/start", b"/forget")
    assert (await app.line(raw=tampered, signature=events.sign(body))).status == 403
    assert (await app.line(raw=b"\xff\xfe not utf-8", signature=events.sign(body))).status == 403
    await assert_nothing_stored(app)
    assert ln.calls == []


async def test_a_channel_that_is_not_configured_answers_404(
    database_url: str, keyring_path: Path, tg: TelegramStub
) -> None:
    async with running_app(database_url, keyring_path, telegram=tg) as app:
        response = await app.line(events.text("U1", "hi"))
        assert response.status == 404
        await assert_nothing_stored(app)


# --- malformed and ignored -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'"just a string"',
        b'{"message": {"text": "no update_id"}}',
        b'{"update_id": "12", "message": {}}',
        b'{"update_id": true}',
        b'{"update_id": 1, "message": "not an object"}',
        b'{"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}}}',
        b'{"update_id": 1, "callback_query": {"id": "1"}}',
        b'{"update_id": 1, "message": \'; DROP TABLE inbox; --"}',
        b"\xff\xfe\xfd",
    ],
)
async def test_a_malformed_telegram_body_is_a_400_and_stores_nothing(
    app: RunningApp, raw: bytes
) -> None:
    response = await app.telegram(raw)
    assert response.status == 400
    assert response.body["error"] == "malformed"
    await assert_nothing_stored(app)


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b'{"destination": "U0"}',
        b'{"events": "none"}',
        b'{"events": [1, 2]}',
    ],
)
async def test_a_malformed_line_body_is_a_400_and_stores_nothing(
    app: RunningApp, raw: bytes
) -> None:
    response = await app.line(raw=raw, signature=events.sign(raw))
    assert response.status == 400
    await assert_nothing_stored(app)


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 9001, "poll": {"id": "1", "question": "?", "options": []}},
        {"update_id": 9002, "something_new": {"from": "the future"}},
        {
            "update_id": 9003,
            "edited_message": {
                "message_id": 5,
                "date": 1_790_000_000,
                "chat": {"id": 77, "type": "private"},
                "text": "แก้ข้อความ",
            },
        },
        {
            "update_id": 9004,
            "channel_post": {
                "message_id": 5,
                "date": 1_790_000_000,
                "chat": {"id": -100, "type": "channel"},
                "text": "news",
            },
        },
    ],
)
async def test_an_unknown_telegram_update_kind_is_acknowledged_and_not_stored(
    app: RunningApp, tg: TelegramStub, update: dict[str, object]
) -> None:
    response = await app.telegram(update)
    assert response.status == 200  # Telegram must not retry it
    await assert_nothing_stored(app)
    assert tg.calls == []


async def test_lines_connectivity_check_with_no_events_is_200_and_stores_nothing(
    app: RunningApp, ln: LineStub
) -> None:
    response = await app.line()
    assert response.status == 200
    await assert_nothing_stored(app)
    assert ln.calls == []


async def test_line_events_the_bot_does_not_handle_are_acknowledged_and_not_stored(
    app: RunningApp, ln: LineStub
) -> None:
    joined = events.event("U9", "join", replyToken="rt-join")
    joined["source"] = {"type": "group", "groupId": "C1"}
    standby = events.text("U9", "/start")
    standby["mode"] = "standby"  # another module answers it
    made_up = events.event("U9", "teleport")
    response = await app.line(joined, standby, made_up)
    assert response.status == 200
    await assert_nothing_stored(app)
    assert ln.calls == []


async def test_a_body_over_256_kib_is_refused_with_413_and_stores_nothing(
    app: RunningApp,
) -> None:
    big_text = "ก" * (300 * 1024 // 3)
    update = updates.text(503, big_text)
    response = await app.telegram(update)
    assert response.status == 413
    body = events.body(events.text("U1", big_text))
    assert (await app.line(raw=body, signature=events.sign(body))).status == 413
    await assert_nothing_stored(app)


# --- exactly once ----------------------------------------------------------------------------


async def test_a_redelivered_telegram_update_is_acknowledged_and_answered_once(
    app: RunningApp, tg: TelegramStub
) -> None:
    update = updates.text(504, "/help")
    first = await app.telegram(update)
    await app.idle()
    again = await app.telegram(update)
    await app.idle()
    assert (first.status, again.status) == (200, 200)
    assert await app.count("inbox") == 1
    assert len(tg.sent("504")) == await app.count("outbox")
    assert app.metric("selfcare_updates_total", channel="telegram", outcome="duplicate") == 1


async def test_twenty_concurrent_copies_of_one_update_are_handled_once(
    app: RunningApp, tg: TelegramStub
) -> None:
    update = updates.text(505, "/start")
    responses = await asyncio.gather(*(app.telegram(update) for _ in range(20)))
    await app.idle()
    assert {r.status for r in responses} == {200}
    assert await app.count("inbox") == 1
    outbox = await app.count("outbox")
    assert outbox == 2  # the short privacy notice, then the greeting with the menu
    assert len(tg.sent("505")) == outbox


async def test_a_redelivered_line_event_is_dropped(app: RunningApp, ln: LineStub) -> None:
    first = events.text("U5", "/help")
    assert (await app.line(first)).status == 200
    await app.idle()
    again = dict(first, deliveryContext={"isRedelivery": True})
    assert (await app.line(again)).status == 200
    await app.idle()
    assert await app.count("inbox") == 1
    assert len(ln.delivered()) == 1


async def test_metrics_answer_only_the_bearer_of_the_metrics_token(
    database_url: str, keyring_path: Path
) -> None:
    token = "scrape-😀-token"  # any text; compared as bytes
    async with running_app(database_url, keyring_path, metrics_token=token) as app:
        for header in (None, "Bearer wrong", f"Bearer {token}x", token, f"Basic {token}"):
            headers = {} if header is None else {"Authorization": header}
            async with app.session.get(app.url + "/metrics", headers=headers) as refused:
                assert refused.status == 401, header
                assert refused.headers["WWW-Authenticate"].startswith("Bearer")
                assert "selfcare_" not in await refused.text()
        bearer = {"Authorization": f"Bearer {token}"}
        async with app.session.get(app.url + "/metrics", headers=bearer) as page:
            assert page.status == 200
            assert "selfcare_updates_total" in await page.text()
        async with app.session.get(app.url + "/healthz") as health:
            assert health.status == 200  # health checks need no token


async def test_without_a_metrics_token_metrics_are_open(app: RunningApp) -> None:
    async with app.session.get(app.url + "/metrics") as page:
        assert page.status == 200
