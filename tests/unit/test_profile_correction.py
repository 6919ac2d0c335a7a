""" "Report wrong data": the customer's words are stored and sent to staff; support resolve
the request and every chat of the customer is told, in its language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fakes import FakeDatabase, FrozenClock
from harness import Chat, joined, texts
from profile_support import assert_language, audit, button_payloads, events, link_customer

from core.domain import CorrectionStatus, ProfileField, StaffMember, StaffRole
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import Translator, translator
from core.services.corrections import CorrectionDesk, field_name

WORDS = "ชื่อสะกดผิดค่ะ ที่ถูกคือ สมหญิง ใจงาม 😊 '; DROP TABLE customers;--"


def staff(*roles: StaffRole, active: bool = True) -> StaffMember:
    return StaffMember(
        id="s1",
        handle="somchai",
        roles=frozenset(roles),
        active=active,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def report(chat: Chat, field: str = "name", words: str = WORDS) -> list:
    await chat.press("correction")
    await chat.press(f"correction:{field}")
    return await chat.say(words)


@pytest.mark.parametrize("how", ["button", "words"])
async def test_a_report_is_stored_audited_and_published(
    chat: Chat, db: FakeDatabase, t: Translator, how: str
) -> None:
    owner = link_customer(db, chat)
    if how == "button":
        asked = await chat.press("correction")
    else:
        asked = await chat.say("ชื่อผิด" if t.lang == "th" else "my name is wrong")
    assert button_payloads(asked)[:5] == [f"correction:{f.value}" for f in ProfileField]
    await chat.press("correction:name")
    replies = await chat.say(WORDS)
    (request,) = db.state.profile.corrections.values()
    assert request.customer_id == owner.id and request.field is ProfileField.NAME
    assert request.text == WORDS and request.status is CorrectionStatus.OPEN
    assert request.id[:8].upper() in joined(replies)
    (entry,) = audit(db, "correction.requested")
    assert entry.details == {"request_id": request.id, "field": "name", "channel": "terminal"}
    assert WORDS not in repr(db.state.audit)
    (event,) = events(db, "profile.correction_requested")
    assert event.data["proposed"] == WORDS and event.data["field"] == "name"
    assert event.data["account_no"] == owner.account_no
    assert chat.state.flow is None
    assert_language(replies, t.lang)


@pytest.mark.parametrize("words", ["", "  ", "ab", "x" * 1001, "\x00\x01"])
async def test_too_little_or_too_much_is_asked_again(
    chat: Chat, db: FakeDatabase, t: Translator, words: str
) -> None:
    link_customer(db, chat)
    replies = await report(chat, words=words)
    assert db.state.profile.corrections == {}
    assert t._("Please write a few words, {limit} characters at most.").format(
        limit=1000
    ) in joined(replies)
    assert chat.state.step == "text"


async def test_a_report_is_text_even_when_it_sounds_like_a_request(
    chat: Chat, db: FakeDatabase
) -> None:
    link_customer(db, chat)
    await report(chat, "address", "ที่อยู่บิลผิด ต้องเป็น 10210")  # "บิล" alone would be /bill
    (request,) = db.state.profile.corrections.values()
    assert request.field is ProfileField.ADDRESS


async def test_an_unlinked_chat_cannot_report(chat: Chat, db: FakeDatabase) -> None:
    replies = await chat.press("correction:name")
    assert "link" in button_payloads(replies)
    assert chat.state.flow is None


async def test_support_resolves_and_every_chat_is_told_in_its_language(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, service
) -> None:
    owner = link_customer(db, chat, other_chats=(("line", "U" + "1" * 32),))
    line_chat = Chat(service, db, clock, channel="line", chat_id="U" + "1" * 32)
    line_chat.seed(language="en" if chat.state.language == "th" else "th")
    await report(chat)
    (request,) = db.state.profile.corrections.values()
    desk = CorrectionDesk(db.unit_of_work, clock)
    listed = await desk.open_requests(staff(StaffRole.SUPPORT))
    assert [(o.request.id, o.account_no, o.request.text) for o in listed] == [
        (request.id, owner.account_no, WORDS)
    ]
    assert audit(db, "correction.list")[0].actor == "staff:somchai"
    before = len(db.state.outbox)

    resolved = await desk.resolve_correction(request.id, staff(StaffRole.SUPPORT), "แก้ชื่อแล้วค่ะ")

    assert resolved.status is CorrectionStatus.RESOLVED and resolved.resolved_by == "staff:somchai"
    stored = db.state.profile.corrections[request.id]
    assert stored.status is CorrectionStatus.RESOLVED and stored.resolution_note == "แก้ชื่อแล้วค่ะ"
    (entry,) = audit(db, "correction.resolved")
    assert entry.subject == owner.id and entry.details == {
        "request_id": request.id,
        "field": "name",
    }
    told = db.state.outbox[before:]
    assert {(row.channel, row.chat_id) for row in told} == {
        ("terminal", chat.chat_id),
        ("line", line_chat.chat_id),
    }
    for row in told:
        t = translator(db.conversation(row.channel, row.chat_id).language)
        text = texts([row.decoded()])[0]
        done = t._("✅ We have dealt with your report about your {field} (sent {date}).")
        assert text.startswith(
            done.format(
                field=field_name(t, ProfileField.NAME), date=t.date(request.created_at.date())
            )
        )
        assert "แก้ชื่อแล้วค่ะ" in text
    assert await desk.open_requests(staff(StaffRole.SUPPORT)) == []


async def test_resolving_needs_support_a_note_and_an_open_request(
    chat: Chat, db: FakeDatabase, clock: FrozenClock
) -> None:
    link_customer(db, chat)
    await report(chat)
    (request,) = db.state.profile.corrections.values()
    desk = CorrectionDesk(db.unit_of_work, clock)
    with pytest.raises(PermissionError):
        await desk.resolve_correction(request.id, staff(StaffRole.MARKETER), "done")
    with pytest.raises(PermissionError):
        await desk.resolve_correction(request.id, staff(StaffRole.SUPPORT, active=False), "done")
    with pytest.raises(PermissionError):
        await desk.open_requests(staff(StaffRole.ADMIN))
    with pytest.raises(InvalidInput):
        await desk.resolve_correction(request.id, staff(StaffRole.SUPPORT), " ")
    with pytest.raises(InvalidInput):
        await desk.resolve_correction(request.id, staff(StaffRole.SUPPORT), "x" * 501)
    with pytest.raises(NotFound):
        await desk.resolve_correction("f" * 32, staff(StaffRole.SUPPORT), "done")
    await desk.resolve_correction(request.id, staff(StaffRole.SUPPORT), "done")
    with pytest.raises(Conflict):
        await desk.resolve_correction(request.id, staff(StaffRole.SUPPORT), "again")
    assert len(audit(db, "correction.resolved")) == 1
