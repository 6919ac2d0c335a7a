"""Helpers for the profile, consent, /mydata and /forget tests: a customer linked to the
test chat, and what the fake database recorded about them."""

from __future__ import annotations

from datetime import UTC, datetime

from factories import customer
from fakes import FakeDatabase
from harness import Chat, assert_in_language

from core.chat import Button, FileReply, Reply, TextReply
from core.domain import (
    AuditEntry,
    Channel,
    ChatLink,
    Customer,
    EServiceUser,
    ServiceAccount,
    ServiceKind,
    new_id,
)
from core.integration_events import OutboundEvent

NAME = "สมหญิง ใจดี"
ADDRESS = "99 ถนนแจ้งวัฒนะ แขวงทุ่งสองห้อง เขตหลักสี่ กรุงเทพฯ 10210"
PHONE = "0812345678"
EMAIL = "somying@example.com"
NATIONAL_ID = "1101700203451"


def link_customer(
    db: FakeDatabase, chat: Chat, *, other_chats: tuple[tuple[str, str], ...] = (), **fields: object
) -> Customer:
    """A customer with a mobile number and an e-service user, linked to ``chat`` (and to
    ``other_chats``)."""
    values: dict[str, object] = {
        "name": NAME,
        "address": ADDRESS,
        "phone": PHONE,
        "email": EMAIL,
        "national_id": NATIONAL_ID,
    }
    values.update(fields)
    owner = customer(**values)
    db.state.customers[owner.id] = owner
    account = ServiceAccount(new_id(), owner.id, owner.phone, ServiceKind.MOBILE, "เน็ตไม่อั้น 599")
    db.state.service_accounts[account.id] = account
    user = EServiceUser(id=new_id(), user_id="somying", customer_id=owner.id, password_hash="x")
    db.state.users[user.id] = user
    for channel, chat_id in ((chat.channel, chat.chat_id), *other_chats):
        db.state.links[(channel, chat_id)] = ChatLink(
            Channel(channel), chat_id, user.id, owner.id, datetime(2026, 11, 1, tzinfo=UTC)
        )
    return owner


def other_customer(db: FakeDatabase, **fields: object) -> Customer:
    values: dict[str, object] = {
        "name": "สมชาย รักไทย",
        "phone": "0899999999",
        "email": "somchai@example.com",
        "account_no": "8009999999",
    }
    values.update(fields)
    found = customer(**values)
    db.state.customers[found.id] = found
    return found


def stored(db: FakeDatabase, customer_id: str) -> Customer:
    found = db.state.customers[customer_id]
    return found


def audit(db: FakeDatabase, action: str) -> list[AuditEntry]:
    return [entry for entry in db.state.audit if entry.action == action]


def events(db: FakeDatabase, kind: str) -> list[OutboundEvent]:
    return [event for _, event, _ in db.state.published if event.type == kind]


def button_payloads(replies: list[Reply]) -> list[str]:
    return [
        b.payload
        for r in replies
        if isinstance(r, TextReply)
        for row in r.buttons
        for b in row
        if isinstance(b, Button)
    ]


def files(replies: list[Reply]) -> list[FileReply]:
    return [r for r in replies if isinstance(r, FileReply)]


def assert_language(replies: list[Reply], lang: str, *values: str) -> None:
    """Like ``assert_in_language``, with the customer's own (Thai) values and the names of
    languages (written in themselves) taken out first."""
    kept = ("ภาษาไทย", NAME, ADDRESS, "ส*** ใ***", *values)
    cleaned: list[Reply] = []
    for reply in replies:
        if isinstance(reply, TextReply):
            text = reply.text
            for value in sorted(kept, key=len, reverse=True):
                text = text.replace(value, "")
            cleaned.append(TextReply(text or "-", reply.buttons))
    assert_in_language(cleaned, lang)
