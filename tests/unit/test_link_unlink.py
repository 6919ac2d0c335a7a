"""/unlink and "my linked chats": see every chat linked to the account, unlink this one,
remove another."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from factories import chat_link
from fakes import FakeDatabase
from harness import Chat, ends_with_menu, joined
from link_support import NAME, add_account, all_payloads

from core.domain import Channel
from core.flows.unlink import chat_ref
from core.i18n import Translator


def link_chats(db: FakeDatabase, chat: Chat) -> tuple[object, object]:
    account = add_account(db)
    here = chat_link(account.customer, channel=chat.channel, chat_id=chat.chat_id)
    there = chat_link(
        account.customer,
        channel="telegram",
        chat_id="987654321",
        at=datetime(2026, 10, 1, tzinfo=UTC),
    )
    db.state.links[(chat.channel, chat.chat_id)] = here
    db.state.links[("telegram", "987654321")] = there
    return here, there


async def test_unlink_in_a_chat_that_is_not_linked_says_so(chat: Chat, t: Translator) -> None:
    replies = await chat.command("unlink")
    assert t._("This chat isn't linked to an account, so there's nothing to unlink.") in joined(
        replies
    )
    assert ends_with_menu(replies)


async def test_unlink_lists_every_linked_chat_with_this_one_marked(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    link_chats(db, chat)
    replies = await chat.command("unlink")
    text = joined(replies)
    assert t._("Chats linked to your account:") in text
    assert "Telegram …4321" in text and t._("(this chat)") in text
    assert t.date(datetime(2026, 10, 1).date()) in text
    assert "987654321" not in text  # a chat id is never shown whole
    payloads = all_payloads(replies)
    assert payloads[0] == "unlink:this"
    assert f"unlink:{chat_ref(db.state.links[('telegram', '987654321')])}" in payloads


@pytest.mark.parametrize("said", ["my linked chats", "ยกเลิกการเชื่อมบัญชี", "unlink"])
async def test_the_list_is_reached_in_words_too(
    chat: Chat, db: FakeDatabase, t: Translator, said: str
) -> None:
    link_chats(db, chat)
    assert "unlink:this" in all_payloads(await chat.say(said))


async def test_unlinking_this_chat_removes_the_link_and_the_greeting_by_name(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    link_chats(db, chat)
    replies = await chat.press("unlink:this")
    assert (chat.channel, chat.chat_id) not in db.state.links
    assert ("telegram", "987654321") in db.state.links
    assert ends_with_menu(replies)
    assert NAME not in joined(await chat.command("start"))
    (_, event, _) = db.state.published[-1]
    assert (event.type, event.data["reason"]) == ("account.unlinked", "customer")
    assert db.state.audit[-1].action == "chat.unlinked"


async def test_removing_another_chat_keeps_this_one(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    _, there = link_chats(db, chat)
    replies = await chat.press(f"unlink:{chat_ref(there)}")  # type: ignore[arg-type]
    assert ("telegram", "987654321") not in db.state.links
    assert (chat.channel, chat.chat_id) in db.state.links
    assert t._("Done. {chat} is no longer linked to your account.").format(
        chat="Telegram …4321"
    ) in joined(replies)


async def test_a_stale_remove_button_changes_nothing(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    link_chats(db, chat)
    replies = await chat.press("unlink:0123456789abcdef")
    assert t._("That chat is no longer linked.") in joined(replies)
    assert len(db.state.links) == 2


async def test_chats_of_another_customer_cannot_be_removed(chat: Chat, db: FakeDatabase) -> None:
    link_chats(db, chat)
    stranger = add_account(db, user_id="stranger", phone="0899999999", account_no="8000000009")
    theirs = chat_link(stranger.customer, channel="line", chat_id="U" + "f" * 32)
    db.state.links[("line", theirs.chat_id)] = theirs
    await chat.press(f"unlink:{chat_ref(theirs)}")
    assert ("line", theirs.chat_id) in db.state.links
    assert theirs.channel is Channel.LINE
