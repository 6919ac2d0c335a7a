"""/profile: masked by default, in full only when asked (and that look is audited as the
owner's own), in the chat's language; a chat that is not linked is asked to link."""

from __future__ import annotations

import pytest
from fakes import FakeDatabase
from harness import Chat, assert_in_language, joined
from profile_support import (
    ADDRESS,
    EMAIL,
    NAME,
    PHONE,
    assert_language,
    audit,
    button_payloads,
    link_customer,
)

from core.domain import NotificationKind
from core.flows.profile import mask_address, mask_name
from core.i18n import Translator
from core.masking import mask_email, mask_phone


def test_masks_keep_only_a_hint_of_each_value() -> None:
    assert mask_phone("0812345678") == "08x-xxx-5678"
    assert mask_phone("+66 81 234 5678") == "08x-xxx-5678"
    assert mask_email("somying@example.com") == "s***@example.com"
    assert mask_name("สมหญิง ใจดี") == "ส*** ใ***"
    assert mask_name("  ") == "***"
    assert mask_address(ADDRESS) == "9***"
    assert mask_address("") == "***"


@pytest.mark.parametrize("how", ["command", "button", "words"])
async def test_the_profile_is_masked_by_default(
    chat: Chat, db: FakeDatabase, t: Translator, how: str
) -> None:
    link_customer(db, chat)
    if how == "command":
        replies = await chat.command("profile")
    elif how == "button":
        replies = await chat.press("profile")
    else:
        replies = await chat.say("ข้อมูลส่วนตัว" if t.lang == "th" else "my details")
    body = joined(replies)
    assert "08x-xxx-5678" in body and "s***@example.com" in body and "ส*** ใ***" in body
    for secret in (PHONE, EMAIL, NAME, ADDRESS, "ใจดี"):
        assert secret not in body
    assert t._("Language: {language}").format(language="ภาษาไทย") in body
    assert t._("new bill messages") in body and t._("due-date reminders") in body
    assert "profile:show" in button_payloads(replies)
    assert_language(replies, t.lang)
    assert audit(db, "customer.view") == []  # nothing was decrypted for display


async def test_show_in_full_reveals_and_records_the_owners_own_view(
    chat: Chat, db: FakeDatabase, t: Translator, clock
) -> None:
    owner = link_customer(db, chat)
    replies = await chat.press("profile:show")
    body = joined(replies)
    for value in (NAME, ADDRESS, PHONE, EMAIL):
        assert value in body
    (entry,) = audit(db, "customer.view")
    assert entry.actor == f"customer:{owner.id}" and entry.subject == owner.id
    assert entry.details == {
        "own": True,
        "fields": ["name", "address", "phone", "email"],
        "channel": "terminal",
    }
    assert entry.at == clock.now()
    assert_language(replies, t.lang)


async def test_a_customer_without_email_sees_none(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    link_customer(db, chat, email=None)
    body = joined(await chat.command("profile"))
    assert t._("Email: {email}").format(email=t._("(none)")) in body


async def test_notification_settings_are_shown_as_they_are(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    owner = link_customer(db, chat)
    db.state.notification_preferences[(owner.id, NotificationKind.BILL_DUE)] = False
    replies = await chat.command("profile")
    body = joined(replies)
    assert (
        t._("{what}: {state}").format(what=t._("due-date reminders"), state=t._("off ❌")) in body
    )
    assert t._("{what}: {state}").format(what=t._("new bill messages"), state=t._("on ✅")) in body
    payloads = button_payloads(replies)
    assert "profile:notify:bill_due:on" in payloads
    assert "profile:notify:bill_issued:off" in payloads


@pytest.mark.parametrize("payload", ["profile", "profile:show", "profile:address", "profile:email"])
async def test_an_unlinked_chat_is_asked_to_link_first(
    chat: Chat, t: Translator, payload: str
) -> None:
    replies = await chat.press(payload)
    assert t._("Please link this chat to your e-service account first.") in joined(replies)
    assert "link" in button_payloads(replies)
    assert chat.state.flow is None
    assert_in_language(replies, t.lang)


async def test_profile_buttons_fit_line_labels(chat: Chat, db: FakeDatabase, t: Translator) -> None:
    link_customer(db, chat)
    replies = await chat.command("profile")
    labels = [b.label for r in replies for row in getattr(r, "buttons", ()) for b in row]
    assert labels and all(len(label) <= 20 for label in labels), labels
