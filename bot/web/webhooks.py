"""``POST /webhooks/telegram`` and ``POST /webhooks/line``: one update, end to end.

As DESIGN.md ("One update, end to end") has it:

1. The request is authenticated before its body is parsed: Telegram's
   ``X-Telegram-Bot-Api-Secret-Token`` compared in constant time (missing: 401, wrong:
   403); LINE's ``X-Line-Signature`` over the raw body (missing: 401, wrong: 403).
   Nothing is stored for a request that fails.
2. Each event goes through :meth:`ConversationService.handle`: the inbox, keyed by
   (channel, update_id / webhookEventId), drops a redelivery; the flow's state and
   replies commit in one transaction.
3. Only then is the platform answered 200. A database that is down answers 503 (the
   platform retries; nothing was committed). Malformed JSON is 400; an update kind the
   bot does not handle, and LINE's empty connectivity check, are 200 with nothing stored
   (so Telegram does not retry them); a body over 256 KiB is 413.
4. The replies are sent right after the commit, in a background task (so the platform
   does not wait on our sends); shutdown waits for those tasks. Whatever a crash leaves
   in the outbox, ``selfcare worker`` sends.

Button presses are answered (Telegram's spinner); LINE shows its loading animation when
an answer takes longer than a second. A user who blocks the bot (Telegram's
``my_chat_member`` "kicked", LINE's unfollow) is marked unreachable; writing again (or
following again) makes the chat reachable.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from bot.app import CONTAINER, METRICS, json_error
from bot.channels import line, telegram
from bot.delivery import Outbound, ReplyToken, open_outbound
from bot.json_body import loads as loads_json
from bot.metrics import Metrics
from bot.settings import Settings
from core.services.conversation import ConversationService
from storage.db import is_unavailable
from storage.uow import Database

__all__ = [
    "LINE_SIGNATURE_HEADER",
    "TELEGRAM_SECRET_HEADER",
    "WEBHOOKS",
    "BackgroundTasks",
    "Webhooks",
    "setup",
]

log = logging.getLogger(__name__)

TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
LINE_SIGNATURE_HEADER = "X-Line-Signature"
#: An answer slower than this shows LINE's loading animation.
LOADING_AFTER_SECONDS = 1.0


class BackgroundTasks:
    """Work started after a webhook answered (sending replies). Shutdown waits for it,
    then cancels what is left (a cancelled send hands its messages back to the outbox)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The outbox still holds whatever did not go out: the relay sends it. A database
            # outage is expected now and then (a warning); anything else is a bug.
            level = logging.WARNING if is_unavailable(exc) else logging.ERROR
            log.log(level, "background send failed", extra={"exc_type": type(exc).__name__})

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Wait until no background work is left (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for the work in progress, then cancel the rest."""
        try:
            async with asyncio.timeout(grace_seconds):
                await self.wait_idle()
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


@dataclass
class _Running:
    service: ConversationService
    outbound: Outbound


class Webhooks:
    """The webhook routes' state: built with the app, opened at its start-up."""

    def __init__(self, settings: Settings, db: Database, metrics: Metrics) -> None:
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.tasks = BackgroundTasks()
        self._running: _Running | None = None
        self._stop_by: float | None = None  # event-loop time the shutdown must end by

    @property
    def running(self) -> _Running:
        if self._running is None:
            raise RuntimeError("the webhook routes are used before the app started")
        return self._running

    def shutdown_started(self) -> None:
        """Start the one grace period that the requests in flight and then the replies
        still being sent share, so a stop ends within SELFCARE_SHUTDOWN_TIMEOUT_SECONDS
        (not twice that) and the platform's kill deadline can be set from it."""
        loop = asyncio.get_running_loop()
        self._stop_by = loop.time() + self.settings.shutdown_timeout_seconds

    def grace_left(self) -> float:
        """Seconds left of the grace period (all of it before the shutdown started)."""
        if self._stop_by is None:
            return self.settings.shutdown_timeout_seconds
        return max(0.0, self._stop_by - asyncio.get_running_loop().time())


WEBHOOKS = web.AppKey("webhooks", Webhooks)


def _ok() -> web.Response:
    return web.json_response({"ok": True})


async def _set_membership(
    db: Database,
    channel: str,
    chat_id: str,
    membership: Literal["blocked", "unblocked"],
    now: datetime,
) -> None:
    async with db.uow() as uow:
        if membership == "blocked":
            await uow.reachability.mark_unreachable(channel, chat_id, "blocked the bot", now)
            await uow.outbox.give_up_chat(channel, chat_id, "chat unreachable")
        else:
            await uow.reachability.mark_reachable(channel, chat_id)
        await uow.commit()


# --- Telegram ----------------------------------------------------------------------------


async def telegram_webhook(request: web.Request) -> web.Response:
    hooks = request.app[WEBHOOKS]
    metrics, settings = hooks.metrics, hooks.settings
    started = time.perf_counter()
    running = hooks.running
    secret = settings.telegram_secret_token
    if running.outbound.telegram is None or secret is None:
        return json_error(404, "not_found", "Telegram is not configured.")

    given = request.headers.get(TELEGRAM_SECRET_HEADER)
    if given is None:
        metrics.updates.labels(telegram.CHANNEL, "unauthorized").inc()
        return json_error(401, "unauthorized", f"{TELEGRAM_SECRET_HEADER} is missing.")
    if not hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), secret.get_secret_value().encode("utf-8")
    ):
        metrics.updates.labels(telegram.CHANNEL, "forbidden").inc()
        return json_error(403, "forbidden", f"{TELEGRAM_SECRET_HEADER} is wrong.")

    body = await request.read()
    now = request.app[CONTAINER].clock.now()
    try:
        data = loads_json(body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        update = telegram.parse_update(data, now)
    except ValueError:
        metrics.updates.labels(telegram.CHANNEL, "malformed").inc()
        return json_error(400, "malformed", "The body is not a Telegram update.")
    if update is None:
        metrics.updates.labels(telegram.CHANNEL, "ignored").inc()
        return _ok()

    if update.membership is not None:
        await _set_membership(hooks.db, telegram.CHANNEL, update.chat_id, update.membership, now)
    if update.incoming is None:
        if update.callback_query_id is not None:
            hooks.tasks.spawn(running.outbound.telegram.answer_callback(update.callback_query_id))
        metrics.updates.labels(telegram.CHANNEL, "ignored").inc()
        return _ok()

    update = await telegram.resolve_button(hooks.db, update)
    assert update.incoming is not None
    handled = await running.service.handle(update.incoming)
    if handled.duplicate:
        metrics.updates.labels(telegram.CHANNEL, "duplicate").inc()
        return _ok()
    hooks.tasks.spawn(
        _send_telegram(hooks, update.chat_id, update.callback_query_id, handled.outbox_ids)
    )
    metrics.updates.labels(telegram.CHANNEL, "handled").inc()
    metrics.handling_seconds.labels(telegram.CHANNEL).observe(time.perf_counter() - started)
    return _ok()


async def _send_telegram(
    hooks: Webhooks, chat_id: str, callback_query_id: str | None, ids: list[int]
) -> None:
    outbound = hooks.running.outbound
    sending = outbound.delivery.deliver(ids, chat=(telegram.CHANNEL, chat_id), chat_spoke=True)
    if callback_query_id is not None and outbound.telegram is not None:
        # Stopping the button's spinner need not wait for the replies, nor they for it.
        await asyncio.gather(outbound.telegram.answer_callback(callback_query_id), sending)
    else:
        await sending


# --- LINE ------------------------------------------------------------------------------------


async def line_webhook(request: web.Request) -> web.Response:
    hooks = request.app[WEBHOOKS]
    metrics, settings = hooks.metrics, hooks.settings
    running = hooks.running
    secret = settings.line_channel_secret
    messenger = running.outbound.line
    if messenger is None or secret is None:
        return json_error(404, "not_found", "LINE is not configured.")

    signature = request.headers.get(LINE_SIGNATURE_HEADER)
    if signature is None:
        metrics.updates.labels(line.CHANNEL, "unauthorized").inc()
        return json_error(401, "unauthorized", f"{LINE_SIGNATURE_HEADER} is missing.")
    body = await request.read()
    if not line.verify_signature(secret.get_secret_value(), body, signature):
        metrics.updates.labels(line.CHANNEL, "forbidden").inc()
        return json_error(403, "forbidden", f"{LINE_SIGNATURE_HEADER} does not match the body.")
    try:
        events = line.parse_body(body)
    except ValueError:
        metrics.updates.labels(line.CHANNEL, "malformed").inc()
        return json_error(400, "malformed", "The body is not a LINE webhook.")

    now = request.app[CONTAINER].clock.now()
    for raw in events:  # in order: a chat's events must not overtake each other
        started = time.perf_counter()
        event = line.parse_event(raw, now)
        if event is None:
            metrics.updates.labels(line.CHANNEL, "ignored").inc()
            continue
        if event.membership == "blocked":
            await _set_membership(hooks.db, line.CHANNEL, event.chat_id, "blocked", now)
        if event.incoming is None:
            metrics.updates.labels(line.CHANNEL, "ignored").inc()
            continue
        incoming = await line.resolve_button(hooks.db, event.incoming)
        loading = (
            hooks.tasks.spawn(_loading_animation(messenger, event.chat_id))
            if event.user_chat
            else None
        )
        try:
            handled = await running.service.handle(incoming)
        finally:
            if loading is not None:
                loading.cancel()
        if handled.duplicate:
            metrics.updates.labels(line.CHANNEL, "duplicate").inc()
            continue
        hooks.tasks.spawn(_send_line(hooks, event.chat_id, event.reply_token, handled.outbox_ids))
        metrics.updates.labels(line.CHANNEL, "handled").inc()
        metrics.handling_seconds.labels(line.CHANNEL).observe(time.perf_counter() - started)
    return _ok()


async def _loading_animation(messenger: line.LineMessenger, chat_id: str) -> None:
    await asyncio.sleep(LOADING_AFTER_SECONDS)
    await messenger.show_loading(chat_id)


async def _send_line(
    hooks: Webhooks, chat_id: str, reply_token: ReplyToken | None, ids: list[int]
) -> None:
    await hooks.running.outbound.delivery.deliver(
        ids, chat=(line.CHANNEL, chat_id), reply_token=reply_token, chat_spoke=True
    )


# --- wiring ----------------------------------------------------------------------------------


async def _open(app: web.Application) -> AsyncIterator[None]:
    hooks = app[WEBHOOKS]
    container = app[CONTAINER]
    # Builds the flows and reads the message catalogues: file I/O, off the event loop.
    service = await asyncio.to_thread(container.conversation_service)
    async with open_outbound(container, app[METRICS]) as outbound:
        hooks._running = _Running(service=service, outbound=outbound)
        try:
            yield
        finally:
            # What is left of the grace period; a send cut short goes back to the outbox.
            await hooks.tasks.close(hooks.grace_left())
            hooks._running = None


async def _shutdown_started(app: web.Application) -> None:
    # on_shutdown runs once the listening sockets are closed, before aiohttp waits for
    # the requests in flight (up to the same timeout) and then runs the clean-up above.
    app[WEBHOOKS].shutdown_started()


def setup(app: web.Application) -> None:
    """Add the webhook routes and open the platform clients with the app."""
    container = app[CONTAINER]
    app[WEBHOOKS] = Webhooks(container.settings, container.db, app[METRICS])
    app.cleanup_ctx.append(_open)
    app.on_shutdown.append(_shutdown_started)
    app.router.add_post("/webhooks/telegram", telegram_webhook)
    app.router.add_post("/webhooks/line", line_webhook)
