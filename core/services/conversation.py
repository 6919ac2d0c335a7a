"""The one entry point every channel calls with an inbound chat event.

``ConversationService.handle`` runs one event in one unit of work: record it in the inbox
(a redelivery stops here), lock and load the chat's state, expire a stale dialogue, run the
flow, save the state and queue the replies in the outbox, commit. Sending is the caller's
job: channels deliver the outbox rows after the commit.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.chat import (
    ButtonPress,
    CommandMessage,
    DeleteUserMessage,
    Incoming,
    Reply,
    TextMessage,
    TextReply,
)
from core.domain import Conversation
from core.flows import fallback
from core.flows.context import ConversationSettings, FlowContext, clear_dialogue
from core.flows.menu import prompt, with_menu
from core.flows.privacy import short_notice
from core.flows.registry import default_router
from core.flows.router import Router
from core.i18n import preload, translator
from core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from core.services import after_commit

__all__ = ["ConversationService", "ConversationSettings", "Handled"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handled:
    """What became of one inbound event: ``duplicate`` when it had been handled before
    (nothing was done), else the replies queued and their outbox ids, in order."""

    duplicate: bool
    replies: list[Reply]
    outbox_ids: list[int]


def _no_outage(exc: BaseException) -> bool:
    return False


class ConversationService:
    """Runs the flows for inbound events, one transaction per event."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        settings: ConversationSettings,
        *,
        router: Router | None = None,
        services: Mapping[type[Any], object] | None = None,
        storage_unavailable: Callable[[BaseException], bool] = _no_outage,
    ) -> None:
        """``storage_unavailable`` tells a storage outage raised inside a flow (which must
        propagate: the platform retries the event later) from a flow bug (apologised for);
        the storage adapter knows its driver's errors, the core does not."""
        self._uow_factory = uow_factory
        self._storage_unavailable = storage_unavailable
        self._clock = clock
        self._settings = settings
        self._router = router if router is not None else default_router()
        self._services = dict(services or {})  # use cases flows ask for: ctx.service(...)
        preload()  # read the catalogs now, not on the event loop later

    async def handle(self, incoming: Incoming) -> Handled:
        """Handle ``incoming`` exactly once.

        A flow that fails is rolled back whole; the event is then recorded and an apology
        queued in a fresh unit of work. Storage errors propagate with nothing committed
        (an outage met inside a flow too), so the platform's retry finds the event new.
        SMS and email the flow asked for go out after the commit (core/services/
        after_commit.py), never while the transaction holds the chat's lock."""
        with after_commit.collecting() as effects:
            handled = await self._handle(incoming)
        if effects:  # only a committed turn's: a rolled-back one discarded its own
            handled = await self._send_effects(incoming, handled, effects)
        return handled

    async def _send_effects(
        self, incoming: Incoming, handled: Handled, effects: list[after_commit.Effect]
    ) -> Handled:
        failed = False
        for effect in effects:
            try:
                await effect.send()
            except Exception as exc:  # a gateway's refusal, or its bug: the customer is told
                logger.warning(
                    "message not sent after commit",
                    extra={"kind": effect.kind, "exc_type": type(exc).__name__},
                )
                failed = True
        if not failed:
            return handled
        now = self._clock.now()
        async with self._uow_factory() as uow:
            conversation = await uow.conversations.load_for_update(
                incoming.channel, incoming.chat_id, self._settings.default_language
            )
            t = translator(conversation.language)
            sorry: list[Reply] = [
                TextReply(
                    t._("Sorry, I couldn't send the code just now. Please try again shortly.")
                )
            ]
            ids = await uow.outbox.enqueue_replies(incoming.channel, incoming.chat_id, sorry, now)
            await uow.commit()
        return Handled(
            duplicate=False,
            replies=[*handled.replies, *sorry],
            outbox_ids=[*handled.outbox_ids, *ids],
        )

    async def _handle(self, incoming: Incoming) -> Handled:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            if not await uow.inbox.accept(
                incoming.channel, incoming.event_id, incoming.received_at
            ):
                return Handled(duplicate=True, replies=[], outbox_ids=[])
            conversation = await uow.conversations.load_for_update(
                incoming.channel, incoming.chat_id, self._settings.default_language
            )
            language = conversation.language
            try:
                replies = await self._respond(uow, conversation, incoming, now)
            except Exception as exc:  # any flow bug must still get the customer a reply
                if self._storage_unavailable(exc):
                    raise  # not the flow's fault: nothing is committed, the retry redoes it
                _log_failure(exc)
            else:
                await uow.conversations.save(conversation)
                ids = await uow.outbox.enqueue_replies(
                    incoming.channel, incoming.chat_id, replies, now
                )
                await uow.commit()
                return Handled(duplicate=False, replies=replies, outbox_ids=ids)
        # Leaving the block without commit rolled the flow's work back, and what it wanted
        # sent with it.
        after_commit.discard()
        return await self._apologise(incoming, language, now)

    async def _respond(
        self, uow: UnitOfWork, conversation: Conversation, incoming: Incoming, now: datetime
    ) -> list[Reply]:
        ctx = FlowContext(
            conversation=conversation,
            incoming=incoming,
            uow=uow,
            now=now,
            settings=self._settings,
            router=self._router,
            services=self._services,
        )
        first_contact = not conversation.seen_privacy_notice
        replies = await self._expire_or_dispatch(ctx, now)
        if not any(isinstance(reply, TextReply) for reply in replies):
            # A flow that forgot to answer still must not leave the customer in silence.
            replies.append(with_menu(ctx.t, prompt(ctx.t)))
        if first_contact and not conversation.seen_privacy_notice:
            # The /privacy flow shows the full notice itself; anything else gets the short one.
            conversation.seen_privacy_notice = True
            replies.insert(0, TextReply(short_notice(ctx.t, self._settings)))
        return replies

    async def _expire_or_dispatch(self, ctx: FlowContext, now: datetime) -> list[Reply]:
        conversation = ctx.conversation
        if conversation.deadline is None or now < _as_utc(conversation.deadline):
            return await self._router.dispatch(ctx)
        expired = conversation.flow is not None
        taken_back = self._take_back_secret(ctx)
        clear_dialogue(conversation)
        if not expired:
            return await self._router.dispatch(ctx)
        note = fallback.dialogue_expired(ctx.t, self._settings.timeout)
        if isinstance(ctx.event, CommandMessage | ButtonPress):
            # A command or button stands on its own: do it, after the note.
            return [TextReply(note), *await self._router.dispatch(ctx)]
        # Anything else answered a question that is gone: don't guess what it meant.
        return [*taken_back, with_menu(ctx.t, note)]

    def _take_back_secret(self, ctx: FlowContext) -> list[Reply]:
        """A late answer to a password question is still a password: delete it."""
        conversation = ctx.conversation
        route = self._router.route(conversation.flow) if conversation.flow else None
        if (
            route is None
            or conversation.step not in route.secret_steps
            or not isinstance(ctx.event, TextMessage)
            or ctx.incoming.message_ref is None
        ):
            return []
        return [DeleteUserMessage(message_ref=ctx.incoming.message_ref)]

    async def _apologise(self, incoming: Incoming, language: str, now: datetime) -> Handled:
        apology: list[Reply] = [fallback.something_went_wrong(translator(language))]
        async with self._uow_factory() as uow:
            if not await uow.inbox.accept(
                incoming.channel, incoming.event_id, incoming.received_at
            ):
                return Handled(duplicate=True, replies=[], outbox_ids=[])
            conversation = await uow.conversations.load_for_update(
                incoming.channel, incoming.chat_id, self._settings.default_language
            )
            if conversation.flow is not None or conversation.deadline is not None:
                # Don't leave the chat in a step that may fail again on every answer.
                clear_dialogue(conversation)
                await uow.conversations.save(conversation)
            ids = await uow.outbox.enqueue_replies(incoming.channel, incoming.chat_id, apology, now)
            await uow.commit()
        return Handled(duplicate=False, replies=apology, outbox_ids=ids)


def _as_utc(moment: datetime) -> datetime:
    # Some drivers hand back naive datetimes; the database stores UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _log_failure(exc: Exception) -> None:
    # The type and where it was raised, never the message: it may quote personal data.
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
    logger.error("flow failed with %s at %s; apology sent", type(exc).__name__, where)
