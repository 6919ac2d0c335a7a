"""/link with an SMS code, and registration for customers without a User ID: the number
(shared or typed), the code (6 digits, 5 minutes, 5 tries, once, this chat only), rate
limits per number and per chat, no enumeration of numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import contact
from fakes import FakeDatabase, FrozenClock
from fakes_linking import FakeHasher, FakeKeyedHash, FakeSms
from harness import Chat, ends_with_menu, joined, texts
from link_support import (
    NAME,
    PHONE,
    add_account,
    all_payloads,
    link_buttons,
    to_code_step,
    to_phone_step,
    token_of,
)

from core.chat import DeleteUserMessage, TextReply
from core.domain import ConsentPurpose
from core.i18n import Translator
from core.services.conversation import ConversationService, ConversationSettings
from core.services.linking import LinkingService, token_hash

WELCOME = "Hello {name}, welcome back!"


def sent_text(t: Translator, masked: str = "08x-xxx-5678") -> str:
    return t._(
        "If {phone} is the number we have on file, I've sent a 6-digit code to it by "
        "SMS. Please type the code here. It is valid for 5 minutes."
    ).format(phone=masked)


async def test_phone_question_offers_the_share_my_number_button(chat: Chat, t: Translator) -> None:
    replies = await to_phone_step(chat)
    (question,) = replies
    assert isinstance(question, TextReply)
    assert question.request_contact == t._("Share my number")


@pytest.mark.parametrize("typed", ["0812345678", "081-234-5678", "+66 81 234 5678", "๐๘๑๒๓๔๕๖๗๘"])
async def test_a_typed_number_gets_a_code_and_the_code_links(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator, typed: str
) -> None:
    account = add_account(db)
    replies = await to_code_step(chat, typed)
    assert texts(replies) == [sent_text(t)]
    (message,) = sms.sent
    assert message.phone == PHONE and len(message.code) == 6
    assert message.code not in joined(replies)  # the code goes by SMS only

    linked = await chat.say(message.code)

    assert t._(WELCOME).format(name=NAME) in joined(linked) and ends_with_menu(linked)
    link = db.state.links[(chat.channel, chat.chat_id)]
    assert account.user is not None and link.eservice_user_id == account.user.id
    assert db.state.consent[-1].purpose is ConsentPurpose.PRIVACY_NOTICE


async def test_the_sms_speaks_the_chat_language_and_names_the_operator(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    await to_code_step(chat)
    text = sms.sent[0].text
    assert "ExampleTel" in text
    assert ("รหัส" in text) == (t.lang == "th")


async def test_a_shared_own_contact_counts(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    await to_phone_step(chat)
    replies = await chat.send(contact("+66812345678", is_own=True))
    assert texts(replies) == [sent_text(t)] and len(sms.sent) == 1


async def test_a_contact_shared_by_someone_else_is_refused_and_nothing_is_sent(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    await to_phone_step(chat)
    replies = await chat.send(contact(PHONE, is_own=False))
    assert t._("That contact card is someone else's. I can only use your own number.") in joined(
        replies
    )
    assert sms.sent == [] and chat.state.step == "phone"


async def test_a_number_not_on_file_gets_the_same_answer_but_no_sms_and_no_code_works(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    replies = await to_code_step(chat, "0899999999")
    assert texts(replies) == [sent_text(t, "08x-xxx-9999")]
    assert sms.sent == []
    tries = t.ngettext(
        "That code is not correct. You can try {count} more time.",
        "That code is not correct. You can try {count} more times.",
        4,
    ).format(count=4)
    assert texts(await chat.say("123456")) == [tries]
    assert not db.state.links


async def test_a_number_two_customers_share_sends_no_code_and_links_nobody(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    add_account(db, name="สมศรี ใจดี", user_id="somsri01")  # the same contact number
    replies = await to_code_step(chat)
    assert texts(replies) == [sent_text(t)]  # the chat cannot tell a shared number apart
    (message,) = sms.sent
    assert message.phone == PHONE
    assert not any(ch.isdigit() for ch in message.text)  # no code to type
    assert "ExampleTel" in message.text and ("รหัสผ่าน" in message.text) == (t.lang == "th")
    for guess in ("000000", "123456"):
        await chat.say(guess)
    assert not db.state.links


@pytest.mark.parametrize("typed", ["12345", "abcdef", "1234567", "12 34 5x"])
async def test_a_malformed_code_is_asked_again_without_using_a_try(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator, typed: str
) -> None:
    add_account(db)
    await to_code_step(chat)
    assert texts(await chat.say(typed)) == [t._("The code has 6 digits. Please type it again.")]
    assert db.state.linking.otps[-1].attempts == 0


async def test_a_code_typed_with_spaces_or_thai_digits_works(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    await to_code_step(chat)
    code = sms.last_code()
    thai = "".join("๐๑๒๓๔๕๖๗๘๙"[int(d)] for d in code)
    replies = await chat.say(f"{thai[:3]} {thai[3:]}")
    assert t._(WELCOME).format(name=NAME) in joined(replies)


async def test_a_wrong_code_says_how_many_tries_are_left(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    await to_code_step(chat)
    wrong = "000000" if sms.last_code() != "000000" else "111111"
    replies = await chat.say(wrong)
    assert texts(replies) == [
        t.ngettext(
            "That code is not correct. You can try {count} more time.",
            "That code is not correct. You can try {count} more times.",
            4,
        ).format(count=4)
    ]


async def test_after_five_wrong_tries_the_sixth_is_refused_even_with_the_right_code(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    await to_code_step(chat)
    right = sms.last_code()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(4):
        await chat.say(wrong)
    fifth = await chat.say(wrong)
    assert t._("That code is not correct, and it can't be used any more.") in joined(fifth)
    assert "link:otp" in all_payloads(fifth)

    sixth = await chat.say(right)
    assert t._(WELCOME).format(name=NAME) not in joined(sixth)
    assert not db.state.links


async def test_an_expired_code_is_refused(
    chat: Chat, db: FakeDatabase, sms: FakeSms, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    await to_code_step(chat)
    clock.advance(timedelta(minutes=5))
    replies = await chat.say(sms.last_code())
    assert t._("That code has expired.") in joined(replies)
    assert not db.state.links


async def test_a_code_works_once(
    chat: Chat, db: FakeDatabase, sms: FakeSms, linking: LinkingService, clock: FrozenClock
) -> None:
    add_account(db)
    await to_code_step(chat)
    code = sms.last_code()
    await chat.say(code)
    async with db.unit_of_work() as uow:
        again = await linking.verify_otp(
            uow, channel=chat.channel, chat_id=chat.chat_id, code=code, now=clock.now()
        )
    assert type(again).__name__ == "OtpMissing"


async def test_a_code_is_bound_to_the_chat_that_asked_for_it(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator, lang: str
) -> None:
    add_account(db)
    await to_code_step(chat)
    code_of_a = sms.last_code()
    other = Chat(chat.service, db, chat.clock, chat_id="chat-b")
    other.seed(language=lang)
    await to_code_step(other, "0899999999")  # chat B waits for a code of its own
    replies = await other.say(code_of_a)
    assert not db.state.links
    assert texts(replies) == [
        t.ngettext(
            "That code is not correct. You can try {count} more time.",
            "That code is not correct. You can try {count} more times.",
            4,
        ).format(count=4)
    ]


async def test_a_new_code_replaces_the_old_one(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    await to_code_step(chat)
    first = sms.last_code()
    await chat.press("link:otp")
    await chat.say(PHONE)
    second = sms.last_code()
    if first != second:
        assert t._(WELCOME).format(name=NAME) not in joined(await chat.say(first))
    assert t._(WELCOME).format(name=NAME) in joined(await chat.say(second))


async def test_codes_to_one_number_are_limited_to_three_in_fifteen_minutes(
    new_chat: Chat, db: FakeDatabase, sms: FakeSms, clock: FrozenClock, t: Translator, lang: str
) -> None:
    add_account(db)
    for n in range(3):
        asker = Chat(new_chat.service, db, clock, chat_id=f"asker-{n}")
        asker.seed(language=lang)
        assert texts(await to_code_step(asker)) == [sent_text(t)]
    fourth = Chat(new_chat.service, db, clock, chat_id="asker-4")
    fourth.seed(language=lang)
    replies = await to_code_step(fourth)
    expected = t._(
        "You've asked for several codes in a short time. Please wait until {time} "
        "before asking again, or choose another way."
    ).format(time=t.datetime(clock.now() + timedelta(minutes=15)))
    assert expected in joined(replies) and len(sms.sent) == 3
    assert "link:web" in all_payloads(replies)

    clock.advance(timedelta(minutes=15))
    assert texts(await to_code_step(fourth)) == [sent_text(t)]


async def test_codes_asked_by_one_chat_are_limited_to_five_an_hour(
    chat: Chat, db: FakeDatabase, sms: FakeSms, clock: FrozenClock, t: Translator
) -> None:
    for n in range(5):
        await to_code_step(chat, f"08{n}0000000")
    replies = await to_code_step(chat, "0860000000")
    assert t.datetime(clock.now() + timedelta(hours=1)) in joined(replies)


async def test_a_gateway_failure_says_try_again_and_counts_nothing(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db)
    sms.fail_next = True
    replies = await to_code_step(chat)
    assert t._("Sorry, I couldn't send the SMS just now. Please try again shortly.") in joined(
        replies
    )
    assert db.state.linking.otps == [] and db.state.linking.throttles == {}


@pytest.mark.parametrize("typed", ["hello", "12345", "+1 415 555 0100", "'; DROP TABLE x;--"])
async def test_something_that_is_no_thai_number_is_asked_again(
    chat: Chat, sms: FakeSms, t: Translator, typed: str
) -> None:
    await to_phone_step(chat)
    replies = await chat.say(typed)
    assert t._("That doesn't look like a Thai mobile number.") in joined(replies)
    assert sms.sent == [] and chat.state.step == "phone"


async def test_without_an_sms_gateway_the_sms_ways_are_not_offered(
    db: FakeDatabase,
    clock: FrozenClock,
    settings: ConversationSettings,
    hasher: FakeHasher,
    t: Translator,
) -> None:
    no_sms = LinkingService(
        hasher=hasher,
        keyed_hash=FakeKeyedHash(),
        sms=None,
        public_url="https://x",
        operator_name="X",
    )
    service = ConversationService(
        db.unit_of_work, clock, settings, services={LinkingService: no_sms}
    )
    chat = Chat(service, db, clock)
    chat.seed(language=t.lang)
    methods = await chat.press("link:accept")
    assert "link:otp" not in all_payloads(methods) and "link:register" not in all_payloads(methods)
    refused = await chat.press("link:otp")
    assert t._("Sorry, SMS codes aren't available right now.") in joined(refused)


# --- registration ------------------------------------------------------------------------------


async def register_to_password(chat: Chat, sms: FakeSms, user_id: str = "somying.j") -> None:
    await to_code_step(chat, method="register")
    await chat.say(sms.last_code())
    await chat.say(user_id)


async def test_a_customer_without_user_id_registers_and_is_linked(
    chat: Chat, db: FakeDatabase, sms: FakeSms, hasher: FakeHasher, t: Translator
) -> None:
    account = add_account(db, user_id=None)
    await to_code_step(chat, method="register")
    asked = await chat.say(sms.last_code())
    assert t._("Your number is confirmed, but you don't have an e-service User ID yet.") in joined(
        asked
    )
    secret = await chat.say("Somying.J")
    assert isinstance(secret[0], TextReply) and secret[0].secret

    replies = await chat.say("ถั่วเขียว-correct-horse")

    assert isinstance(replies[0], DeleteUserMessage)
    assert t._("Your e-service User ID {user_id} is ready, and this chat is linked to it.").format(
        user_id="Somying.J"
    ) in joined(replies)
    (user,) = db.state.users.values()
    assert (user.user_id, user.customer_id) == ("Somying.J", account.customer.id)
    assert user.password_hash == FakeHasher.hash_of("ถั่วเขียว-correct-horse")
    assert db.state.links[(chat.channel, chat.chat_id)].eservice_user_id == user.id
    assert db.state.consent[-1].purpose is ConsentPurpose.PRIVACY_NOTICE


async def test_the_sms_way_leads_to_registration_when_there_is_no_user_id(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db, user_id=None)
    await to_code_step(chat)
    replies = await chat.say(sms.last_code())
    assert chat.state.step == "new_user_id"
    assert "3" in joined(replies) and "64" in joined(replies)


@pytest.mark.parametrize("bad", ["ab", "มีภาษาไทย", "has space", "x" * 65, "<script>"])
async def test_a_user_id_of_the_wrong_shape_is_refused(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator, bad: str
) -> None:
    add_account(db, user_id=None)
    await to_code_step(chat, method="register")
    await chat.say(sms.last_code())
    replies = await chat.say(bad)
    assert t._("That User ID can't be used.") in joined(replies)
    assert chat.state.step == "new_user_id"


async def test_a_taken_user_id_is_refused(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    add_account(db, user_id="taken.one", phone="0899999999", account_no="8000000001")
    add_account(db, user_id=None)
    await to_code_step(chat, method="register")
    await chat.say(sms.last_code())
    replies = await chat.say("taken.one")
    assert texts(replies) == [t._("That User ID is taken. Please choose another.")]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "That password is too short: it needs at least {count} characters."),
        ("12345678", "That password is too common and easy to guess. Please choose another."),
        ("Password123", "That password is too common and easy to guess. Please choose another."),
        ("aaaaaaaaaaaa", "That password is too common and easy to guess. Please choose another."),
        ("my-somying.j-pw", "That password contains your User ID. Please choose another."),
        ("x" * 129, "That password is too long. Please choose a shorter one."),
    ],
)
async def test_a_weak_password_is_refused_and_deleted(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator, password: str, message: str
) -> None:
    add_account(db, user_id=None)
    await register_to_password(chat, sms)
    replies = await chat.say(password)
    assert isinstance(replies[0], DeleteUserMessage)
    assert t._(message).format(count=8) in joined(replies)
    assert not db.state.users and chat.state.step == "new_password"


async def test_registering_when_a_user_id_exists_links_to_it(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator
) -> None:
    account = add_account(db)
    await to_code_step(chat, method="register")
    replies = await chat.say(sms.last_code())
    assert t._("You already have an e-service User ID, so I've linked this chat to it.") in joined(
        replies
    )
    assert account.user is not None
    assert db.state.links[(chat.channel, chat.chat_id)].eservice_user_id == account.user.id


async def test_on_line_registration_continues_on_a_one_time_page(
    chat: Chat, db: FakeDatabase, sms: FakeSms, t: Translator, lang: str
) -> None:
    account = add_account(db, user_id=None)
    chat.channel = "line"
    chat.seed(language=lang)
    await to_code_step(chat, method="register")
    replies = await chat.say(sms.last_code())
    (button,) = link_buttons(replies)
    stored = db.state.linking.tokens[token_hash(token_of(button.url))]
    assert (stored.purpose, stored.customer_id) == ("register", account.customer.id)
    assert (stored.channel, stored.chat_id) == ("line", chat.chat_id)
    assert chat.state.flow is None
