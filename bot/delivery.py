"""Delivering the outbox: replies go out right after the transaction that queued them
commits, and the worker's relay sends whatever a crash left behind.

No transaction stays open while a platform is called. A chat's next messages are
*claimed* (status ``sending``, leased to one claim until ``lease_until``) in a short
transaction, sent, then marked sent or failed in another. A process that dies mid-send
leaves a lease that expires, and any relay takes the messages over: at least once, never
lost. A database that goes down after a send is waited for (up to a lease) to record it,
so an outage alone sends nothing twice. A chat's messages are claimed strictly in order
and never while an earlier one is waiting or being sent elsewhere, so replies to one chat
keep their order across processes. Telegram, which has no idempotency key, gets each
message marked sent as soon as it took it, so a crash repeats at most the message on the
wire; a graceful stop (the worker's ``stop``) repeats nothing.

Failures: :class:`~core.ports.DeliveryError` with ``retry_after`` (a 429) waits that long,
others back off exponentially; ``permanent`` gives the message up (``dead``) and lets the
next one go; :class:`ChatUnreachable` (the user blocked the bot) marks the chat
unreachable and gives up everything queued for it; :class:`Throttled` is our own rate
limit and costs no attempt. The messages after a failed one are handed back unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from core.chat import Reply
from core.ports import Clock, DeliveryError, Messenger
from storage.conversations import OutboxMessage
from storage.db import is_unavailable
from storage.uow import Database, SqlUnitOfWork

if TYPE_CHECKING:
    from bot.bootstrap import Container
    from bot.channels.line import LineMessenger
    from bot.channels.telegram import TelegramMessenger
    from bot.metrics import Metrics

__all__ = [
    "BatchMessenger",
    "ChatUnreachable",
    "Outbound",
    "OutboxDelivery",
    "ReplyToken",
    "Throttled",
    "backoff",
    "open_outbound",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
#: A 429 is the platform pacing us, not a broken message: it may take longer to go out.
MAX_RATE_LIMITED_ATTEMPTS = 30
#: How many messages of one chat one claim takes.
CLAIM_LIMIT = 10
#: Claims in a row for one chat before the relay moves on (a chat that keeps talking).
MAX_ROUNDS = 20
#: Chats one relay pass sends to at the same time.
RELAY_CONCURRENCY = 16
#: Pauses between tries to record sends while the database is unreachable (doubling).
SETTLE_FIRST_PAUSE = 0.1
SETTLE_MAX_PAUSE = 2.0
_RETRY_KEY_NAMESPACE = uuid.UUID("5d0c2b1e-8f4a-4c61-9a57-1f3c0e6b2d90")


class ChatUnreachable(DeliveryError):
    """The chat blocked the bot or no longer exists: nothing more is sent to it until it
    writes again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, permanent=True)


class Throttled(DeliveryError):
    """Our own rate limit says wait ``retry_after`` seconds (no attempt is counted)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("throttled", retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class ReplyToken:
    """A platform's one-time token to answer an event for free (LINE's replyToken)."""

    value: str
    expires_at: datetime


@runtime_checkable
class BatchMessenger(Protocol):
    """A messenger that sends several replies in one call (LINE: up to 5), and can answer
    with a reply token. ``retry_key`` is the same for the same messages on every attempt."""

    max_batch: int

    async def send(self, chat_id: str, reply: Reply) -> None: ...

    async def send_batch(
        self, chat_id: str, replies: Sequence[Reply], *, reply_token: str | None, retry_key: str
    ) -> None: ...


def backoff(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s … capped at 5 minutes."""
    return timedelta(seconds=min(2**attempts, 300))


def retry_key(messages: Sequence[OutboxMessage]) -> str:
    """A UUID that names exactly these messages (LINE's X-Line-Retry-Key)."""
    return str(uuid.uuid5(_RETRY_KEY_NAMESPACE, ",".join(m.uid for m in messages)))


@dataclass
class _Attempt:
    """What one run of sends did: the messages that went out, the one that failed (with
    why), and those not tried after it."""

    sent: list[OutboxMessage]
    failed: list[OutboxMessage]
    error: DeliveryError | None
    untried: list[OutboxMessage]

    @property
    def carry_on(self) -> bool:
        """Whether the chat's next messages may go (a message given up does not hold
        up the rest; anything else does)."""
        if self.error is None:
            return True
        return self.error.permanent and not isinstance(self.error, ChatUnreachable)


class OutboxDelivery:
    """Sends the outbox through one messenger per channel."""

    def __init__(
        self,
        db: Database,
        messengers: Mapping[str, Messenger],
        clock: Clock,
        *,
        metrics: Metrics | None = None,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self._db = db
        self._messengers = messengers
        self._clock = clock
        self._metrics = metrics
        self._lease = lease

    async def deliver(
        self,
        outbox_ids: Sequence[int],
        *,
        chat: tuple[str, str] | None = None,
        reply_token: ReplyToken | None = None,
        chat_spoke: bool = False,
    ) -> int:
        """Send the chats of the given (just committed) messages, in order, and whatever
        else those chats have waiting; returns how many messages went out.

        ``chat`` (channel, chat id) saves looking the chat up when the caller knows it.
        ``chat_spoke``: the chat just wrote to us, so it is reachable again (a user who
        blocked the bot and came back). Messages another process is sending are left to
        it; they are sent by the relay if it dies."""
        if not outbox_ids:
            return 0
        if chat is not None:
            chats = [chat]
        else:
            async with self._db.uow() as uow:
                chats = await uow.outbox.chats_of(outbox_ids)
        sent = 0
        for channel, chat_id in chats:
            sent += await self._drain(
                channel, chat_id, wait=True, reply_token=reply_token, chat_spoke=chat_spoke
            )
        return sent

    async def relay_due(
        self,
        limit: int = 100,
        *,
        grace: timedelta = timedelta(0),
        stop: asyncio.Event | None = None,
    ) -> int:
        """Send what is due (new, retried, or abandoned by a process that died), several
        chats at a time; returns how many messages went out. The worker's loop body.

        ``grace``: leave messages that became due less than this long ago to the web
        process that just committed them (it is sending them right now). ``stop`` (the
        worker is shutting down): no new claim, no new send; the sends on the wire finish
        and the rest is handed back, so a graceful stop never sends anything twice."""
        # Only channels this process can send to: the rest waits for a process that can.
        async with self._db.uow() as uow:
            chats = await uow.outbox.chats_due(
                self._clock.now() - grace, limit, channels=list(self._messengers)
            )
        if not chats:
            return 0
        gate = asyncio.Semaphore(RELAY_CONCURRENCY)

        async def relay(channel: str, chat_id: str) -> int:
            async with gate:
                if stop is not None and stop.is_set():
                    return 0
                try:
                    return await self._drain(channel, chat_id, wait=False, stop=stop)
                except Exception as exc:
                    # Not the task group's business: a failure here (the database went
                    # away) must not cancel the other chats half-way through a send.
                    log.warning(
                        "relay of a chat failed",
                        extra={"channel": channel, "exc_type": type(exc).__name__},
                    )
                    return 0

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(relay(channel, chat_id)) for channel, chat_id in chats]
        return sum(task.result() for task in tasks)

    async def _drain(
        self,
        channel: str,
        chat_id: str,
        *,
        wait: bool,
        reply_token: ReplyToken | None = None,
        chat_spoke: bool = False,
        stop: asyncio.Event | None = None,
    ) -> int:
        """Claim, send, then record the outcome and claim what follows in one transaction,
        until the chat has nothing ready (or MAX_ROUNDS, or ``stop``)."""
        owner = secrets.token_hex(16)
        async with self._db.uow() as uow:
            if chat_spoke:
                await uow.reachability.mark_reachable(channel, chat_id)
            elif await uow.reachability.is_unreachable(channel, chat_id):
                dropped = await uow.outbox.give_up_chat(channel, chat_id, "chat unreachable")
                await uow.commit()
                if dropped:
                    log.info(
                        "replies dropped for an unreachable chat",
                        extra={"channel": channel, "count": dropped},
                    )
                return 0
            messages = await self._claim(uow, channel, chat_id, owner, wait)
            await uow.commit()
        sent = 0
        rounds = 0
        while messages:
            rounds += 1
            try:
                attempt = await self._send(channel, chat_id, messages, reply_token, owner, stop)
            except asyncio.CancelledError as cancelled:
                # Shutting down: record what went, hand back the rest (it goes out again
                # later, at least once) rather than leave it leased until the lease ends.
                found = cancelled.args[0] if cancelled.args else None
                partial = (
                    found if isinstance(found, _Attempt) else _Attempt([], [], None, list(messages))
                )
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._record(channel, chat_id, partial, owner))
                raise
            reply_token = None  # one use only
            sent += len(attempt.sent)
            next_owner = secrets.token_hex(16)
            stopping = stop is not None and stop.is_set()
            go_on = attempt.carry_on and rounds < MAX_ROUNDS and not stopping
            messages = await self._settle(
                channel, chat_id, attempt, owner, next_owner, wait=wait, go_on=go_on
            )
            owner = next_owner
        return sent

    async def _settle(
        self,
        channel: str,
        chat_id: str,
        attempt: _Attempt,
        owner: str,
        next_owner: str,
        *,
        wait: bool,
        go_on: bool,
    ) -> list[OutboxMessage]:
        """Record ``attempt`` and (``go_on``) claim the chat's next messages for
        ``next_owner``, in one transaction. While the database is unreachable this is tried
        again, for up to a lease: what went out must be marked sent, or it would go out a
        second time once its lease ends."""
        deadline = time.monotonic() + self._lease.total_seconds()
        pause = SETTLE_FIRST_PAUSE
        while True:
            try:
                async with self._db.uow() as uow:
                    await self._record_in(uow, channel, chat_id, attempt, owner)
                    claimed = (
                        await self._claim(uow, channel, chat_id, next_owner, wait) if go_on else []
                    )
                    await uow.commit()
                return claimed
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() + pause >= deadline:
                    raise
                log.warning(
                    "database unavailable; recording the sends again shortly",
                    extra={"channel": channel, "exc_type": type(exc).__name__},
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, SETTLE_MAX_PAUSE)

    async def _claim(
        self, uow: SqlUnitOfWork, channel: str, chat_id: str, owner: str, wait: bool
    ) -> list[OutboxMessage]:
        return await uow.outbox.claim_chat(
            channel,
            chat_id,
            self._clock.now(),
            lease=self._lease,
            owner=owner,
            limit=CLAIM_LIMIT,
            wait=wait,
        )

    async def _send(
        self,
        channel: str,
        chat_id: str,
        messages: Sequence[OutboxMessage],
        reply_token: ReplyToken | None,
        owner: str,
        stop: asyncio.Event | None = None,
    ) -> _Attempt:
        """Send claimed messages in order, stopping at the first failure, or before the
        next send once ``stop`` is set (the rest is handed back). A cancellation carries
        the partial :class:`_Attempt` in its args.

        A platform without an idempotency key (Telegram) has each message marked sent as
        soon as it took it, so a crash repeats at most the one message on the wire, not
        every message of the claim sent so far (LINE drops repeats by their retry key)."""
        messenger = self._messengers.get(channel)
        if messenger is None:
            return _Attempt(
                [], list(messages[:1]), DeliveryError("no messenger"), list(messages[1:])
            )
        batch = messenger.max_batch if isinstance(messenger, BatchMessenger) else 1
        sent: list[OutboxMessage] = []
        position = 0
        while position < len(messages):
            chunk = list(messages[position : position + batch])
            rest = list(messages[position + len(chunk) :])
            if stop is not None and stop.is_set():
                return _Attempt(sent, [], None, chunk + rest)
            try:
                if isinstance(messenger, BatchMessenger):
                    token = None
                    if reply_token is not None and reply_token.expires_at > self._clock.now():
                        token = reply_token.value
                    await messenger.send_batch(
                        chat_id,
                        [m.reply for m in chunk],
                        reply_token=token,
                        retry_key=retry_key(chunk),
                    )
                else:
                    await messenger.send(chat_id, chunk[0].reply)
            except asyncio.CancelledError as cancelled:
                raise asyncio.CancelledError(_Attempt(sent, [], None, chunk + rest)) from cancelled
            except DeliveryError as exc:
                return _Attempt(sent, chunk, exc, rest)
            except Exception as exc:  # an adapter bug must not lose the message
                log.exception(
                    "send failed unexpectedly",
                    extra={"channel": channel, "exc_type": type(exc).__name__},
                )
                return _Attempt(sent, chunk, DeliveryError(type(exc).__name__), rest)
            reply_token = None
            sent.extend(chunk)
            position += len(chunk)
            if not isinstance(messenger, BatchMessenger):
                try:
                    await self._mark_sent(channel, chunk, owner)
                except asyncio.CancelledError as cancelled:
                    raise asyncio.CancelledError(_Attempt(sent, [], None, rest)) from cancelled
        return _Attempt(sent, [], None, [])

    async def _mark_sent(self, channel: str, messages: Sequence[OutboxMessage], owner: str) -> None:
        """Record sends at once, in a short transaction of their own. Best effort: if the
        database fails, they are recorded with the rest of the claim."""
        try:
            async with self._db.uow() as uow:
                ids = [m.id for m in messages]
                await uow.outbox.mark_sent_many(ids, self._clock.now(), owner=owner)
                await uow.commit()
        except Exception as exc:
            log.warning(
                "could not record a send yet",
                extra={"channel": channel, "exc_type": type(exc).__name__},
            )

    async def _record(self, channel: str, chat_id: str, attempt: _Attempt, owner: str) -> None:
        async with self._db.uow() as uow:
            await self._record_in(uow, channel, chat_id, attempt, owner)
            await uow.commit()

    async def _record_in(
        self, uow: SqlUnitOfWork, channel: str, chat_id: str, attempt: _Attempt, owner: str
    ) -> None:
        """Mark what went out as sent, the failure as failed, the rest handed back."""
        now = self._clock.now()
        await uow.outbox.mark_sent_many([m.id for m in attempt.sent], now, owner=owner)
        exc = attempt.error
        if exc is None:
            await uow.outbox.release([m.id for m in attempt.untried], owner=owner)
            return
        throttled = isinstance(exc, Throttled)
        if self._metrics is not None and not throttled:
            self._metrics.send_errors.labels(channel).inc()
            if exc.retry_after is not None:
                self._metrics.rate_limited.labels(channel).inc()
        if isinstance(exc, ChatUnreachable):
            await uow.reachability.mark_unreachable(channel, chat_id, exc.reason, now)
            await uow.outbox.give_up_chat(channel, chat_id, exc.reason)
            log.info("chat unreachable", extra={"channel": channel, "reason": exc.reason})
            return
        for message in attempt.failed:
            await uow.outbox.mark_failed(
                message.id,
                now,
                exc.reason,
                retry_in=_retry_in(message, exc),
                owner=owner,
                count_attempt=not throttled,
            )
        await uow.outbox.release([m.id for m in attempt.untried], owner=owner)
        if not throttled:
            log.warning(
                "delivery failed",
                extra={
                    "channel": channel,
                    "outbox_id": attempt.failed[0].id,
                    "reason": exc.reason[:80],
                    "dead": _retry_in(attempt.failed[0], exc) is None,
                },
            )


def _retry_in(message: OutboxMessage, exc: DeliveryError) -> timedelta | None:
    """When to try ``message`` again after ``exc``; None gives it up."""
    if isinstance(exc, Throttled):
        return timedelta(seconds=exc.retry_after or 1)
    if exc.permanent:
        return None
    if exc.retry_after is not None:
        if message.attempts + 1 >= MAX_RATE_LIMITED_ATTEMPTS:
            return None
        return timedelta(seconds=exc.retry_after)
    if message.attempts + 1 >= MAX_ATTEMPTS:
        return None
    return backoff(message.attempts)


# --- the messengers of a process ---------------------------------------------------------


@dataclass
class Outbound:
    """What a process sends with: the delivery and the platform clients (None when the
    channel is not configured)."""

    delivery: OutboxDelivery
    telegram: TelegramMessenger | None
    line: LineMessenger | None


@contextlib.asynccontextmanager
async def open_outbound(
    container: Container,
    metrics: Metrics | None = None,
    *,
    extra: Mapping[str, Messenger] | None = None,
) -> AsyncIterator[Outbound]:
    """Open the Telegram and LINE clients the settings configure, and a delivery over
    them (plus ``extra`` messengers by channel); closes the clients at the end."""
    from bot.channels import line, telegram

    settings = container.settings
    async with contextlib.AsyncExitStack() as stack:
        messengers: dict[str, Messenger] = dict(extra or {})
        tg: TelegramMessenger | None = None
        ln: LineMessenger | None = None
        if settings.telegram_token is not None:
            tg = await stack.enter_async_context(telegram.open_messenger(container))
            messengers[telegram.CHANNEL] = tg
        if settings.line_channel_access_token is not None:
            ln = await stack.enter_async_context(line.open_messenger(container))
            messengers[line.CHANNEL] = ln
        delivery = OutboxDelivery(
            container.db,
            messengers,
            container.clock,
            metrics=metrics,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
        )
        yield Outbound(delivery=delivery, telegram=tg, line=ln)
