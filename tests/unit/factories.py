"""Test data: inbound events, customers and chat links, with sensible defaults."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from core.chat import (
    ButtonPress,
    CommandMessage,
    InboundEvent,
    Incoming,
    SharedContact,
    TextMessage,
    UnsupportedMessage,
)
from core.domain import Channel, ChatLink, Customer, new_id

CHANNELS = tuple(str(channel) for channel in Channel)
LANGUAGES = ("th", "en")
OPERATOR = "ExampleTel"
CONTACT = "privacy@example.co.th"

_event_ids = itertools.count(1)


def incoming(
    event: InboundEvent,
    *,
    channel: str = "terminal",
    chat_id: str = "chat-1",
    event_id: str | None = None,
    received_at: datetime | None = None,
) -> Incoming:
    event_id = event_id or f"evt-{next(_event_ids)}"
    return Incoming(
        channel=channel,
        chat_id=chat_id,
        event_id=event_id,
        event=event,
        received_at=received_at or datetime(2026, 11, 25, 7, 5, tzinfo=UTC),
        message_ref=f"msg-{event_id}",  # the platform's id of the user's message
    )


def text(value: str) -> TextMessage:
    return TextMessage(text=value)


def command(name: str, arg: str = "") -> CommandMessage:
    return CommandMessage(name=name, arg=arg)


def button(payload: str) -> ButtonPress:
    return ButtonPress(payload=payload)


def contact(phone: str = "0812345678", *, is_own: bool = True) -> SharedContact:
    return SharedContact(phone=phone, is_own=is_own)


def sticker() -> UnsupportedMessage:
    return UnsupportedMessage(kind="sticker")


def customer(**overrides: object) -> Customer:
    values: dict[str, object] = {
        "id": new_id(),
        "account_no": "8001234567",
        "name": "สมหญิง ใจดี",
        "address": "99 ถนนแจ้งวัฒนะ หลักสี่ กรุงเทพฯ 10210",
        "phone": "0812345678",
        "email": "somying@example.com",
        "national_id": None,
    }
    values.update(overrides)
    return Customer(**values)  # type: ignore[arg-type]


def chat_link(
    of: Customer, *, channel: str = "terminal", chat_id: str = "chat-1", at: datetime | None = None
) -> ChatLink:
    return ChatLink(
        channel=Channel(channel),
        chat_id=chat_id,
        eservice_user_id=new_id(),
        customer_id=of.id,
        linked_at=at or datetime(2026, 11, 1, tzinfo=UTC),
    )
