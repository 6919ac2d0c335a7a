"""Fuzzing the pure parsers: Telegram updates, LINE webhook bodies and events, integration
events and import lines. Each must give a result or its one defined rejection (the 4xx
path), never another exception: anything else would be a 500 and a platform retrying the
same poison update for a day."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from bot.channels import line, telegram
from bot.imports import ImportKind, _Line, _parse
from core.chat import CommandMessage, Incoming, TextMessage, parse_text
from core.flows.intents import Intent, detect_intent, normalise
from core.integration_events import (
    INBOUND_EVENT_TYPES,
    EventError,
    parse_bill_line,
    parse_customer_line,
    parse_event,
)
from tests.fuzz.strategies import (
    any_json,
    import_lines,
    integration_events,
    line_bodies,
    line_events,
    nasty_text,
    telegram_updates,
    to_body,
)
from tests.stubs import line as line_stub
from tests.stubs import telegram as telegram_stub

NOW = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
_CHAT = {"id": 7001, "type": "private"}
_USER = {"id": 7001, "is_bot": False, "first_name": "A"}


def _is_object(value: object) -> bool:
    return isinstance(value, dict)  # the webhooks refuse anything else before parsing


def _check_incoming(incoming: Incoming, channel: str, chat_id: str) -> None:
    assert incoming.channel == channel
    assert incoming.chat_id == chat_id
    assert isinstance(incoming.event_id, str) and incoming.event_id
    assert incoming.received_at == NOW


# --- Telegram ----------------------------------------------------------------------------------


@given(
    telegram_updates.filter(_is_object)
    | st.dictionaries(st.text(max_size=16), any_json, max_size=5)
)
# Found by this test: PTB checks no field's presence or type, and each of these was an
# AttributeError in parse_update or parse_text (a 500, retried by Telegram) before the fix.
@example({"update_id": 2, "message": {"message_id": 2, "date": 0, "chat": _CHAT, "text": [1]}})
@example({"update_id": 2, "message": {"message_id": 2, "date": 0, "text": "hi"}})
@example({"update_id": 3, "my_chat_member": {"x": 1}})
@example(
    {
        "update_id": 4,
        "callback_query": {
            "id": "q",
            "from": _USER,
            "chat_instance": "1",
            "data": "x",
            "message": {"message_id": 4},
        },
    }
)
@example(
    {"update_id": 5, "callback_query": {"id": "q", "from": _USER, "chat_instance": "1", "data": 5}}
)
@example(
    {"update_id": 6, "message": {"message_id": 6, "date": 0, "chat": {"id": "7"}, "text": "x"}}
)
@example(
    {
        "update_id": 7,
        "message": {
            "message_id": 7,
            "date": 0,
            "chat": _CHAT,
            "contact": {"phone_number": None, "first_name": "A"},
        },
    }
)
@example(telegram_stub.text(10**70, "hi", update_id=8))  # a 500 on PostgreSQL before the fix
@example({**telegram_stub.text(1, "hi"), "update_id": 2**64})
def test_a_telegram_update_is_understood_ignored_or_refused(update: dict[str, Any]) -> None:
    try:
        result = telegram.parse_update(update, NOW)
    except ValueError:
        return  # the webhook's 400
    if result is None:
        return  # an update kind the bot does not handle: 200, nothing stored
    assert isinstance(result, telegram.TelegramUpdate)
    assert isinstance(result.chat_id, str) and result.chat_id
    assert len(result.chat_id) <= 20  # a signed 64-bit integer: it fits the chat id column
    if result.incoming is not None:
        _check_incoming(result.incoming, telegram.CHANNEL, result.chat_id)
        assert result.incoming.event_id == str(update["update_id"])


@given(text=nasty_text, chat_id=st.integers(-(10**13), 10**13))
@example(text="/", chat_id=1).via("a lone slash is text, not a command")
@example(text="/ฉัน", chat_id=1).via("a non-ASCII command name is text")
def test_any_text_a_telegram_user_types_reaches_the_flows_as_typed(text: str, chat_id: int) -> None:
    result = telegram.parse_update(telegram_stub.text(chat_id, text, update_id=5), NOW)
    assert result is not None and result.incoming is not None
    _check_incoming(result.incoming, telegram.CHANNEL, str(chat_id))
    assert result.incoming.event == parse_text(telegram.CHANNEL, text)


@given(data=nasty_text)
def test_any_button_payload_comes_back_unchanged(data: str) -> None:
    result = telegram.parse_update(telegram_stub.callback(42, data, update_id=6), NOW)
    assert result is not None and result.incoming is not None
    assert result.callback_query_id is not None
    assert result.incoming.event.payload == data  # type: ignore[union-attr]


# --- LINE ----------------------------------------------------------------------------------------


def _line_body_outcome(body: bytes) -> list[dict[str, Any]] | None:
    try:
        return line.parse_body(body)
    except ValueError:
        return None  # the webhook's 400


@given(st.binary(max_size=300) | line_bodies.map(to_body))
@example(b'{"events": [1]}')
@example(b"\xff\xfe")
@example(b'{"events": {}}')
def test_a_line_body_is_a_list_of_event_objects_or_refused(body: bytes) -> None:
    events = _line_body_outcome(body)
    if events is not None:
        assert isinstance(events, list)
        assert all(isinstance(event, dict) for event in events)


@given(line_events.filter(_is_object) | st.dictionaries(st.text(max_size=16), any_json, max_size=5))
# Ids LINE never sends (empty, or too long for storage: a 500 on PostgreSQL before the fix).
@example({**line_stub.text("U1", "hi"), "webhookEventId": ""})
@example({**line_stub.text("U1", "hi"), "webhookEventId": "E" * 300})
@example(line_stub.text("U" + "a" * 100, "hi"))
def test_a_line_event_is_understood_or_skipped_never_an_exception(raw: dict[str, Any]) -> None:
    # The webhook calls parse_event outside any try: an exception here is a 500.
    result = line.parse_event(raw, NOW)
    if result is None:
        return
    assert isinstance(result, line.LineEvent)
    assert isinstance(result.chat_id, str) and 0 < len(result.chat_id) <= line.MAX_ID
    if result.incoming is not None:
        _check_incoming(result.incoming, line.CHANNEL, result.chat_id)
        assert len(result.incoming.event_id) <= line.MAX_ID
    if result.reply_token is not None:
        assert result.reply_token.value and result.reply_token.expires_at > NOW


@given(text=nasty_text)
def test_any_text_a_line_user_types_reaches_the_flows_as_typed(text: str) -> None:
    result = line.parse_event(line_stub.text("Uabc", text), NOW)
    assert result is not None and result.incoming is not None
    assert result.user_chat and result.reply_token is not None
    assert result.incoming.event == parse_text(line.CHANNEL, text)


# --- the flows' text handling (pure parts) --------------------------------------------------------


@given(nasty_text)
@example("/start " + "x" * 10_000)
@example("\u0e48" * 5000)
def test_text_parsing_and_intents_take_any_unicode(text: str) -> None:
    event = parse_text("telegram", text)
    assert isinstance(event, TextMessage | CommandMessage)
    if isinstance(event, CommandMessage):
        assert event.name.isascii() and event.name == event.name.lower()
    else:
        assert event.text == text
    assert isinstance(normalise(text), str)
    intent = detect_intent(text)
    assert intent is None or isinstance(intent, Intent)


# --- integration events and import lines ----------------------------------------------------------


def _check_refusal(exc: EventError) -> None:
    assert exc.errors, "a refusal names at least one reason"
    for error in exc.errors:
        assert all(isinstance(part, str | int) for part in error.loc)
        assert isinstance(error.type, str) and error.type
        assert isinstance(error.msg, str) and error.msg
        json.dumps(error.as_json())  # the 422 body
        assert error.path()


_bodies = st.one_of(
    st.binary(max_size=200),
    any_json.map(lambda v: json.dumps(v).encode()),
    integration_events.map(to_body),
)


@given(_bodies)
@example(b'{"type": "bill.issued", "data": {"amount_satang": 1e400}}')
@example(b'{"type": "payment.succeeded", "data": {"paid_at": "9999-12-31T23:59:59+14:00"}}')
@example(b"\xed\xa0\x80")
def test_an_integration_event_is_parsed_or_refused_with_field_paths(body: bytes) -> None:
    try:
        event = parse_event(body)
    except EventError as exc:
        _check_refusal(exc)
        if not exc.malformed:
            json.loads(body)  # only a body that is JSON gets field errors (422, not 400)
        return
    assert event.type in INBOUND_EVENT_TYPES


@given(st.one_of(_bodies, import_lines.map(to_body)))
def test_an_import_line_is_parsed_or_refused_with_field_paths(raw: bytes) -> None:
    for parse in (parse_customer_line, parse_bill_line):
        try:
            parse(raw)
        except EventError as exc:
            _check_refusal(exc)


@given(st.lists(st.one_of(_bodies, st.none()), max_size=6), st.sampled_from(["customers", "bills"]))
def test_every_import_line_is_taken_skipped_or_reported(
    raws: list[bytes | None], kind: ImportKind
) -> None:
    lines = [_Line(number=n, raw=raw, end=n * 10) for n, raw in enumerate(raws, start=1)]
    bad: list[int] = []
    parsed = _parse(kind, lines, lambda number, reason: bad.append(number))
    taken = [number for number, _ in parsed]
    blank = [ln.number for ln in lines if ln.raw is not None and not ln.raw.strip()]
    assert sorted(taken + bad + blank) == [ln.number for ln in lines]
