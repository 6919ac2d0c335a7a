"""Features not built yet, unknown input and media: an honest reply and the menu, always."""

from __future__ import annotations

import pytest
from factories import CHANNELS, CONTACT, contact, sticker
from harness import Chat, assert_in_language, ends_with_menu, joined, texts

from core.chat import TextReply
from core.flows.registry import ROUTES
from core.flows.router import Router
from core.flows.unavailable import coming_soon, feature_name
from core.i18n import Translator
from core.services.conversation import ConversationService, ConversationSettings

# Every feature is built now; placeholders stay for the next one. These tests put the
# PDPA rows back as placeholders, as they were before they were built.
LATER = ["profile", "consent", "mydata", "forget"]


@pytest.fixture
def unbuilt(chat: Chat, settings: ConversationSettings) -> Chat:
    routes = [r for r in ROUTES if r.name not in (*LATER, "correction")]
    router = Router([*routes, *(coming_soon(name) for name in LATER)])
    chat.service = ConversationService(chat.db.unit_of_work, chat.clock, settings, router=router)
    return chat


@pytest.mark.parametrize("name", LATER)
async def test_features_not_built_yet_say_so(unbuilt: Chat, t: Translator, name: str) -> None:
    replies = await unbuilt.command(name)
    expected = t._("Sorry, this chat can't help with {feature} yet. We're working on it.")
    assert texts(replies)[0].startswith(expected.format(feature=feature_name(t, name)))
    assert "฿" not in joined(replies)  # no made-up bills
    assert ends_with_menu(replies)
    assert_in_language(replies, t.lang)


@pytest.mark.parametrize("name", ["profile", "mydata", "forget"])
async def test_rights_not_in_the_chat_yet_say_where_to_ask(
    unbuilt: Chat, t: Translator, name: str
) -> None:
    assert CONTACT in joined(await unbuilt.command(name))


@pytest.mark.parametrize("name", ["bill", "pay", "profile", "consent"])
async def test_menu_buttons_of_later_features_answer_the_same(chat: Chat, name: str) -> None:
    assert await chat.press(name) == await chat.command(name)


@pytest.mark.parametrize(
    "said",
    [
        "",
        "   ",
        "\n\t",
        "asdfghjkl",
        "🤔🤔🤔",
        "'; DROP TABLE bills;--",
        "<script>alert(1)</script>",
        "{operator} {0} %s %(name)s",
        "ก" * 5000,
        "x" * 100_000,
        "ขอดูบิลเดือนนี้หน่อยค่ะ",
        "อยากจ่ายเงิน",
        "เปลี่ยนที่อยู่",
        "ภาษา",
        "What do I owe?",
        "pay now",
        "\u200b",
        "\x00",
    ],
)
@pytest.mark.parametrize("channel", CHANNELS)
async def test_free_text_is_never_met_with_silence(
    chat: Chat, t: Translator, said: str, channel: str
) -> None:
    chat.channel = channel
    chat.seed(language=t.lang)
    replies = await chat.say(said)
    assert_in_language(replies, t.lang)
    last = replies[-1]
    assert isinstance(last, TextReply) and last.buttons
    assert chat.db.outbox_for(channel, chat.chat_id) == replies


async def test_text_the_bot_does_not_understand(chat: Chat, t: Translator) -> None:
    replies = await chat.say("qwerty")
    assert texts(replies) == [
        t._(
            'Sorry, I didn\'t catch that. Try a word such as "bill" or "pay", '
            "or choose from the menu below."
        )
    ]
    assert ends_with_menu(replies)


async def test_a_sticker_gets_a_friendly_reply(chat: Chat, t: Translator) -> None:
    replies = await chat.send(sticker())
    assert texts(replies) == [
        t._(
            "Thanks! I can only read text for now, so please type what you need "
            "or choose from the menu below."
        )
    ]
    assert ends_with_menu(replies)


async def test_a_shared_phone_number_is_not_kept(chat: Chat, t: Translator) -> None:
    replies = await chat.send(contact("0812345678"))
    assert "0812345678" not in repr(chat.db.state)
    kept = t._("Thanks, but I don't need a phone number right now, so I haven't kept it.")
    assert texts(replies) == [kept]
    assert ends_with_menu(replies)
    assert_in_language(replies, t.lang)


async def test_an_unknown_command_is_named_back(chat: Chat, t: Translator) -> None:
    replies = await chat.command("frobnicate")
    expected = t._("Sorry, I don't know the command /{command}. Type /help to see what I can do.")
    assert texts(replies) == [expected.format(command="frobnicate")]
    assert ends_with_menu(replies)


@pytest.mark.parametrize("payload", ["", ":", "nope", "nope:1", "x" * 500])
async def test_an_old_or_forged_button_is_refused_politely(
    chat: Chat, t: Translator, payload: str
) -> None:
    replies = await chat.press(payload)
    assert texts(replies) == [
        t._("That button is no longer active. Please choose again from the menu.")
    ]
