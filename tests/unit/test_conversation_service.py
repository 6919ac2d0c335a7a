"""ConversationService.handle: once per event, one transaction, timeouts, failures."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from factories import OPERATOR, incoming, text
from fakes import FakeDatabase, FrozenClock
from harness import Chat, assert_in_language, ends_with_menu, texts

from core.chat import Reply
from core.domain import AuditEntry
from core.errors import Conflict, InvalidInput
from core.flows.context import FlowContext
from core.flows.fallback import dialogue_expired
from core.flows.registry import ROUTES
from core.flows.router import Route, Router
from core.i18n import Translator
from core.services.conversation import ConversationService, ConversationSettings, Handled

SECRET = "สมหญิง 0812345678"


async def test_replies_are_queued_in_order_and_committed(
    chat: Chat, db: FakeDatabase, lang: str
) -> None:
    replies = await chat.command("start", "bill")
    assert chat.last is not None and not chat.last.duplicate
    assert [row.id for row in db.state.outbox] == chat.last.outbox_ids
    assert db.outbox_for(chat.channel, chat.chat_id) == replies
    assert db.commits == 1


async def test_a_redelivered_event_is_handled_once(
    service: ConversationService, db: FakeDatabase
) -> None:
    event = incoming(text("ภาษาอังกฤษ"), event_id="tg-42")
    first = await service.handle(event)
    outbox = list(db.state.outbox)
    again = await service.handle(event)
    assert not first.duplicate and first.replies
    assert again == Handled(duplicate=True, replies=[], outbox_ids=[])
    assert db.state.outbox == outbox
    conversation = db.conversation("terminal", "chat-1")
    assert conversation is not None and conversation.version == 1


async def test_the_same_event_id_on_another_channel_is_another_event(
    service: ConversationService,
) -> None:
    first = await service.handle(incoming(text("hi"), channel="telegram", event_id="7"))
    second = await service.handle(incoming(text("hi"), channel="line", event_id="7"))
    assert not first.duplicate and not second.duplicate


async def test_a_new_chat_starts_in_the_default_language(
    db: FakeDatabase, clock: FrozenClock
) -> None:
    settings = ConversationSettings(operator_name=OPERATOR, default_language="en")
    chat = Chat(ConversationService(db.unit_of_work, clock, settings), db, clock)
    assert_in_language(await chat.command("start"), "en")
    assert chat.state.language == "en"


# --- timeouts ----------------------------------------------------------------------


async def test_an_answer_within_the_timeout_is_taken(chat: Chat, clock: FrozenClock) -> None:
    await chat.command("lang")
    clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    await chat.say("English")
    assert chat.state.language == "en"


@pytest.mark.parametrize("late", [timedelta(minutes=10), timedelta(hours=30)])
async def test_an_answer_after_the_timeout_gets_a_note_and_the_menu(
    chat: Chat, clock: FrozenClock, t: Translator, late: timedelta
) -> None:
    await chat.command("lang")
    clock.advance(late)
    replies = await chat.say("English")
    assert texts(replies) == [dialogue_expired(t, timedelta(minutes=10))]
    assert "10" in texts(replies)[0]
    assert ends_with_menu(replies)
    state = chat.state
    assert state.language == t.lang  # the late answer was not acted on
    assert (state.flow, state.step, state.data, state.deadline) == (None, None, {}, None)


async def test_a_command_after_the_timeout_is_done_after_the_note(
    chat: Chat, clock: FrozenClock, t: Translator
) -> None:
    await chat.command("lang")
    clock.advance(timedelta(minutes=11))
    replies = await chat.command("help")
    assert texts(replies)[0] == dialogue_expired(t, timedelta(minutes=10))
    assert "/bill" in texts(replies)[1] and ends_with_menu(replies)


async def test_the_timeout_is_a_setting(db: FakeDatabase, clock: FrozenClock) -> None:
    settings = ConversationSettings(operator_name=OPERATOR, timeout=timedelta(minutes=1))
    chat = Chat(ConversationService(db.unit_of_work, clock, settings), db, clock)
    chat.seed(language="en")
    await chat.command("lang")
    assert chat.state.deadline == clock.now() + timedelta(minutes=1)
    clock.advance(timedelta(minutes=1))
    replies = await chat.say("ไทย")
    assert texts(replies)[0].startswith("The last step expired after 1 minute without")
    assert chat.state.language == "en"


async def test_a_naive_deadline_from_storage_is_read_as_utc(
    chat: Chat, db: FakeDatabase, clock: FrozenClock, t: Translator
) -> None:
    state = chat.state
    state.flow, state.step = "lang", "choose"
    state.deadline = (clock.now() - timedelta(minutes=1)).replace(tzinfo=None)
    replies = await chat.say("English")
    assert texts(replies) == [dialogue_expired(t, timedelta(minutes=10))]


async def test_no_note_when_nothing_was_pending(chat: Chat, clock: FrozenClock) -> None:
    clock.advance(timedelta(days=3))
    replies = await chat.command("menu")
    assert len(replies) == 1 and ends_with_menu(replies)


# --- failures ----------------------------------------------------------------------


async def _explode(ctx: FlowContext) -> list[Reply]:
    ctx.conversation.language = "en" if ctx.conversation.language == "th" else "th"
    ctx.conversation.seen_privacy_notice = True
    await ctx.uow.audit.append(AuditEntry("bot", "half-done", "x", {}, ctx.now))
    await ctx.uow.outbox.enqueue_replies("terminal", "chat-1", [], ctx.now)
    raise ValueError(SECRET)


async def _explode_in_step(ctx: FlowContext, _event: object) -> list[Reply] | None:
    raise KeyError(SECRET)


def _breaking_router() -> Router:
    broken = Route("boom", _explode, commands=("boom",), step=_explode_in_step)
    starts_dialogue = Route("ask", _ask, commands=("ask",), step=_explode_in_step)
    return Router((*ROUTES, broken, starts_dialogue))


async def _ask(ctx: FlowContext) -> list[Reply]:
    ctx.enter("question")
    return []


@pytest.fixture
def broken_chat(
    db: FakeDatabase, clock: FrozenClock, settings: ConversationSettings, lang: str
) -> Chat:
    service = ConversationService(db.unit_of_work, clock, settings, router=_breaking_router())
    chat = Chat(service, db, clock)
    chat.seed(language=lang, seen_privacy_notice=False)
    return chat


async def test_a_failing_flow_leaves_no_half_state_and_apologises(
    broken_chat: Chat, db: FakeDatabase, t: Translator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="core.services.conversation"):
        replies = await broken_chat.command("boom", event_id="evt-boom")
    assert texts(replies) == [
        t._("Sorry, something went wrong on our side. Please try again in a moment.")
    ]
    assert ends_with_menu(replies)
    state = broken_chat.state
    assert state.language == t.lang and not state.seen_privacy_notice
    assert db.state.audit == []
    assert db.outbox_for("terminal", "chat-1") == replies
    assert ("terminal", "evt-boom") in db.state.inbox
    assert "ValueError" in caplog.text and SECRET not in caplog.text
    # The platform redelivering the event does not run the broken flow again.
    again = await broken_chat.command("boom", event_id="evt-boom")
    assert again == [] and broken_chat.last is not None and broken_chat.last.duplicate


async def test_a_flow_that_says_nothing_still_gets_the_menu_sent(broken_chat: Chat) -> None:
    replies = await broken_chat.command("ask")
    assert ends_with_menu(replies)


async def test_a_failing_step_ends_the_dialogue(broken_chat: Chat, t: Translator) -> None:
    await broken_chat.command("ask")
    assert broken_chat.state.flow == "ask"
    replies = await broken_chat.say("an answer")
    assert ends_with_menu(replies) and broken_chat.state.flow is None
    assert_in_language(replies, t.lang)


async def test_a_storage_failure_commits_nothing_so_a_retry_works(
    chat: Chat, db: FakeDatabase
) -> None:
    db.fail_next_save = Conflict("stale")
    with pytest.raises(Conflict):
        await chat.command("lang", "en", event_id="evt-9")
    assert db.state.inbox == {} and db.state.outbox == [] and db.commits == 0
    replies = await chat.command("lang", "en", event_id="evt-9")
    assert replies and chat.state.language == "en"


# --- concurrency and settings ------------------------------------------------------


async def test_concurrent_events_of_one_chat_are_serialised(
    service: ConversationService, db: FakeDatabase
) -> None:
    events = [incoming(text("hi"), event_id=f"c-{n}") for n in range(10)]
    results = await asyncio.gather(*(service.handle(e) for e in events))
    assert all(not r.duplicate for r in results)
    conversation = db.conversation("terminal", "chat-1")
    assert conversation is not None and conversation.version == 10
    ids = [i for r in results for i in r.outbox_ids]
    assert len(ids) == len(set(ids)) == len(db.state.outbox)


@pytest.mark.parametrize(
    "bad",
    [
        {"operator_name": " "},
        {"operator_name": "X", "timeout": timedelta(0)},
        {"operator_name": "X", "default_language": "fr"},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        ConversationSettings(**bad)  # type: ignore[arg-type]


def test_the_registry_refuses_a_command_claimed_twice() -> None:
    with pytest.raises(ValueError, match="command 'menu'"):
        Router((*ROUTES, Route("other", _ask, commands=("menu",))))
    with pytest.raises(ValueError, match="bad route name"):
        Router((Route("a:b", _ask),))
