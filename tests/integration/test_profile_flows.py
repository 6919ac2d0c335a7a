"""/profile, /consent and the correction report through the conversation service on both
databases: what the SQL repositories store (encrypted values, audit rows, events out,
throttles) when a customer changes their details. The email server and the SMS gateway are
fakes (they are outside); everything else is real."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from core.chat import ButtonPress, Incoming, Reply, TextMessage, TextReply
from core.domain import ContactKind, NotificationKind
from core.flows.context import ConversationSettings
from core.i18n import preload
from core.services.conversation import ConversationService
from core.services.profile import ProfileService
from storage import tables as t
from storage import tables_integrations as ti
from storage.crypto import FieldCipher
from storage.uow import Database
from tests.integration import factories as f

NOW = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
CHAT = "9001"
_events = itertools.count(1)


class Clock:
    def now(self) -> datetime:
        return NOW


class Outbox:
    """The outside senders: keep what they were given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, to: str, *parts: str) -> None:
        self.sent.append((to, parts[-1]))

    def code(self) -> str:
        return next(word for word in self.sent[-1][1].split() if word.isdigit() and len(word) == 6)


@pytest.fixture
def mail() -> Outbox:
    return Outbox()


@pytest.fixture
def sms() -> Outbox:
    return Outbox()


@pytest.fixture
def service(db: Database, cipher: FieldCipher, mail: Outbox, sms: Outbox) -> ConversationService:
    preload()
    profile = ProfileService(keyed_hash=cipher, sms=sms, email=mail, operator_name="ExampleTel")
    return ConversationService(
        db.uow,
        Clock(),
        ConversationSettings(operator_name="ExampleTel"),
        services={ProfileService: profile},
    )


async def send(service: ConversationService, event: Any) -> list[Reply]:
    handled = await service.handle(
        Incoming("telegram", CHAT, f"evt-{next(_events)}", event, NOW, message_ref="1")
    )
    return handled.replies


def text_of(replies: list[Reply]) -> str:
    return "\n".join(r.text for r in replies if isinstance(r, TextReply))


async def linked(db: Database) -> Any:
    owner = f.customer(language="th")
    user = f.user(owner)
    async with db.uow() as uow:
        await uow.customers.add(owner)
        await uow.customers.add_service_account(f.service_account(owner))
        await uow.users.add(user)
        await uow.links.link(f.chat_link(user, CHAT))
        await uow.commit()
    return owner


async def audit_and_events(db: Database, cipher: FieldCipher) -> tuple[list[Any], list[Any]]:
    async with db.engine.connect() as conn:
        audit = (
            await conn.execute(
                select(t.audit_log.c.actor, t.audit_log.c.action, t.audit_log.c.details).order_by(
                    t.audit_log.c.id
                )
            )
        ).all()
        rows = (
            await conn.execute(
                select(ti.integration_events.c.event_id, ti.integration_events.c.payload_enc)
            )
        ).all()
    events = [
        json.loads(cipher.decrypt(bytes(p), table="integration_events", column="payload", row_id=e))
        for e, p in rows
    ]
    return list(audit), events


async def test_email_and_mobile_changes_are_stored_encrypted_audited_and_published(
    db: Database, service: ConversationService, cipher: FieldCipher, mail: Outbox, sms: Outbox
) -> None:
    owner = await linked(db)
    await send(service, ButtonPress("profile:email"))
    await send(service, TextMessage("Fresh.Mail@Example.org"))
    async with db.engine.connect() as conn:
        pending = (
            (await conn.execute(select(t.metadata.tables["contact_changes"]))).mappings().one()
        )
    assert b"Fresh" not in bytes(pending["value_enc"]) and mail.code().encode() not in bytes(
        pending["code_digest"]
    )
    await send(service, TextMessage(mail.code()))
    await send(service, ButtonPress("profile:phone"))
    await send(service, TextMessage("095-555-1234"))
    assert sms.sent[-1][0] == "0955551234"
    await send(service, TextMessage(sms.code()))
    await send(service, ButtonPress("profile:notify:bill_issued:off"))
    await send(service, ButtonPress("profile:show"))

    async with db.uow() as uow:
        now = await uow.customers.get(owner.id)
        assert now is not None
        assert (now.email, now.phone) == ("Fresh.Mail@example.org", "0955551234")
        assert await uow.customers.find_by_phone("0955551234") == now
        assert await uow.profile.customer_id_by_email("fresh.mail@example.org") == owner.id
        assert (await uow.notification_preferences.for_customer(owner.id)) == {
            NotificationKind.BILL_ISSUED: False
        }
        assert (
            await uow.profile.open_contact_change(owner.id, ContactKind.EMAIL, "telegram", CHAT)
            is None
        )
    audit, events = await audit_and_events(db, cipher)
    actor = f"customer:{owner.id}"
    assert [(a, action) for a, action, _ in audit] == [
        (actor, "profile.updated"),
        (actor, "profile.updated"),
        (actor, "profile.updated"),
        (actor, "customer.view"),
    ]
    details = [json.loads(d) for _, _, d in audit]
    assert [d.get("fields") for d in details] == [
        ["email"],
        ["phone"],
        ["notifications.bill_issued"],
        ["name", "address", "phone", "email"],
    ]
    for value in ("Fresh.Mail@example.org", "0955551234", owner.name, owner.address):
        assert value not in json.dumps(details, ensure_ascii=False)
    changes = [e["data"]["changes"] for e in events if e["type"] == "profile.updated"]
    assert changes == [
        {"email": "Fresh.Mail@example.org"},
        {"phone": "0955551234"},
        {"notifications.bill_issued": "off"},
    ]


async def test_a_number_of_another_customer_is_refused_and_codes_are_throttled(
    db: Database, service: ConversationService, sms: Outbox
) -> None:
    await linked(db)
    other = f.customer()
    await f.add_customers(db, other)
    await send(service, ButtonPress("profile:phone"))
    refused = await send(service, TextMessage(other.phone))
    assert sms.sent == []
    assert "เบอร์นี้มีบัญชีอื่นใช้อยู่แล้วค่ะ" in text_of(refused)
    for number in ("0911111111", "0922222222", "0933333333", "0944444444"):
        await send(service, ButtonPress("profile:phone"))
        last = await send(service, TextMessage(number))
    assert len(sms.sent) == 3
    assert "คุณขอรหัสหลายครั้งในเวลาสั้น ๆ ค่ะ" in text_of(last)


async def test_a_correction_report_and_consent_are_stored(
    db: Database, service: ConversationService, cipher: FieldCipher
) -> None:
    owner = await linked(db)
    await send(service, ButtonPress("correction:name"))
    await send(service, TextMessage("ชื่อสะกดผิดค่ะ ที่ถูกคือ ทดสอบ"))
    await send(service, ButtonPress("consent:marketing:on"))
    await send(service, ButtonPress("consent:marketing:off"))
    async with db.uow() as uow:
        (request,) = await uow.profile.corrections_for(owner.id)
        history = await uow.consent.history(owner.id)
    assert request.text == "ชื่อสะกดผิดค่ะ ที่ถูกคือ ทดสอบ"
    assert [(r.purpose.value, r.granted, r.channel) for r in history] == [
        ("marketing", True, "telegram"),
        ("marketing", False, "telegram"),
    ]
    _, events = await audit_and_events(db, cipher)
    assert [e["type"] for e in events] == [
        "profile.correction_requested",
        "consent.changed",
        "consent.changed",
    ]
    assert events[0]["data"]["request_id"] == request.id
