"""/lang and /cancel: switching language and back, remembered; leaving a dialogue."""

from __future__ import annotations

import pytest
from factories import contact
from harness import Chat, assert_in_language, ends_with_menu, joined, payloads, texts

from core.flows.bill import please_link_first
from core.flows.lang import LANGUAGE_NAMES
from core.i18n import Translator, translator

OTHER = {"th": "en", "en": "th"}


async def test_lang_offers_both_languages_and_waits_for_a_choice(chat: Chat, t: Translator) -> None:
    replies = await chat.command("lang")
    assert texts(replies) == [t._("Which language would you like me to use?")]
    assert payloads(replies[0]) == ["lang:th", "lang:en"]
    assert chat.state.flow == "lang" and chat.state.deadline is not None


async def test_choosing_by_button_switches_and_is_remembered(chat: Chat, lang: str) -> None:
    other = OTHER[lang]
    await chat.command("lang")
    replies = await chat.press(f"lang:{other}")
    done = translator(other)._("Done. From now on I'll reply in {language}.")
    assert texts(replies) == [done.format(language=LANGUAGE_NAMES[other])]
    assert chat.state.language == other and chat.state.flow is None
    assert_in_language(await chat.command("menu"), other)
    assert_in_language(await chat.say("qwerty"), other)


async def test_switch_and_back(chat: Chat, lang: str) -> None:
    await chat.command("lang", OTHER[lang])
    assert chat.state.language == OTHER[lang]
    replies = await chat.command("lang", lang)
    assert chat.state.language == lang
    assert_in_language(replies, lang)
    assert ends_with_menu(replies)


@pytest.mark.parametrize(
    ("typed", "chosen"),
    [("English", "en"), ("EN", "en"), ("อังกฤษ", "en"), ("ไทย", "th"), ("thai", "th")],
)
async def test_a_typed_answer_to_which_language(chat: Chat, typed: str, chosen: str) -> None:
    await chat.command("lang")
    replies = await chat.say(typed)
    assert chat.state.language == chosen
    assert_in_language(replies, chosen)


@pytest.mark.parametrize(("said", "chosen"), [("ภาษาไทย", "th"), ("english please", "en")])
async def test_language_by_words_at_any_time(chat: Chat, said: str, chosen: str) -> None:
    replies = await chat.say(said)
    assert chat.state.language == chosen
    assert_in_language(replies, chosen)


async def test_an_unknown_language_is_explained_and_the_choice_offered(
    chat: Chat, t: Translator
) -> None:
    replies = await chat.command("lang", "fr")
    assert t._("Sorry, I can reply in Thai or English only.") in joined(replies)
    assert payloads(replies[0]) == ["lang:th", "lang:en"]
    assert chat.state.language == t.lang


async def test_other_text_while_choosing_leaves_the_choice(chat: Chat, t: Translator) -> None:
    await chat.command("lang")
    replies = await chat.say("ขอดูบิล" if t.lang == "th" else "my bill")
    assert please_link_first(t).text in joined(replies)  # the bill flow took it
    assert chat.state.flow is None and chat.state.language == t.lang


async def test_a_command_while_choosing_leaves_the_choice(chat: Chat, t: Translator) -> None:
    await chat.command("lang")
    replies = await chat.command("menu")
    assert ends_with_menu(replies) and chat.state.flow is None


async def test_media_while_choosing_leaves_the_choice(chat: Chat) -> None:
    await chat.command("lang")
    replies = await chat.send(contact())
    assert ends_with_menu(replies) and chat.state.flow is None


async def test_cancel_leaves_the_dialogue(chat: Chat, t: Translator) -> None:
    await chat.command("lang")
    replies = await chat.command("cancel")
    assert texts(replies) == [t._("OK, I've cancelled that.")]
    assert ends_with_menu(replies)
    state = chat.state
    assert (state.flow, state.step, state.data, state.deadline) == (None, None, {}, None)


@pytest.mark.parametrize("how", ["button", "word"])
async def test_cancel_by_button_or_word(chat: Chat, t: Translator, how: str) -> None:
    await chat.command("lang")
    if how == "button":
        replies = await chat.press("cancel")
    else:
        replies = await chat.say("ยกเลิก" if t.lang == "th" else "cancel")
    assert texts(replies) == [t._("OK, I've cancelled that.")]
    assert chat.state.flow is None


async def test_cancel_with_nothing_to_cancel(chat: Chat, t: Translator) -> None:
    replies = await chat.command("cancel")
    assert texts(replies) == [t._("There's nothing to cancel right now.")]
    assert ends_with_menu(replies)
