"""/forget: nothing happens without a confirmation in the dialogue; then every chat is
unlinked, the data erased, subscribers told, and one audit entry kept without personal
values."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import FakeDatabase, FrozenClock
from harness import Chat, joined
from profile_support import (
    ADDRESS,
    EMAIL,
    NAME,
    NATIONAL_ID,
    PHONE,
    assert_language,
    audit,
    button_payloads,
    events,
    link_customer,
    other_customer,
)

from core.i18n import Translator

LINE_CHAT = ("line", "U" + "2" * 32)


@pytest.mark.parametrize("how", ["command", "words"])
async def test_forget_asks_before_erasing_anything(
    chat: Chat, db: FakeDatabase, t: Translator, how: str
) -> None:
    owner = link_customer(db, chat)
    if how == "command":
        replies = await chat.command("forget")
    else:
        replies = await chat.say("ลบข้อมูล" if t.lang == "th" else "delete my data")
    assert button_payloads(replies) == ["forget:yes", "cancel"]
    assert t._("This cannot be undone. Are you sure?") in joined(replies)
    assert owner.id in db.state.customers
    assert (chat.state.flow, chat.state.step) == ("forget", "confirm")
    assert_language(replies, t.lang)


@pytest.mark.parametrize("answer", ["button", "typed"])
async def test_confirmed_forget_unlinks_every_chat_and_erases(
    chat: Chat, db: FakeDatabase, t: Translator, clock: FrozenClock, answer: str
) -> None:
    owner = link_customer(db, chat, other_chats=(LINE_CHAT,))
    stranger = other_customer(db)
    await chat.command("profile")  # a message copy with the masked details
    await chat.command("forget")
    if answer == "button":
        replies = await chat.press("forget:yes")
    else:
        replies = await chat.say("ยืนยัน" if t.lang == "th" else "confirm")
    expected = t.ngettext(
        "✅ Done. I have erased the data this chat service kept about you and unlinked "
        "your {n} chat.",
        "✅ Done. I have erased the data this chat service kept about you and unlinked "
        "your {n} chats.",
        2,
    ).format(n=2)
    assert expected in joined(replies)
    assert_language(replies, t.lang)
    state = db.state
    assert owner.id not in state.customers and stranger.id in state.customers
    assert [k for k, v in state.links.items() if v.customer_id == owner.id] == []
    assert all(s.customer_id != owner.id for s in state.service_accounts.values())
    assert all(u.customer_id != owner.id for u in state.users.values())
    assert all(r.customer_id != owner.id for r in state.consent)
    # the chat's earlier messages are gone; only the answer to /forget is queued after
    rows = [r for r in state.outbox if (r.channel, r.chat_id) == ("terminal", chat.chat_id)]
    assert len(rows) == len(replies)
    assert chat.state.flow is None  # the chat itself goes on, unlinked
    unlinked = events(db, "account.unlinked")
    assert sorted(e.data["channel"] for e in unlinked) == ["line", "terminal"]
    assert {e.data["reason"] for e in unlinked} == {"forget"}
    (entry,) = audit(db, "customer.erased")
    assert entry.subject == owner.id and entry.details["chats_unlinked"] == 2
    kept = repr(state.audit)
    for value in (NAME, ADDRESS, PHONE, EMAIL, NATIONAL_ID, owner.account_no, "ใจดี"):
        assert value not in kept
    after = await chat.command("profile")
    assert "link" in button_payloads(after)


async def test_a_confirmation_outside_the_dialogue_only_asks_again(
    chat: Chat, db: FakeDatabase, clock: FrozenClock
) -> None:
    owner = link_customer(db, chat)
    replies = await chat.press("forget:yes")  # never asked: a forged or stale button
    assert owner.id in db.state.customers
    assert button_payloads(replies) == ["forget:yes", "cancel"]
    clock.advance(timedelta(minutes=11))  # the question expires
    await chat.press("forget:yes")
    assert owner.id in db.state.customers
    await chat.press("forget:yes")  # asked again just now: this one counts
    assert owner.id not in db.state.customers


@pytest.mark.parametrize("answer", ["cancel", "no", "ไม่ลบ", "ยกเลิก"])
async def test_saying_no_keeps_everything(chat: Chat, db: FakeDatabase, answer: str) -> None:
    owner = link_customer(db, chat)
    await chat.command("forget")
    if answer == "cancel":
        await chat.press("cancel")
    else:
        await chat.say(answer)
    assert owner.id in db.state.customers and chat.state.flow is None
    await chat.press("forget:yes")  # the question is gone: asks again, erases nothing
    assert owner.id in db.state.customers


async def test_forget_in_an_unlinked_chat_says_nothing_is_kept_here(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    stranger = other_customer(db)
    replies = await chat.command("forget")
    assert "privacy@example.co.th" in joined(replies)
    assert stranger.id in db.state.customers
    assert_language(replies, t.lang)
