"""The one-time page link as the chat sees it: the button, the token (random, hashed,
10 minutes, once, bound to the chat) and a page link that comes back to a chat."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from factories import CHANNELS
from fakes import FakeDatabase, FrozenClock
from harness import Chat, joined
from link_support import add_account, all_payloads, link_buttons, token_of

from core.i18n import Translator
from core.services.linking import LinkingService, PageLinkProblem, token_hash

PUBLIC_URL = "https://selfcare.example"


@pytest.mark.parametrize("channel", CHANNELS)
async def test_the_page_way_sends_a_one_time_link_bound_to_this_chat(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator, channel: str
) -> None:
    chat.channel = channel
    chat.seed(language=t.lang)
    await chat.press("link:accept")
    replies = await chat.press("link:web")

    (button,) = link_buttons(replies)
    assert button.url.startswith(f"{PUBLIC_URL}/link/")
    token = token_of(button.url)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 32 random bytes: 256 bits
    (stored,) = db.state.linking.tokens.values()
    assert stored.token_hash == token_hash(token) and token.encode() not in stored.token_hash
    assert (stored.channel, stored.chat_id, stored.purpose) == (channel, chat.chat_id, "signin")
    assert stored.expires_at == clock.now() + timedelta(minutes=10)
    assert stored.language == t.lang and stored.used_at is None
    assert chat.state.flow is None


async def test_every_page_link_is_new(chat: Chat, db: FakeDatabase) -> None:
    urls = set()
    for _ in range(20):
        await chat.press("link:accept")
        (button,) = link_buttons(await chat.press("link:web"))
        urls.add(button.url)
    assert len(urls) == 20


async def page_link(chat: Chat) -> str:
    await chat.press("link:accept")
    (button,) = link_buttons(await chat.press("link:web"))
    return token_of(button.url)


async def test_a_page_link_brought_back_to_its_chat_is_offered_again(
    chat: Chat, t: Translator
) -> None:
    token = await page_link(chat)
    replies = await chat.command("start", f"link-{token}")
    (button,) = link_buttons(replies)
    assert token_of(button.url) == token


async def test_a_page_link_from_another_chat_is_refused_and_stays_good_for_its_own(
    chat: Chat, db: FakeDatabase, linking: LinkingService, clock: FrozenClock, t: Translator
) -> None:
    token = await page_link(chat)
    other = Chat(chat.service, db, clock, chat_id="someone-else")
    other.seed(language=t.lang)

    replies = await other.command("link", token)

    assert t._(
        "That sign-in link was made for another chat, so it can't link this one. "
        "To link this chat, start here."
    ) in joined(replies)
    assert link_buttons(replies) == [] and "link:accept" in all_payloads(replies)
    async with db.unit_of_work() as uow:
        still = await linking.open_page_link(uow, token, clock.now())
    assert not isinstance(still, PageLinkProblem) and still.chat_id == chat.chat_id


@pytest.mark.parametrize("problem", ["expired", "used", "unknown"])
async def test_an_expired_used_or_unknown_page_link_is_refused(
    chat: Chat,
    db: FakeDatabase,
    linking: LinkingService,
    clock: FrozenClock,
    t: Translator,
    problem: str,
) -> None:
    token = await page_link(chat)
    if problem == "expired":
        clock.advance(timedelta(minutes=10))
    elif problem == "used":
        async with db.unit_of_work() as uow:
            found = await linking.open_page_link(uow, token, clock.now())
            assert not isinstance(found, PageLinkProblem)
            assert await linking.use_page_link(uow, found, clock.now())
            assert not await linking.use_page_link(uow, found, clock.now())  # once only
            await uow.commit()
    else:
        token = "A" * 43

    replies = await chat.command("start", f"link-{token}")

    assert t._("That sign-in link has expired or was already used. Let's start again.") in joined(
        replies
    )
    async with db.unit_of_work() as uow:
        assert await linking.open_page_link(uow, token, clock.now()) == PageLinkProblem(problem)


async def test_linking_uses_up_the_chats_open_page_links(
    chat: Chat, db: FakeDatabase, linking: LinkingService, clock: FrozenClock
) -> None:
    account = add_account(db)
    token = await page_link(chat)
    assert account.user is not None
    async with db.unit_of_work() as uow:
        await linking.link(
            uow,
            channel=chat.channel,
            chat_id=chat.chat_id,
            eservice_user_id=account.user.id,
            customer_id=account.customer.id,
            notice_version="v",
            method="password",
            now=clock.now(),
        )
        assert await linking.open_page_link(uow, token, clock.now()) == PageLinkProblem("used")
