"""Fuzzing the flows through ``ConversationService.handle`` on SQLite and PostgreSQL, with
the services ``selfcare serve`` builds (linking, profile, payments).

Each example is a fresh chat, linked to a customer or not, in Thai or in English, that sends
a few hostile events: any Unicode text (Thai, emoji, combining marks, bidi overrides,
control characters, SQL, very long), any command with any argument, a forged button of any
flow with any argument, a shared contact, a sticker. After every turn:

- the event got at least one text reply, and not the apology a failing flow leaves;
- the replies are in the chat's language (as it stands after the turn: "english" switches):
  Thai letters in a Thai chat; in an English one, more Latin letters than Thai (names,
  masked names and the language's own name "ภาษาไทย" stay in Thai);
- nothing is half-written: each reply is one outbox row, and the inbox holds the event.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot import bootstrap
from bot.bootstrap import Container
from bot.settings import load_settings
from core.chat import (
    ButtonPress,
    CommandMessage,
    InboundEvent,
    Incoming,
    SharedContact,
    TextReply,
    UnsupportedMessage,
    parse_text,
)
from core.domain import Channel
from core.flows import fallback
from core.flows.registry import default_router
from core.i18n import translator
from core.services.conversation import ConversationService
from storage import migrate
from storage import tables as t
from tests.fuzz.strategies import TRICKY, budget, nasty_text
from tests.integration import factories as f

_ROUTER = default_router()
ROUTES = sorted(route.name for route in _ROUTER.routes)
COMMANDS = sorted(c for route in _ROUTER.routes for c in route.commands)
THAI = re.compile("[\u0e01-\u0e3a\u0e40-\u0e5b]")  # Thai script, not the baht sign ฿
LATIN = re.compile("[A-Za-z]")
_chats = itertools.count(1)
_events = itertools.count(1)


@dataclass
class World:
    container: Container
    service: ConversationService


@pytest.fixture
async def world(database_url: str, keyring_path: Path) -> AsyncIterator[World]:
    url = database_url  # both: PostgreSQL enforces the columns' lengths, SQLite does not
    settings = await asyncio.to_thread(
        load_settings,
        database_url=url,
        keyring_file=keyring_path,
        env="test",
        public_url="https://selfcare.test",
    )
    await migrate.upgrade(url)
    container = await bootstrap.build(settings)
    try:
        service = await asyncio.to_thread(container.conversation_service)
        yield World(container, service)
    finally:
        await container.close()


# --- events ------------------------------------------------------------------------------------

_args = st.one_of(st.just(""), nasty_text, st.sampled_from(TRICKY))
_payloads = st.one_of(
    st.tuples(st.sampled_from(ROUTES), _args).map(lambda p: f"{p[0]}:{p[1]}"),
    st.sampled_from(ROUTES),
    nasty_text,
)
_event: st.SearchStrategy[object] = st.one_of(
    nasty_text.map(lambda text: ("text", text)),
    st.builds(
        CommandMessage,
        name=st.sampled_from(COMMANDS) | st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True),
        arg=_args,
    ),
    st.builds(ButtonPress, payload=_payloads),
    st.builds(SharedContact, phone=st.sampled_from(TRICKY) | nasty_text, is_own=st.booleans()),
    st.builds(UnsupportedMessage, kind=st.sampled_from(["sticker", "photo", "location", ""])),
)


def _inbound(channel: str, drawn: object) -> InboundEvent:
    if isinstance(drawn, tuple):
        return parse_text(channel, drawn[1])  # as the channels turn typed text into events
    assert isinstance(drawn, CommandMessage | ButtonPress | SharedContact | UnsupportedMessage)
    return drawn


# --- checks ------------------------------------------------------------------------------------


async def _link(world: World, channel: str, chat_id: str) -> list[str]:
    """Link ``chat_id`` to a new customer with an unpaid bill; returns the customer's
    Thai values a reply may quote in any language."""
    owner = f.customer()
    account = f.service_account(owner)
    user = f.user(owner)
    bill = f.bill(account, date(2026, 10, 1), due_on=date(2026, 12, 28), paid_satang=0)
    async with world.container.db.uow() as uow:
        await uow.customers.add(owner)
        await uow.customers.add_service_account(account)
        await uow.users.add(user)
        await uow.bills.add(bill)
        await uow.links.link(f.chat_link(user, chat_id, channel=Channel(channel)))
        await uow.commit()
    return [owner.name, owner.address, account.plan]


async def _set_language(world: World, channel: str, chat_id: str, language: str) -> None:
    async with world.container.db.uow() as uow:
        conversation = await uow.conversations.load_for_update(channel, chat_id, language)
        conversation.language = language
        await uow.conversations.save(conversation)
        await uow.commit()


async def _language(world: World, channel: str, chat_id: str) -> str:
    async with world.container.db.uow() as uow:
        return (await uow.conversations.load_for_update(channel, chat_id, "th")).language


async def _stored(
    world: World, channel: str, chat_id: str, event_ids: list[str]
) -> tuple[int, int]:
    async with world.container.db.engine.connect() as conn:
        outbox = await conn.execute(
            select(func.count())
            .select_from(t.outbox)
            .where(t.outbox.c.channel == channel, t.outbox.c.chat_id == chat_id)
        )
        inbox = await conn.execute(
            select(func.count())
            .select_from(t.inbox)
            .where(t.inbox.c.channel == channel, t.inbox.c.event_id.in_(event_ids))
        )
        return int(outbox.scalar_one()), int(inbox.scalar_one())


APOLOGIES = {fallback.something_went_wrong(translator(lang)).text for lang in ("th", "en")}


@given(
    channel=st.sampled_from(["telegram", "line"]),
    language=st.sampled_from(["th", "en"]),
    linked=st.booleans(),
    drawn=st.lists(_event, min_size=1, max_size=4),
)
@budget(100)
@example(channel="telegram", language="en", linked=True, drawn=[("text", "/link"), ("text", "x")])
@example(channel="line", language="th", linked=True, drawn=[ButtonPress("pay:'; DROP TABLE--")])
@example(channel="telegram", language="en", linked=False, drawn=[("text", "ภาษาไทย")])
async def test_any_events_get_replies_in_the_chats_language_and_nothing_half_written(
    world: World,
    caplog: pytest.LogCaptureFixture,
    channel: str,
    language: str,
    linked: bool,
    drawn: list[object],
) -> None:
    caplog.clear()
    chat_id = f"fuzz-{next(_chats)}"
    settings = world.container.settings
    # Names stay as they are in an English reply: the operator's, the customer's.
    quoted = [settings.operator_name, settings.operator_contact]
    if linked:
        quoted += await _link(world, channel, chat_id)
    await _set_language(world, channel, chat_id, language)
    event_ids: list[str] = []
    sent = 0
    for number, item in enumerate(drawn, start=1):
        inbound = _inbound(channel, item)
        event_ids.append(f"fz-{next(_events)}")
        handled = await world.service.handle(
            Incoming(
                channel=channel,
                chat_id=chat_id,
                event_id=event_ids[-1],
                event=inbound,
                received_at=datetime.now(UTC),
                message_ref=str(number),
            )
        )
        assert not handled.duplicate
        texts = [r.text for r in handled.replies if isinstance(r, TextReply)]
        assert texts, f"no text reply to {type(inbound).__name__}"
        assert not APOLOGIES & set(texts), f"a flow failed on {type(inbound).__name__}"
        assert len(handled.outbox_ids) == len(handled.replies)
        sent += len(handled.outbox_ids)
        now_speaking = await _language(world, channel, chat_id)
        for text in texts:
            for value in quoted:
                text = text.replace(value, "")
            thai, latin = len(THAI.findall(text)), len(LATIN.findall(text))
            if now_speaking == "th":
                assert thai > 0, "an English reply in a Thai chat"
            else:
                # Masked names and "ภาษาไทย" may appear, in a reply that is English.
                assert latin > thai, "a Thai reply in an English chat"
        event(f"{type(inbound).__name__} ({'linked' if linked else 'not linked'})")
    assert await _stored(world, channel, chat_id, event_ids) == (sent, len(event_ids))
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]
