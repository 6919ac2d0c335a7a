"""/link with User ID and password typed in the chat: the privacy notice first, the link
and greeting, no user enumeration, the lockout with growing back-off, and LINE."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import CHANNELS, OPERATOR
from fakes import FakeDatabase, FrozenClock
from fakes_linking import FakeHasher
from harness import Chat, assert_in_language, ends_with_menu, joined, texts
from link_support import NAME, PASSWORD, USER_ID, add_account, all_payloads, to_password_step

from core.chat import DeleteUserMessage, TextReply
from core.domain import ConsentPurpose
from core.flows.context import PRIVACY_NOTICE_VERSION
from core.i18n import Translator


def paused_text(t: Translator, until: object) -> str:
    return t._(
        "For your safety, sign-in with a password is paused. Please try again after {time}."
    ).format(time=t.datetime(until))  # type: ignore[arg-type]


def wrong_text(t: Translator) -> str:
    return t._(
        "The User ID or password is not correct. Please type your password again, "
        "or choose another way below."
    )


@pytest.mark.parametrize("channel", CHANNELS)
async def test_link_starts_with_the_privacy_notice_to_accept(
    chat: Chat, t: Translator, channel: str
) -> None:
    chat.channel = channel
    chat.seed(language=t.lang)
    replies = await chat.command("link")
    assert PRIVACY_NOTICE_VERSION in joined(replies) and "/privacy" in joined(replies)
    assert all_payloads(replies)[:2] == ["link:accept", "privacy"]
    assert_in_language(replies, t.lang)


@pytest.mark.parametrize("channel", ["telegram", "terminal"])
async def test_linking_with_user_id_and_password_greets_by_name(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator, channel: str
) -> None:
    chat.channel = channel
    chat.seed(language=t.lang)
    name = NAME if t.lang == "th" else "Somying Jaidee"  # English replies hold no Thai
    account = add_account(db, name=name)
    await chat.command("link")
    methods = await chat.press("link:accept")
    assert "link:password" in all_payloads(methods)
    asked = await chat.press("link:password")
    assert texts(asked) == [t._("Please type your e-service User ID.")]
    secret_question = await chat.say(USER_ID)
    assert isinstance(secret_question[0], TextReply) and secret_question[0].secret

    replies = await chat.say(PASSWORD)

    assert isinstance(replies[0], DeleteUserMessage)  # the password goes at once
    assert t._("Hello {name}, welcome back!").format(name=name) in joined(replies)
    assert ends_with_menu(replies)
    assert_in_language(replies, t.lang)
    link = db.state.links[(channel, chat.chat_id)]
    assert account.user is not None
    assert (link.customer_id, link.eservice_user_id) == (account.customer.id, account.user.id)
    (consent,) = db.state.consent
    assert consent.purpose is ConsentPurpose.PRIVACY_NOTICE and consent.granted
    assert (consent.notice_version, consent.channel) == (PRIVACY_NOTICE_VERSION, channel)
    assert consent.recorded_at == clock.now()
    assert chat.state.flow is None and "user_id" not in chat.state.data
    (_, event, _) = db.state.published[-1]
    assert event.type == "account.linked" and event.data["channel"] == channel
    assert db.state.audit[-1].action == "chat.linked"
    # the greeting stays: /start now says the customer's name
    assert t._("Hello {name}, welcome back!").format(name=name) in joined(
        await chat.command("start")
    )


async def test_user_id_and_password_need_not_be_the_last_thing_said(
    chat: Chat, db: FakeDatabase
) -> None:
    add_account(db)
    await to_password_step(chat)
    replies = await chat.command("cancel")
    assert chat.state.flow is None and ends_with_menu(replies)


async def test_unknown_user_and_wrong_password_get_the_same_answer_after_the_same_work(
    new_chat: Chat, db: FakeDatabase, hasher: FakeHasher, t: Translator, lang: str
) -> None:
    add_account(db)
    new_chat.seed(language=lang)
    await to_password_step(new_chat, USER_ID)
    wrong_password = await new_chat.say("not-the-password")
    assert (hasher.verifies, hasher.dummy_verifies) == (1, 0)

    other = Chat(new_chat.service, db, new_chat.clock, chat_id="chat-2")
    other.seed(language=lang)
    await to_password_step(other, "nobody-has-this-id")
    unknown_user = await other.say("not-the-password")
    assert (hasher.verifies, hasher.dummy_verifies) == (1, 1)

    assert texts(wrong_password) == texts(unknown_user) == [wrong_text(t)]
    assert not db.state.links


async def test_five_failures_pause_sign_in_until_a_bangkok_time_and_the_sixth_is_not_checked(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, hasher: FakeHasher, t: Translator
) -> None:
    add_account(db)
    await to_password_step(chat)
    for _ in range(4):
        assert texts(await chat.say("wrong-password")) == [wrong_text(t)]

    fifth = await chat.say("wrong-password")
    until = clock.now() + timedelta(minutes=15)
    assert paused_text(t, until) in joined(fifth)
    assert isinstance(fifth[0], DeleteUserMessage)

    verified = hasher.verifies
    sixth = await chat.say(PASSWORD)  # even the right password waits
    assert isinstance(sixth[0], DeleteUserMessage)
    assert paused_text(t, until) in joined(sixth)
    assert hasher.verifies == verified and not db.state.links
    if t.lang == "th":
        assert "น." in joined(sixth) and "2569" in joined(sixth)  # Buddhist era, Bangkok clock


async def test_the_pause_ends_after_its_time_and_then_the_right_password_works(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    await to_password_step(chat)
    for _ in range(5):
        await chat.say("wrong-password")
    clock.advance(timedelta(minutes=14, seconds=59))
    await chat.press("link:accept")
    still = await chat.press("link:password")
    assert paused_text(t, clock.now() + timedelta(seconds=1)) in joined(still)

    clock.advance(timedelta(seconds=1))
    await to_password_step(chat)
    replies = await chat.say(PASSWORD)
    assert t._("Hello {name}, welcome back!").format(name=NAME) in joined(replies)


async def test_a_password_typed_after_the_question_expired_is_still_deleted(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    await to_password_step(chat)
    clock.advance(timedelta(minutes=11))
    replies = await chat.say(PASSWORD)
    assert isinstance(replies[0], DeleteUserMessage)
    assert not db.state.links and ends_with_menu(replies)


async def test_each_new_pause_is_longer(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    pauses = []
    for _ in range(3):
        await to_password_step(chat)
        for _ in range(5):
            replies = await chat.say("wrong-password")
        pauses.append(replies)
        clock.advance(timedelta(hours=2))
    start = clock.now() - timedelta(hours=6)
    expected = [
        start + timedelta(minutes=15),
        start + timedelta(hours=2, minutes=30),
        start + timedelta(hours=4, minutes=60),
    ]
    for replies, until in zip(pauses, expected, strict=True):
        assert paused_text(t, until) in joined(replies)


async def test_a_success_wipes_the_failures(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    await to_password_step(chat)
    for _ in range(4):
        await chat.say("wrong-password")
    await chat.say(PASSWORD)
    await chat.command("unlink", "this")
    await to_password_step(chat)
    for _ in range(4):
        assert texts(await chat.say("wrong-password")) == [wrong_text(t)]


async def test_failures_older_than_fifteen_minutes_do_not_count(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    await to_password_step(chat)
    for _ in range(4):
        await chat.say("wrong-password")
    clock.advance(timedelta(minutes=15))
    await to_password_step(chat)
    for _ in range(4):
        assert texts(await chat.say("wrong-password")) == [wrong_text(t)]


async def test_failures_count_per_user_id_across_chats(
    service: object, db: FakeDatabase, clock: FrozenClock, t: Translator, lang: str
) -> None:
    add_account(db)
    for n in range(5):
        attacker = Chat(service, db, clock, chat_id=f"attacker-{n}")  # type: ignore[arg-type]
        attacker.seed(language=lang)
        await to_password_step(attacker)
        await attacker.say("guess")
    owner = Chat(service, db, clock, chat_id="owner")  # type: ignore[arg-type]
    owner.seed(language=lang)
    await to_password_step(owner)
    assert paused_text(t, clock.now() + timedelta(minutes=15)) in joined(await owner.say(PASSWORD))


async def test_failures_count_per_chat_across_user_ids(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    for n in range(4):
        await to_password_step(chat, f"guess-{n}")
        assert texts(await chat.say("guess")) == [wrong_text(t)]
    await to_password_step(chat, USER_ID)
    fifth = await chat.say("guess")
    assert paused_text(t, clock.now() + timedelta(minutes=15)) in joined(fifth)
    assert paused_text(t, clock.now() + timedelta(minutes=15)) in joined(
        await chat.press("link:password")
    )


async def test_choosing_password_while_paused_says_so_at_once(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    add_account(db)
    await to_password_step(chat)
    for _ in range(5):
        await chat.say("wrong-password")
    replies = await chat.press("link:password")
    assert paused_text(t, clock.now() + timedelta(minutes=15)) in joined(replies)
    assert "link:otp" in all_payloads(replies)


async def test_a_password_that_is_a_cancel_word_is_still_deleted(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    add_account(db, password="ยกเลิก-cancel-123")
    await to_password_step(chat)
    replies = await chat.say("ยกเลิก-cancel-123")
    assert isinstance(replies[0], DeleteUserMessage)
    assert t._("Hello {name}, welcome back!").format(name=NAME) in joined(replies)


async def test_line_is_never_asked_for_a_password_in_chat(chat: Chat, t: Translator) -> None:
    chat.channel = "line"
    methods = await chat.press("link:accept")
    assert "link:password" not in all_payloads(methods)
    assert "link:web" in all_payloads(methods)
    assert "LINE" in joined(methods)
    refused = await chat.press("link:password")
    assert chat.state.step == "method" and "link:web" in all_payloads(refused)


async def test_a_way_chosen_before_the_notice_asks_for_it_first_then_continues(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    add_account(db)
    first = await chat.press("link:password")
    assert all_payloads(first)[0] == "link:accept"
    then = await chat.press("link:accept")
    assert texts(then) == [t._("Please type your e-service User ID.")]


async def test_deep_link_start_link_password_greets_then_asks_for_the_notice(
    chat: Chat, t: Translator
) -> None:
    replies = await chat.command("start", "link-password")
    assert OPERATOR in texts(replies)[0]
    assert "link:accept" in all_payloads(replies)


async def test_an_empty_or_huge_user_id_is_asked_again(chat: Chat, t: Translator) -> None:
    await chat.press("link:accept")
    await chat.press("link:password")
    again = t._("That doesn't look like a User ID. Please type it again.")
    assert texts(await chat.say("x" * 200)) == [again]
    assert texts(await chat.say("   ")) != []
    assert chat.state.step == "user_id"


async def test_a_linked_chat_asking_to_link_sees_its_linked_chats(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    add_account(db)
    await to_password_step(chat)
    await chat.say(PASSWORD)
    replies = await chat.command("link")
    assert t._("This chat is already linked to your account.") in joined(replies)
    assert "unlink:this" in all_payloads(replies)
