"""LINE's account-link flow in the chat: the ``accountLink`` event with our nonce links
the LINE chat it was issued for, once, within 10 minutes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import FakeDatabase, FrozenClock
from harness import Chat, ends_with_menu, joined
from link_support import NAME, add_account, link_buttons, token_of

from core.chat import AccountLinkResult
from core.domain import ConsentPurpose
from core.i18n import Translator
from core.services.linking import LinkingService, PageLinkProblem

LINE_USER = "U" + "0123456789abcdef" * 2


@pytest.fixture
def line_chat(chat: Chat, lang: str) -> Chat:
    chat.channel, chat.chat_id = "line", LINE_USER
    chat.seed(language=lang)
    return chat


async def nonce_for(
    chat: Chat, db: FakeDatabase, linking: LinkingService, clock: FrozenClock
) -> str:
    """What the page does after a right password on a LINE chat's link."""
    account = add_account(db)
    await chat.press("link:accept")
    (button,) = link_buttons(await chat.press("link:web"))
    async with db.unit_of_work() as uow:
        found = await linking.open_page_link(uow, token_of(button.url), clock.now())
        assert not isinstance(found, PageLinkProblem) and account.user is not None
        nonce = await linking.start_account_link(
            uow, link=found, user=account.user, now=clock.now()
        )
        await uow.commit()
    return nonce


async def test_the_account_link_event_links_the_chat_and_greets_by_name(
    line_chat: Chat, db: FakeDatabase, linking: LinkingService, clock: FrozenClock, t: Translator
) -> None:
    nonce = await nonce_for(line_chat, db, linking, clock)
    replies = await line_chat.send(AccountLinkResult(nonce=nonce, ok=True))
    assert t._("Hello {name}, welcome back!").format(name=NAME) in joined(replies)
    assert ("line", LINE_USER) in db.state.links
    consent = db.state.consent[-1]
    assert (consent.purpose, consent.channel) == (ConsentPurpose.PRIVACY_NOTICE, "line")


async def test_declined_in_line_links_nothing(
    line_chat: Chat, db: FakeDatabase, linking: LinkingService, clock: FrozenClock, t: Translator
) -> None:
    nonce = await nonce_for(line_chat, db, linking, clock)
    replies = await line_chat.send(AccountLinkResult(nonce=nonce, ok=False))
    assert t._(
        "You didn't confirm in LINE, so this chat is not linked. "
        "You can try again any time with /link."
    ) in joined(replies)
    assert not db.state.links and ends_with_menu(replies)


@pytest.mark.parametrize("problem", ["reused", "expired", "other chat", "unknown", "empty"])
async def test_a_bad_nonce_links_nothing(
    line_chat: Chat,
    db: FakeDatabase,
    linking: LinkingService,
    clock: FrozenClock,
    t: Translator,
    lang: str,
    problem: str,
) -> None:
    nonce = await nonce_for(line_chat, db, linking, clock)
    sender = line_chat
    if problem == "reused":
        await line_chat.send(AccountLinkResult(nonce=nonce, ok=True))
        await line_chat.command("unlink", "this")
    elif problem == "expired":
        clock.advance(timedelta(minutes=10))
    elif problem == "other chat":
        sender = Chat(line_chat.service, db, clock, channel="line", chat_id="U" + "9" * 32)
        sender.seed(language=lang)
    elif problem == "unknown":
        nonce = "n" * 43
    else:
        nonce = ""
    replies = await sender.send(AccountLinkResult(nonce=nonce, ok=True))
    assert t._(
        "That link request has expired or was already used. Please start again with /link."
    ) in joined(replies)
    assert not db.state.links


async def test_the_event_arriving_mid_dialogue_still_completes_the_link(
    line_chat: Chat, db: FakeDatabase, linking: LinkingService, clock: FrozenClock
) -> None:
    nonce = await nonce_for(line_chat, db, linking, clock)
    await line_chat.command("lang")  # another dialogue is waiting for an answer
    await line_chat.send(AccountLinkResult(nonce=nonce, ok=True))
    assert ("line", LINE_USER) in db.state.links
