"""/start, /menu, /help and /privacy, in Thai and English, on every channel."""

from __future__ import annotations

import pytest
from factories import CHANNELS, CONTACT, OPERATOR, chat_link, customer
from fakes import FakeDatabase
from harness import Chat, assert_in_language, ends_with_menu, joined, payloads, texts

from core.chat import TextReply
from core.flows.bill import please_link_first
from core.flows.context import PRIVACY_NOTICE_VERSION
from core.flows.menu import prompt
from core.flows.privacy import full_notice, short_notice
from core.flows.registry import default_router
from core.i18n import Translator, translator
from core.services.conversation import ConversationService, ConversationSettings


@pytest.mark.parametrize("channel", CHANNELS)
async def test_first_contact_sees_the_privacy_notice_then_the_menu(
    new_chat: Chat, settings: ConversationSettings, channel: str
) -> None:
    new_chat.channel = channel
    replies = await new_chat.command("start")
    t = translator("th")
    assert replies[0] == TextReply(short_notice(t, settings))
    assert OPERATOR in texts(replies)[0] and "/privacy" in texts(replies)[0]
    assert ends_with_menu(replies)
    assert_in_language(replies, "th")
    assert new_chat.state.seen_privacy_notice


async def test_the_short_notice_is_shown_once(new_chat: Chat) -> None:
    await new_chat.command("start")
    replies = await new_chat.command("start")
    assert len(replies) == 1 and ends_with_menu(replies)


async def test_any_first_message_gets_the_notice_first(
    new_chat: Chat, settings: ConversationSettings
) -> None:
    replies = await new_chat.say("ขอดูบิลหน่อย")
    assert texts(replies)[0] == short_notice(translator("th"), settings)
    assert len(replies) == 2 and ends_with_menu(replies)
    assert new_chat.state.seen_privacy_notice


async def test_privacy_as_first_message_shows_the_full_notice_only(
    new_chat: Chat, settings: ConversationSettings
) -> None:
    replies = await new_chat.command("privacy")
    assert texts(replies) == [full_notice(translator("th"), settings)]
    assert new_chat.state.seen_privacy_notice


async def test_start_greets_a_stranger_with_the_operator_name(chat: Chat, t: Translator) -> None:
    replies = await chat.command("start")
    assert len(replies) == 1
    assert OPERATOR in texts(replies)[0] and prompt(t) in texts(replies)[0]
    assert ends_with_menu(replies)
    assert_in_language(replies, t.lang)


async def test_start_greets_a_linked_customer_by_name(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    somying = customer(name="สมหญิง ใจดี")
    db.state.customers[somying.id] = somying
    db.state.links[(chat.channel, chat.chat_id)] = chat_link(somying, chat_id=chat.chat_id)
    replies = await chat.command("start")
    assert t._("Hello {name}, welcome back!").format(name="สมหญิง ใจดี") in joined(replies)


async def test_a_greeting_in_words_is_answered_like_start(chat: Chat, t: Translator) -> None:
    replies = await chat.say("สวัสดีค่ะ" if t.lang == "th" else "hello!")
    assert OPERATOR in joined(replies) and ends_with_menu(replies)


async def test_deep_link_to_english_switches_before_greeting(chat: Chat) -> None:
    replies = await chat.command("start", "lang-en")
    assert chat.state.language == "en"
    assert_in_language(replies, "en")
    assert ends_with_menu(replies)


async def test_deep_link_runs_the_named_command_after_the_greeting(
    chat: Chat, t: Translator
) -> None:
    replies = await chat.command("start", "bill")
    assert OPERATOR in texts(replies)[0]
    assert texts(replies)[1] == please_link_first(t).text  # the bill flow, for a stranger
    assert ends_with_menu(replies)


@pytest.mark.parametrize("payload", ["no-such-thing", "start", "start-start", "!!", "a" * 200])
async def test_unknown_deep_links_just_greet(chat: Chat, payload: str) -> None:
    replies = await chat.command("start", payload)
    assert len(replies) == 1 and ends_with_menu(replies)


async def test_menu_buttons_are_translated_and_reach_a_flow(chat: Chat, t: Translator) -> None:
    replies = await chat.command("menu")
    assert texts(replies) == [prompt(t)]
    router = default_router()
    menu = replies[0]
    assert payloads(menu) == ["bill", "pay", "profile", "consent", "lang", "help", "privacy"]
    assert all(router.route(p) is not None for p in payloads(menu))
    assert isinstance(menu, TextReply)
    labels = [b.label for row in menu.buttons for b in row]
    assert t._("🔒 Privacy") in labels and all(len(label) <= 20 for label in labels)


@pytest.mark.parametrize("how", ["command", "button", "words"])
async def test_help_lists_the_commands(chat: Chat, t: Translator, how: str) -> None:
    if how == "command":
        replies = await chat.command("help")
    elif how == "button":
        replies = await chat.press("help")
    else:
        replies = await chat.say("ช่วยด้วย" if t.lang == "th" else "help")
    body = joined(replies)
    for command in ("/bill", "/pay", "/profile", "/lang", "/privacy", "/cancel", "/mydata"):
        assert command in body
    soon = t._("(coming soon)")
    router = default_router()
    for line in (line for line in body.splitlines() if line.startswith("/")):
        command = line.split()[0][1:]
        assert (soon in line) == (not router.is_available(command)), line
    assert ends_with_menu(replies)


async def test_privacy_notice_covers_the_promises(chat: Chat, t: Translator) -> None:
    replies = await chat.command("privacy")
    body = joined(replies)
    for needle in (OPERATOR, CONTACT, PRIVACY_NOTICE_VERSION, "TLS", "PDPA"):
        assert needle in body
    for command in ("/mydata", "/forget", "/consent", "/profile"):
        assert command in body
    assert_in_language(replies, t.lang)
    assert ends_with_menu(replies)


async def test_privacy_notice_without_a_contact_names_the_operator(
    db: FakeDatabase, chat: Chat, t: Translator
) -> None:
    chat.service = ConversationService(
        db.unit_of_work, chat.clock, ConversationSettings(operator_name="OtherTel")
    )
    body = joined(await chat.press("privacy"))
    assert t._("{operator}'s customer service").format(operator="OtherTel") in body
