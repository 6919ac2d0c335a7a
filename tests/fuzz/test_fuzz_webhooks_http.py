"""Fuzzing ``POST /webhooks/telegram`` and ``POST /webhooks/line`` over HTTP: the real app on
loopback (SQLite), python-telegram-bot and line-bot-sdk talking to the stub platforms.

Whatever an authenticated platform posts, the answer is 200 (handled or ignored) or a
defined 4xx (400 malformed, 413 too large), never a 5xx, and a refused request stores
nothing. An unauthenticated one is always 401/403 and stores nothing either.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz.strategies import budget, line_bodies, telegram_updates, to_body
from tests.integration.channels_support import (
    SECRET,
    RunningApp,
    line_api_stub,
    running_app,
    telegram_stub,
)
from tests.stubs import line as line_stub
from tests.stubs import telegram as telegram_updates_stub

_STORED = ("inbox", "outbox", "conversations")


@pytest.fixture
async def app(database_url: str, keyring_path: Path) -> AsyncIterator[RunningApp]:
    # Both databases: PostgreSQL enforces the columns' lengths, SQLite does not.
    async with telegram_stub() as tg, line_api_stub() as line:
        async with running_app(database_url, keyring_path, telegram=tg, line=line) as running:
            yield running


async def _counts(app: RunningApp) -> dict[str, int]:
    return {table: await app.count(table) for table in _STORED}


async def _raw_post(app: RunningApp, path: str, head: bytes, body: bytes) -> int:
    """POST with header bytes as given (aiohttp's client would refuse to send bad ones)."""
    host, port = app.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            + head
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 60)
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


def _expected(value: bytes, right: bytes, *, wrong: tuple[int, ...]) -> tuple[int, ...]:
    """The statuses a request whose credential header holds ``value`` may get."""
    if any((c < 0x20 and c != 0x09) or c == 0x7F for c in value):
        return (400,)  # HTTP forbids control characters in a header: aiohttp's parser refuses
    if value.strip(b" \t") == right:  # aiohttp strips the blanks around a value, as HTTP says
        return (200, 400)
    return wrong


def _text_update(text: str, update_id: int, chat_id: int = 8001) -> dict[str, Any]:
    return telegram_updates_stub.text(chat_id, text, update_id=update_id)


_telegram_bodies = st.one_of(
    telegram_updates.map(to_body),
    st.binary(max_size=200),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'{"update_id": 1}', b'{"update_id": true}']),
)


@given(body=_telegram_bodies)
@budget(60)
@example(body=b"[" * 100_000).via("json.loads raised RecursionError: a 500 before the fix")
@example(body=to_body(_text_update("hi", 1, chat_id=10**70))).via(
    "a 500 on PostgreSQL before the fix"
)
@example(body=to_body({**_text_update("hi", 1), "update_id": 10**30}))
@example(body=b'{"update_id": 9, "message": {"message_id": 1, "date": 0, "text": "/start"}}')
@example(body=b'{"update_id": 9, "callback_query": {"id": "q", "data": 5, "chat_instance": "1"}}')
async def test_any_authenticated_telegram_body_gets_200_or_a_defined_4xx(
    app: RunningApp, body: bytes
) -> None:
    before = await _counts(app)
    response = await app.telegram(body)
    await app.idle()
    event(f"status {response.status}")
    assert response.status in (200, 400, 413), response.body
    if response.status != 200:
        assert response.body["error"] in ("malformed", "request_entity_too_large")
        assert await _counts(app) == before


@given(token=st.text(max_size=80).filter(lambda t: t != SECRET), body=_telegram_bodies)
@budget(40)
@example(token=SECRET + " ", body=b"{}")
@example(token=SECRET[:-1], body=b"{}")
async def test_a_wrong_telegram_secret_token_is_always_403(
    app: RunningApp, token: str, body: bytes
) -> None:
    before = await _counts(app)
    encoded = token.encode("utf-8", "surrogatepass")
    if any(c in encoded for c in b"\r\n\x00"):
        return  # not a header any HTTP client can send
    status = await _raw_post(
        app, "/webhooks/telegram", b"X-Telegram-Bot-Api-Secret-Token: " + encoded + b"\r\n", body
    )
    assert status in _expected(encoded, SECRET.encode(), wrong=(403,))
    assert await _counts(app) == before


_line_bodies = st.one_of(
    line_bodies.map(to_body),
    st.binary(max_size=200),
    st.sampled_from([b"", b"{}", b'{"events": null}', b'{"events": [[]]}']),
)


@given(body=_line_bodies)
@budget(60)
@example(body=b'{"events": ' + b"[" * 100_000).via("RecursionError: a 500 before the fix")
@example(body=line_stub.body(line_stub.text("U" + "a" * 100, "hi"))).via("500 on PostgreSQL")
@example(body=line_stub.body({**line_stub.text("Uabc", "hi"), "webhookEventId": "E" * 300}))
async def test_any_signed_line_body_gets_200_or_400(app: RunningApp, body: bytes) -> None:
    before = await _counts(app)
    response = await app.line(raw=body)
    await app.idle()
    event(f"status {response.status}")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        assert response.status == 403  # LINE signs UTF-8 only
        return
    assert response.status in (200, 400), response.body
    if response.status == 400:
        assert await _counts(app) == before


@given(signature=st.binary(max_size=60), body=_line_bodies)
@budget(40)
@example(signature=b"\xff", body=b'{"events": []}')
async def test_a_wrong_line_signature_is_always_401_or_403(
    app: RunningApp, signature: bytes, body: bytes
) -> None:
    if any(c in signature for c in b"\r\n\x00"):
        return
    before = await _counts(app)
    status = await _raw_post(
        app, "/webhooks/line", b"X-Line-Signature: " + signature + b"\r\n", body
    )
    assert status in _expected(signature, line_stub.sign(body).encode(), wrong=(401, 403))
    assert await _counts(app) == before


async def test_an_oversized_telegram_body_is_413_and_stores_nothing(app: RunningApp) -> None:
    before = await _counts(app)
    big = json.dumps(_text_update("ก" * 200_000, 1)).encode()
    response = await app.telegram(big)
    assert response.status == 413
    assert await _counts(app) == before
