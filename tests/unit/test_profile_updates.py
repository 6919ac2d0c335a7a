"""Changing the profile in the chat: each change and each way it fails, what the audit log
records (fields, never values) and the ``profile.updated`` event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import FakeDatabase, FrozenClock
from fakes_linking import FakeSms
from fakes_profile import FakeEmail
from harness import Chat, joined, texts
from profile_support import (
    ADDRESS,
    EMAIL,
    PHONE,
    assert_language,
    audit,
    button_payloads,
    events,
    link_customer,
    other_customer,
    stored,
)

from core.domain import NotificationKind, ServiceAccount, ServiceKind, new_id
from core.i18n import Translator
from core.services.profile import AddressProblem, address_problem, normalise_address

NEW_ADDRESS = "12/3 ซอยสุขุมวิท 63 แขวงคลองตันเหนือ เขตวัฒนา กรุงเทพมหานคร 10110"


# --- the address -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        (NEW_ADDRESS, None),
        ("221B Baker Street, Soi 4, Khlong Toei, Bangkok 10110", None),
        ("99/1 หมู่ 3 ต.บางพูด อ.ปากเกร็ด จ.นนทบุรี ๑๑๑๒๐", None),  # Thai digits
        ("Rue de l'Église 5, Chiang Mai 50200", None),
        ("12 Main St\nBangkok\n10500", None),  # line breaks become spaces
        ("10210", AddressProblem.TOO_SHORT),
        ("   ", AddressProblem.TOO_SHORT),
        ("ก" * 301 + " 10210", AddressProblem.TOO_LONG),
        ("99 ถนนแจ้งวัฒนะ 🏠 กรุงเทพฯ 10210", AddressProblem.CHARACTERS),
        ("99 北京路 Bangkok 10210", AddressProblem.CHARACTERS),
        ("99 Main St <script> 10210", AddressProblem.CHARACTERS),
        ("1 Road'; DROP TABLE customers;-- 10210", None),  # odd, but only text: stored as is
        ("99 ถนนแจ้งวัฒนะ กรุงเทพมหานคร", AddressProblem.POSTAL_CODE),
        ("99 ถนนแจ้งวัฒนะ กรุงเทพฯ 1021", AddressProblem.POSTAL_CODE),
        ("99 ถนนแจ้งวัฒนะ กรุงเทพฯ 102100", AddressProblem.POSTAL_CODE),
        ("99 ถนนแจ้งวัฒนะ กรุงเทพฯ 00210", AddressProblem.POSTAL_CODE),  # not a Thai code
        ("99 Main Road Bangkok 97000", AddressProblem.POSTAL_CODE),
    ],
)
def test_address_rules(address: str, problem: str | None) -> None:
    assert address_problem(address) == problem


async def test_a_new_address_is_saved_audited_and_published(
    chat: Chat, db: FakeDatabase, t: Translator, clock: FrozenClock
) -> None:
    owner = link_customer(db, chat)
    asked = await chat.press("profile:address")
    assert "10210" in joined(asked)  # the example shows the postal code
    replies = await chat.say("  12/3 ซอยสุขุมวิท 63\nแขวงคลองตันเหนือ เขตวัฒนา กรุงเทพมหานคร 10110 ")
    assert stored(db, owner.id).address == NEW_ADDRESS
    assert NEW_ADDRESS in joined(replies)
    (entry,) = audit(db, "profile.updated")
    assert entry.actor == f"customer:{owner.id}" and entry.subject == owner.id
    assert entry.details == {"fields": ["address"], "channel": "terminal"}
    assert NEW_ADDRESS not in repr(db.state.audit)
    (event,) = events(db, "profile.updated")
    assert event.data["account_no"] == owner.account_no
    assert event.data["changes"] == {"address": NEW_ADDRESS}
    assert chat.state.flow is None
    assert_language(replies, t.lang, NEW_ADDRESS)


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("บ้าน", AddressProblem.TOO_SHORT),
        ("99 ถนนแจ้งวัฒนะ กรุงเทพมหานคร", AddressProblem.POSTAL_CODE),
        ("99 ถนนแจ้งวัฒนะ 😀 กรุงเทพฯ 10210", AddressProblem.CHARACTERS),
        ("x" * 400 + " 10210", AddressProblem.TOO_LONG),
    ],
)
async def test_a_bad_address_is_refused_with_the_reason_and_asked_again(
    chat: Chat, db: FakeDatabase, t: Translator, typed: str, problem: str
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:address")
    replies = await chat.say(typed)
    assert stored(db, owner.id).address == ADDRESS
    assert chat.state.step == "address"  # still asking
    assert audit(db, "profile.updated") == [] and events(db, "profile.updated") == []
    reasons = {
        AddressProblem.TOO_SHORT: "That address is too short. Please give the house number, "
        "road, district, province and postal code.",
        AddressProblem.POSTAL_CODE: "I couldn't find a 5-digit Thai postal code in that "
        "address (for example 10210). Please add it.",
        AddressProblem.CHARACTERS: "Please use Thai or English letters, digits and ordinary "
        "punctuation only (no emoji or other scripts).",
        AddressProblem.TOO_LONG: "That address is too long (300 characters at most). "
        "Please shorten it.",
    }
    assert t._(reasons[problem]) in joined(replies)
    assert_language(replies, t.lang)
    # …and the right one still works
    await chat.say(NEW_ADDRESS)
    assert stored(db, owner.id).address == normalise_address(NEW_ADDRESS)


async def test_cancel_leaves_the_address_alone(chat: Chat, db: FakeDatabase) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:address")
    await chat.say("ยกเลิก")
    assert chat.state.flow is None
    assert stored(db, owner.id).address == ADDRESS


# --- the email address, confirmed by a code --------------------------------------------------


async def test_a_new_email_is_changed_only_after_its_code(
    chat: Chat, db: FakeDatabase, email: FakeEmail, t: Translator
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:email")
    sent = await chat.say("New.Address@Example.COM")
    (mail,) = email.sent
    assert mail.to == "New.Address@example.com"
    assert "N***@example.com" in joined(sent)
    assert stored(db, owner.id).email == EMAIL  # not yet
    assert mail.code not in repr(db.state)  # only its keyed hash is kept
    replies = await chat.say(mail.code)
    assert stored(db, owner.id).email == "New.Address@example.com"
    (entry,) = audit(db, "profile.updated")
    assert entry.details == {"fields": ["email"], "channel": "terminal"}
    (event,) = events(db, "profile.updated")
    assert event.data["changes"] == {"email": "New.Address@example.com"}
    assert_language(replies, t.lang, "New.Address@example.com")


async def test_a_wrong_email_code_counts_tries_then_dies(
    chat: Chat, db: FakeDatabase, email: FakeEmail, t: Translator
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:email")
    await chat.say("new@example.com")
    right = email.last_code()
    wrong = "000000" if right != "000000" else "111111"
    for left in (4, 3, 2, 1):
        replies = await chat.say(wrong)
        expected = t.ngettext(
            "That code isn't right. You have {n} more try.",
            "That code isn't right. You have {n} more tries.",
            left,
        ).format(n=left)
        assert texts(replies) == [expected]
    replies = await chat.say(wrong)
    assert t._("That code no longer works after too many wrong tries.") in joined(replies)
    assert "profile:email" in button_payloads(replies)
    await chat.say(right)  # too late: the code is dead, the dialogue over
    assert stored(db, owner.id).email == EMAIL
    assert events(db, "profile.updated") == []


async def test_an_expired_email_code_is_refused(
    chat: Chat, db: FakeDatabase, email: FakeEmail, clock: FrozenClock, t: Translator
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:email")
    await chat.say("new@example.com")
    clock.advance(timedelta(minutes=9, seconds=59))
    await chat.say("999999" if email.last_code() != "999999" else "888888")  # a try, in time
    clock.advance(timedelta(seconds=2))
    replies = await chat.say(email.last_code())
    assert t._("That code has expired.") in joined(replies)
    assert stored(db, owner.id).email == EMAIL


async def test_the_dialogue_timeout_ends_a_late_code_too(
    chat: Chat, db: FakeDatabase, email: FakeEmail, clock: FrozenClock, t: Translator
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:email")
    await chat.say("new@example.com")
    clock.advance(timedelta(minutes=11))
    await chat.say(email.last_code())
    assert stored(db, owner.id).email == EMAIL


async def test_an_email_code_works_only_in_the_chat_that_asked(
    chat: Chat, db: FakeDatabase, email: FakeEmail, service, clock: FrozenClock
) -> None:
    owner = link_customer(db, chat, other_chats=(("telegram", "tg-2"),))
    await chat.press("profile:email")
    await chat.say("new@example.com")
    other = Chat(service, db, clock, channel="telegram", chat_id="tg-2")
    other.seed(language="th")
    await other.press("profile:email")  # a dialogue there, but no code of its own
    await other.say(email.last_code())
    assert stored(db, owner.id).email == EMAIL


async def test_only_the_newest_email_code_works(
    chat: Chat, db: FakeDatabase, email: FakeEmail
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:email")
    await chat.say("first@example.com")
    first = email.last_code()
    await chat.press("profile:email")
    await chat.say("second@example.com")
    if first != email.last_code():
        await chat.say(first)
        assert stored(db, owner.id).email == EMAIL
    await chat.press("profile:email")
    await chat.say("third@example.com")
    await chat.say(email.last_code())
    assert stored(db, owner.id).email == "third@example.com"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("not-an-email", "That doesn't look like an email address (for example name@example.com)."),
        ("a@b", "That doesn't look like an email address (for example name@example.com)."),
        (
            "ส้ม@ตัวอย่าง.ไทย",
            "That doesn't look like an email address (for example name@example.com).",
        ),
        (
            "x' OR 1=1 --@example.com",
            "That doesn't look like an email address (for example name@example.com).",
        ),
        (
            "x" * 300 + "@example.com",
            "That doesn't look like an email address (for example name@example.com).",
        ),
        ("SOMYING@example.com", "That is already the email address on your account."),
        (
            "somchai@EXAMPLE.com",
            "That email address is already used by another account. Please use another one.",
        ),
    ],
)
async def test_an_unusable_email_is_refused_without_sending_anything(
    chat: Chat, db: FakeDatabase, email: FakeEmail, t: Translator, typed: str, reason: str
) -> None:
    link_customer(db, chat)
    other_customer(db)
    await chat.press("profile:email")
    replies = await chat.say(typed)
    assert email.sent == []
    assert t._(reason) in joined(replies)
    assert chat.state.step == "email"
    assert_language(replies, t.lang)


async def test_an_email_taken_while_the_code_was_on_its_way_is_refused(
    chat: Chat, db: FakeDatabase, email: FakeEmail, t: Translator
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:email")
    await chat.say("wanted@example.com")
    other_customer(db, email="Wanted@example.com")
    replies = await chat.say(email.last_code())
    assert stored(db, owner.id).email == EMAIL
    assert t._(
        "That email address is already used by another account. Please use another one."
    ) in joined(replies)


async def test_email_codes_are_rate_limited(
    chat: Chat, db: FakeDatabase, email: FakeEmail, t: Translator, clock: FrozenClock
) -> None:
    link_customer(db, chat)
    for n in range(3):
        await chat.press("profile:email")
        await chat.say(f"try{n}@example.com")
    await chat.press("profile:email")
    replies = await chat.say("try9@example.com")
    assert len(email.sent) == 3
    wait = t._(
        "You've asked for several codes in a short time. Please wait until {time} "
        "before asking again."
    ).format(time=t.datetime(clock.now() + timedelta(minutes=15)))
    assert wait in joined(replies)
    clock.advance(timedelta(minutes=16))
    await chat.press("profile:email")
    await chat.say("later@example.com")
    assert len(email.sent) == 4


async def test_an_email_server_failure_changes_nothing_and_says_so(
    chat: Chat, db: FakeDatabase, email: FakeEmail, t: Translator
) -> None:
    owner = link_customer(db, chat)
    email.fail_next = True
    await chat.press("profile:email")
    replies = await chat.say("new@example.com")
    assert t._("Sorry, I couldn't send the code just now. Please try again shortly.") in joined(
        replies
    )
    assert stored(db, owner.id).email == EMAIL
    assert db.state.profile.changes == []


async def test_text_that_is_no_code_is_asked_again_or_routed(
    chat: Chat, db: FakeDatabase, email: FakeEmail, t: Translator
) -> None:
    link_customer(db, chat)
    await chat.press("profile:email")
    await chat.say("new@example.com")
    replies = await chat.say("อะไรนะ")
    assert texts(replies) == [
        t._("Please type the {digits}-digit code (or /cancel).").format(digits=6)
    ]
    replies = await chat.say("บิล" if t.lang == "th" else "bill")  # another request: routed
    assert chat.state.flow != "profile"


# --- the mobile number, confirmed by SMS -----------------------------------------------------


async def test_a_new_mobile_number_is_changed_after_the_sms_code(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    owner = link_customer(db, chat)
    await chat.press("profile:phone")
    sent = await chat.say("+66 91 234 5678")
    (message,) = sms.sent
    assert message.phone == "0912345678"
    assert "09x-xxx-5678" in joined(sent)
    replies = await chat.say(" ".join(message.code))  # "1 2 3 4 5 6" is a code too
    assert stored(db, owner.id).phone == "0912345678"
    (event,) = events(db, "profile.updated")
    assert event.data["changes"] == {"phone": "0912345678"}
    assert audit(db, "profile.updated")[0].details["fields"] == ["phone"]
    assert_language(replies, t.lang, "0912345678")


async def test_a_shared_contact_is_a_new_number_only_if_it_is_ones_own(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    from factories import contact

    owner = link_customer(db, chat)
    await chat.press("profile:phone")
    replies = await chat.send(contact("0923456789", is_own=False))
    assert sms.sent == []
    assert t._("That contact card is someone else's. I can only use your own number.") in joined(
        replies
    )
    await chat.send(contact("0923456789"))
    await chat.say(sms.last_code())
    assert stored(db, owner.id).phone == "0923456789"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        (
            "021234567",
            "That doesn't look like a Thai mobile number (10 digits starting 06, 08 or 09).",
        ),
        ("hello", "That doesn't look like a Thai mobile number (10 digits starting 06, 08 or 09)."),
        (
            "+1 415 555 0100",
            "That doesn't look like a Thai mobile number (10 digits starting 06, 08 or 09).",
        ),
        (PHONE, "That is already the mobile number on your account."),
        ("0899999999", "That number is already used by another account. Please use another one."),
        ("0877777777", "That number is already used by another account. Please use another one."),
    ],
)
async def test_an_unusable_number_is_refused(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator, typed: str, reason: str
) -> None:
    link_customer(db, chat)
    other = other_customer(db)
    account = ServiceAccount(new_id(), other.id, "0877777777", ServiceKind.MOBILE, "โทรคุ้ม 299")
    db.state.service_accounts[account.id] = account
    await chat.press("profile:phone")
    replies = await chat.say(typed)
    assert sms.sent == []
    assert t._(reason) in joined(replies)


async def test_without_senders_email_and_mobile_changes_are_not_offered(
    db: FakeDatabase, clock: FrozenClock, settings, linking, t: Translator, lang: str
) -> None:
    from fakes_linking import FakeKeyedHash

    from core.services.conversation import ConversationService
    from core.services.linking import LinkingService
    from core.services.profile import ProfileService

    plain = ProfileService(keyed_hash=FakeKeyedHash(), sms=None, email=None, operator_name="X")
    service = ConversationService(
        db.unit_of_work, clock, settings, services={LinkingService: linking, ProfileService: plain}
    )
    chat = Chat(service, db, clock)
    chat.seed(language=lang)
    link_customer(db, chat)
    payloads = button_payloads(await chat.command("profile"))
    assert "profile:address" in payloads
    assert "profile:email" not in payloads and "profile:phone" not in payloads
    replies = await chat.press("profile:phone")  # an old button
    assert chat.state.flow is None
    assert "/cancel" not in joined(replies)


# --- language and notifications ----------------------------------------------------------------


async def test_the_language_changes_the_record_and_this_chat(
    chat: Chat, db: FakeDatabase, lang: str
) -> None:
    owner = link_customer(db, chat, language=lang)
    other = "en" if lang == "th" else "th"
    choice = await chat.press("profile:lang")
    assert f"profile:lang:{other}" in button_payloads(choice)
    replies = await chat.press(f"profile:lang:{other}")
    assert stored(db, owner.id).language == other
    assert chat.state.language == other
    assert_language(replies, other)
    (event,) = events(db, "profile.updated")
    assert event.data["changes"] == {"language": other}
    await chat.press(f"profile:lang:{other}")  # again: no change, nothing recorded
    assert len(events(db, "profile.updated")) == 1


@pytest.mark.parametrize("kind", list(NotificationKind))
async def test_each_notification_kind_turns_off_and_on_in_one_tap(
    chat: Chat, db: FakeDatabase, t: Translator, kind: NotificationKind
) -> None:
    owner = link_customer(db, chat)
    replies = await chat.press(f"profile:notify:{kind.value}:off")
    assert db.state.notification_preferences[(owner.id, kind)] is False
    assert f"profile:notify:{kind.value}:on" in button_payloads(replies)
    await chat.press(f"profile:notify:{kind.value}:off")  # a second tap: no change
    await chat.press(f"profile:notify:{kind.value}:on")
    assert db.state.notification_preferences[(owner.id, kind)] is True
    changes = [e.data["changes"] for e in events(db, "profile.updated")]
    assert changes == [
        {f"notifications.{kind.value}": "off"},
        {f"notifications.{kind.value}": "on"},
    ]
    assert [e.details["fields"] for e in audit(db, "profile.updated")] == [
        [f"notifications.{kind.value}"]
    ] * 2
    assert_language(replies, t.lang)


@pytest.mark.parametrize(
    "payload",
    ["profile:notify:junk:off", "profile:notify:bill_due:maybe", "profile:lang:fr", "profile:nope"],
)
async def test_forged_profile_buttons_change_nothing(
    chat: Chat, db: FakeDatabase, payload: str
) -> None:
    owner = link_customer(db, chat)
    before = stored(db, owner.id)
    replies = await chat.press(payload)
    assert stored(db, owner.id) == before
    assert events(db, "profile.updated") == []
    assert "profile:show" in button_payloads(replies) or "profile:lang:th" in button_payloads(
        replies
    )
