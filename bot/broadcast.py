"""The campaign sender: the worker side of promotions (``selfcare worker`` runs it, and
``selfcare broadcast run`` runs it alone).

One pass (:meth:`Broadcaster.run_once`):

1. Due campaigns start: one ``queued`` row per recipient chat (customers whose latest
   marketing consent is granted, on every channel they linked that this worker can send
   to). The unique key (campaign, channel, chat) makes that row the only one ever.
2. Per channel, in parallel, until nothing is left: *claim* rows (``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL, so workers share a campaign without sharing a row), recheck
   each against the consent ledger, the daily cap, its chat link and reachability
   (:func:`core.services.campaigns.triage`), lease the rest to this worker (``claimed``)
   with the platform requests they go in (LINE: ≤500 users and a stored retry key), and
   reserve their sending slots in the channel's pace shared by all workers (Telegram
   ~30 messages a second). Right before each request its rows become ``sending`` (one
   commit shared by the requests leaving at that moment); after the claim, each outcome
   is recorded. The next claim is made while one is being sent, so slots follow on.
3. Campaigns with nothing left to send are done (after one last look for customers who
   opted in meanwhile).

No transaction stays open while a platform is called. A 429 hands back what was not sent
yet and stops the channel for ``retry_after`` — every worker, through the shared pace.

A worker killed mid-send leaves leased rows behind. When the lease ends another worker
(or this one restarted) takes them over: ``claimed`` rows never reached the platform and
are queued again; LINE requests in ``sending`` are sent again with the *same* retry key,
which LINE delivers at most once, so those recipients get the promotion exactly once;
Telegram has no such key, so its ``sending`` rows (at most the requests that were in
flight, or answered but not yet recorded) are marked failed ("outcome unknown") and never
sent again. A resume never messages anyone twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.channels.line_bulk import open_line_bulk
from bot.channels.telegram_bulk import open_telegram_bulk
from core.chat import Button, LinkButton, TextReply
from core.domain import (
    Campaign,
    CampaignStatus,
    Channel,
    DeliveryCandidate,
    DeliveryStatus,
    PromotionMessage,
)
from core.ports import BulkSender, Clock, SendOutcome, SendResult
from core.services.campaigns import render_promotion, triage
from storage.staff import ClaimedRow
from storage.uow import Database

if TYPE_CHECKING:
    from bot.bootstrap import Container
    from bot.settings import Settings

__all__ = [
    "BroadcastSettings",
    "Broadcaster",
    "OutboxBulkSender",
    "open_broadcaster",
    "run_campaigns",
]

log = logging.getLogger(__name__)

#: LINE allows 200 multicast requests a second; keep well below it.
LINE_REQUESTS_PER_SECOND = 100.0
#: Rows one claim takes at most (Telegram without a limit, LINE: up to 4 multicasts).
MAX_CLAIM_ROWS = 2000
UNKNOWN_OUTCOME = "outcome unknown: it may have been delivered, so it is not sent again"
ABANDONED = "outcome unknown: the worker stopped mid-send; not sent again"


@dataclass(frozen=True, slots=True)
class BroadcastSettings:
    """How the sender behaves; :meth:`from_settings` reads them from ``SELFCARE_*``."""

    per_day_cap: int = 1
    lease: timedelta = timedelta(seconds=120)
    telegram_per_second: float = 30.0  # 0: no limit (benchmarks only)
    line_per_second: float = LINE_REQUESTS_PER_SECOND
    #: Requests in flight per channel: ~30/s at Telegram's ~100 ms needs a few; more only
    #: slows httpx's connection pool down.
    concurrency: int = 8
    max_attempts: int = 5
    unlimited_claim_requests: int = 256
    #: A pause longer than this is waited out between passes, holding no rows.
    max_pause_wait: float = 2.0
    unknown_retries: int = 2  # idempotent requests: resent at once before the lease ends
    #: A pass stops claiming after this long, so the worker's job loop gets control back.
    max_pass_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> BroadcastSettings:
        return cls(
            per_day_cap=settings.promotions_per_day_cap,
            lease=timedelta(seconds=settings.broadcast_lease_seconds),
            telegram_per_second=settings.broadcast_telegram_per_second,
        )

    def rate(self, channel: str) -> float:
        if channel == Channel.TELEGRAM.value:
            return self.telegram_per_second
        if channel == Channel.LINE.value:
            return self.line_per_second
        return 0.0


@dataclass(slots=True)
class _Request:
    """One platform request: the same promotion to ``rows`` (one for Telegram)."""

    rows: list[ClaimedRow]
    message: PromotionMessage
    retry_key: str
    at: datetime  # its sending slot
    #: Resent for a worker that died mid-send: maybe delivered, so never queued again
    #: (only resent with its retry key).
    in_doubt: bool = False
    launched: bool = False  # handed to the platform (its outcome may still be unknown)
    withdrawn: bool = False  # its campaign was cancelled before its slot came
    result: SendResult | None = None

    @property
    def chat_ids(self) -> list[str]:
        return [r.chat_id for r in self.rows]


@dataclass(slots=True)
class _Batch:
    requests: list[_Request] = field(default_factory=list)
    skipped: int = 0


def worker_name() -> str:
    """Names this process in the rows it leases (host, pid and a random tag)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class Broadcaster:
    """Sends campaigns through one :class:`~core.ports.BulkSender` per channel."""

    def __init__(
        self,
        db: Database,
        senders: Mapping[str, BulkSender],
        clock: Clock,
        settings: BroadcastSettings,
        *,
        worker: str | None = None,
    ) -> None:
        self._db = db
        self._senders = dict(senders)
        self._clock = clock
        self._settings = settings
        self.worker = worker or worker_name()
        self._spacing: dict[str, asyncio.Lock] = {}
        self._last_launch: dict[str, float] = {}
        self._hold: dict[str, float] = {}  # event-loop time until which nothing launches
        self._to_mark: set[int] = set()
        self._mark_lock: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None

    @property
    def channels(self) -> list[str]:
        return list(self._senders)

    def _stopping(self) -> bool:
        """The worker is shutting down: launch nothing more."""
        return self._stop is not None and self._stop.is_set()

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Start due campaigns, send what is sendable now (for at most
        ``max_pass_seconds``, or until ``stop`` is set: then nothing more is launched, the
        requests on the wire finish and the rest is handed back), finish what is done;
        returns how many chats were sent a promotion."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.max_pass_seconds
        self._stop = stop

        def enough() -> bool:
            return (stop is not None and stop.is_set()) or loop.time() > deadline

        await self._start_due()
        counts = await asyncio.gather(*(self._drain(ch, enough) for ch in self._senders))
        await self._finish_done()
        return sum(counts)

    async def run_forever(self, stop: asyncio.Event, poll: float = 1.0) -> None:
        """Passes until ``stop`` is set (the claim being sent is finished first)."""
        while not stop.is_set():
            try:
                sent = await self.run_once(stop)
            except Exception as exc:  # the database may be down: try again later
                log.warning("broadcast pass failed", extra={"exc_type": type(exc).__name__})
                sent = 0
            if sent:
                log.info("promotions sent", extra={"sent": sent, "worker": self.worker})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await stop.wait()

    # --- campaigns -------------------------------------------------------------------

    async def _start_due(self) -> None:
        now = self._clock.now()
        async with self._db.uow() as uow:
            due = await uow.broadcast.due_campaigns(now)
        for campaign_id in due:
            async with self._db.uow() as uow:
                made = await uow.broadcast.start(campaign_id, self.channels, now)
                await uow.commit()
            if made is not None:
                log.info("campaign started", extra={"campaign": campaign_id, "recipients": made})

    async def _finish_done(self) -> None:
        async with self._db.uow() as uow:
            idle = await uow.broadcast.sending_campaigns_without_work()
        for campaign_id in idle:
            async with self._db.uow() as uow:
                done = await uow.broadcast.finish(campaign_id, self.channels, self._clock.now())
                await uow.commit()
            if done:
                log.info("campaign done", extra={"campaign": campaign_id})

    # --- one channel -----------------------------------------------------------------

    async def _drain(self, channel: str, enough: Callable[[], bool]) -> int:
        """Claim and send until nothing is left (or ``enough``). The next claim is made
        while the previous one is being sent, so its slots follow on without a gap."""
        sender = self._senders[channel]
        sent = await self._recover(channel, sender)
        sending: asyncio.Task[int] | None = None
        try:
            while not enough():
                if not await self._wait_for_pace(channel, overlapping=sending is not None):
                    break  # paused for a while: the next pass looks again
                batch = await self._claim(channel, sender)
                if batch is None:
                    break
                if sending is not None:
                    sent += await sending
                sending = asyncio.create_task(self._send(channel, sender, batch))
        finally:
            if sending is not None:
                sent += await sending
        return sent

    async def _wait_for_pace(self, channel: str, *, overlapping: bool = False) -> bool:
        """Sleep through a short pause of the channel (not while a claim is being sent:
        the next one's slots follow it anyway); False for a long one."""
        if not self._settings.rate(channel):
            return True
        async with self._db.uow() as uow:
            until = await uow.broadcast.paused_until(channel)
        if until is None:
            return True
        wait = (until - self._clock.now()).total_seconds()
        if wait > self._settings.max_pause_wait:
            return False
        if wait > 0 and not overlapping:
            await asyncio.sleep(wait)
        return True

    def _claim_rows(self, channel: str, sender: BulkSender) -> int:
        rate = self._settings.rate(channel)
        requests = max(1, int(rate)) if rate else self._settings.unlimited_claim_requests
        return max(1, min(MAX_CLAIM_ROWS, requests * sender.max_batch))

    async def _claim(self, channel: str, sender: BulkSender) -> _Batch | None:
        """Claim, recheck and lease the next rows; None when nothing is queued."""
        now = self._clock.now()
        rate = self._settings.rate(channel)
        async with self._db.uow() as uow:
            candidates = await uow.broadcast.claim(channel, self._claim_rows(channel, sender), now)
            if not candidates:
                return None
            decisions = triage(candidates, self._settings.per_day_cap)
            unsent = {i: s for i, s in decisions.items() if s is not None}
            await uow.broadcast.settle_unsent(unsent, now)
            sendable = [c for c in candidates if decisions[c.id] is None]
            campaigns = await uow.broadcast.campaigns({c.campaign_id for c in sendable})
            groups = _group(sendable, sender)
            start = now
            if groups and rate:
                start = await uow.broadcast.reserve(channel, len(groups), rate, now)
            step = timedelta(seconds=1 / rate) if rate else timedelta(0)
            batch = _Batch(skipped=len(unsent))
            for number, rows in enumerate(groups):
                key = str(uuid.uuid4())
                first = rows[0]
                message = render_promotion(campaigns[first.campaign_id], first.language)
                claimed = [
                    ClaimedRow(
                        id=c.id,
                        campaign_id=c.campaign_id,
                        channel=channel,
                        chat_id=c.chat_id,
                        language=message.language,
                        attempt=c.attempt + 1,
                        retry_key=key if sender.idempotent else None,
                    )
                    for c in rows
                ]
                batch.requests.append(_Request(claimed, message, key, start + number * step))
            until = start + step * len(groups) + self._settings.lease
            await uow.broadcast.lease(
                [(r.id, r.language, r.retry_key) for q in batch.requests for r in q.rows],
                self.worker,
                now,
                until,
            )
            await uow.commit()
        return batch

    async def _space(self, channel: str) -> None:
        """Keep launches of ``channel`` at least 1/rate apart in this process, so that a
        stalled moment is not made up for with a burst."""
        rate = self._settings.rate(channel)
        if not rate:
            return
        lock = self._spacing.setdefault(channel, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            wait = self._last_launch.get(channel, 0.0) + 1 / rate - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_launch[channel] = loop.time()

    async def _send(self, channel: str, sender: BulkSender, batch: _Batch) -> int:
        """Send a claim's requests at their slots, then record every outcome. Whatever
        stops it early (a shutdown, a bug) still records what went out and hands back
        what did not."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._withdraw_cancelled(batch)
            stop = asyncio.Event()
            limit = asyncio.Semaphore(self._settings.concurrency)
            tasks = [
                asyncio.create_task(self._launch(channel, sender, r, stop, limit))
                for r in batch.requests
                if not r.withdrawn
            ]
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.shield(self._record(channel, sender, batch))
            raise
        return await self._record(channel, sender, batch)

    async def _mark_launching(self, ids: list[int]) -> None:
        """Commit that these rows are being handed to the platform, before they are:
        launches waiting at the same moment share one commit."""
        self._to_mark.update(ids)
        if self._mark_lock is None:
            self._mark_lock = asyncio.Lock()
        async with self._mark_lock:
            if self._to_mark.isdisjoint(ids):
                return  # committed with another launch's
            marking, self._to_mark = self._to_mark, set()
            try:
                async with self._db.uow() as uow:
                    await uow.broadcast.launching(marking, self.worker)
                    await uow.commit()
            except BaseException:
                self._to_mark |= marking
                raise

    async def _withdraw_cancelled(self, batch: _Batch) -> None:
        """At the first slot of a claim made ahead of time: the requests of a campaign
        cancelled meanwhile are not sent."""
        if not batch.requests:
            return
        delay = (min(r.at for r in batch.requests) - self._clock.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        async with self._db.uow() as uow:
            found = await uow.broadcast.campaigns({r.message.campaign_id for r in batch.requests})
        for request in batch.requests:
            campaign = found.get(request.message.campaign_id)
            if campaign is None or campaign.status is CampaignStatus.CANCELLED:
                request.withdrawn = True

    async def _launch(
        self,
        channel: str,
        sender: BulkSender,
        request: _Request,
        stop: asyncio.Event,
        limit: asyncio.Semaphore,
    ) -> None:
        loop = asyncio.get_running_loop()
        delay = (request.at - self._clock.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        async with limit:
            await self._space(channel)
            if self._stopping() or stop.is_set() or loop.time() < self._hold.get(channel, 0.0):
                return
            await self._mark_launching([r.id for r in request.rows])
            request.launched = True
            request.result = await self._deliver(sender, request)
        retry_after = request.result.retry_after
        if request.result.outcome is SendOutcome.RETRY and retry_after:
            # The platform asked us to wait: launch nothing more, in this claim or the next
            # one made already (the database pause stops the other workers' new claims).
            stop.set()
            self._hold[channel] = max(self._hold.get(channel, 0.0), loop.time() + retry_after)

    async def _deliver(self, sender: BulkSender, request: _Request) -> SendResult:
        result = await sender.send(request.chat_ids, request.message, retry_key=request.retry_key)
        tries = 0
        while (
            result.outcome is SendOutcome.UNKNOWN
            and sender.idempotent
            and tries < self._settings.unknown_retries
        ):
            tries += 1
            await asyncio.sleep(tries)
            result = await sender.send(
                request.chat_ids, request.message, retry_key=request.retry_key
            )
        return result

    async def _record(self, channel: str, sender: BulkSender, batch: _Batch) -> int:
        """Write every request's outcome (one statement per kind of outcome); returns how
        many chats were sent to."""
        now = self._clock.now()
        settle: dict[tuple[DeliveryStatus, str | None], list[int]] = {}
        release: dict[tuple[bool, str | None], list[int]] = {}
        extend: list[int] = []
        blocked: list[str] = []
        pause = 0.0
        for request in batch.requests:
            ids = [r.id for r in request.rows]
            result = request.result
            if result is None and not request.launched:
                if request.in_doubt:
                    extend.extend(ids)  # not resent this time: a takeover resends it
                else:
                    # Never handed to the platform (a 429 stopped the batch, or shutdown).
                    release.setdefault((False, None), []).extend(ids)
                continue
            if result is None:  # cut off mid-request by a shutdown
                result = SendResult(SendOutcome.UNKNOWN, reason="interrupted")
            match result.outcome:
                case SendOutcome.SENT:
                    settle.setdefault((DeliveryStatus.SENT, None), []).extend(ids)
                case SendOutcome.BLOCKED:
                    settle.setdefault((DeliveryStatus.BLOCKED, result.reason), []).extend(ids)
                    blocked.extend(r.chat_id for r in request.rows)
                case SendOutcome.FAILED:
                    settle.setdefault((DeliveryStatus.FAILED, result.reason), []).extend(ids)
                case SendOutcome.RETRY:
                    pause = max(pause, result.retry_after or 0.0)
                    if min(r.attempt for r in request.rows) >= self._settings.max_attempts:
                        reason = f"gave up after {self._settings.max_attempts} attempts: "
                        key = (DeliveryStatus.FAILED, reason + result.reason)
                        settle.setdefault(key, []).extend(ids)
                    else:
                        release.setdefault((True, result.reason), []).extend(ids)
                case _ if sender.idempotent:
                    # Left leased, due now: a takeover resends it with the same retry key.
                    extend.extend(ids)
                case _:
                    reason = f"{UNKNOWN_OUTCOME} ({result.reason})"
                    settle.setdefault((DeliveryStatus.FAILED, reason), []).extend(ids)
        sent = 0
        async with self._db.uow() as uow:
            queue = uow.broadcast
            for (status, error), ids in settle.items():
                done = await queue.record(ids, self.worker, status, now, error)
                sent += done if status is DeliveryStatus.SENT else 0
            for (attempted, error), ids in release.items():
                await queue.release(ids, self.worker, attempted=attempted, error=error)
            await queue.extend(extend, self.worker, now)
            for chat_id in blocked:
                await uow.reachability.mark_unreachable(channel, chat_id, "blocked", now)
            if pause:
                await queue.pause(channel, now + timedelta(seconds=pause), now)
            await uow.commit()
        if pause:
            log.warning(
                "platform asked to slow down",
                extra={"channel": channel, "retry_after": pause, "worker": self.worker},
            )
        return sent

    # --- leases of workers that died -----------------------------------------------------

    async def _recover(self, channel: str, sender: BulkSender) -> int:
        """Settle what a vanished worker left leased on ``channel``; returns how many chats
        were sent to on its behalf."""
        now = self._clock.now()
        async with self._db.uow() as uow:
            requeued = await uow.broadcast.requeue_expired_claims(channel, now)
            await uow.commit()
        if requeued:
            log.info("abandoned claims queued again", extra={"channel": channel, "rows": requeued})
        if not sender.idempotent:
            async with self._db.uow() as uow:
                lost = await uow.broadcast.fail_expired(channel, now, ABANDONED)
                await uow.commit()
            if lost:
                log.warning(
                    "abandoned sends marked failed", extra={"channel": channel, "rows": lost}
                )
            return 0
        sent = 0
        while not self._stopping():
            async with self._db.uow() as uow:
                keys = await uow.broadcast.expired_requests(channel, now)
            if not keys:
                return sent
            for key in keys:
                sent += await self._resend(channel, sender, key)
            now = self._clock.now()
        return sent

    async def _resend(self, channel: str, sender: BulkSender, retry_key: str) -> int:
        now = self._clock.now()
        rate = self._settings.rate(channel)
        async with self._db.uow() as uow:
            rows = await uow.broadcast.take_over(
                retry_key, self.worker, now, now + self._settings.lease
            )
            if not rows:
                return 0  # another worker was quicker
            if rows[0].attempt > self._settings.max_attempts:
                await uow.broadcast.record(
                    [r.id for r in rows], self.worker, DeliveryStatus.FAILED, now, UNKNOWN_OUTCOME
                )
                await uow.commit()
                return 0
            campaign: Campaign = (await uow.broadcast.campaigns({rows[0].campaign_id}))[
                rows[0].campaign_id
            ]
            at = await uow.broadcast.reserve(channel, 1, rate, now) if rate else now
            await uow.commit()
        message = render_promotion(campaign, rows[0].language)
        batch = _Batch(requests=[_Request(list(rows), message, retry_key, at, in_doubt=True)])
        log.info("resending an interrupted request", extra={"channel": channel, "rows": len(rows)})
        return await self._send(channel, sender, batch)


def _group(rows: Sequence[DeliveryCandidate], sender: BulkSender) -> list[list[DeliveryCandidate]]:
    """Rows in platform requests: same campaign and language, ≤ ``max_batch`` each."""
    by_message: dict[tuple[str, str], list[DeliveryCandidate]] = {}
    for row in rows:
        by_message.setdefault((row.campaign_id, row.language), []).append(row)
    size = sender.max_batch
    return [
        members[i : i + size]
        for members in by_message.values()
        for i in range(0, len(members), size)
    ]


class OutboxBulkSender:
    """Promotions to the terminal channel, through the outbox like any reply there."""

    idempotent = False
    max_batch = 1

    def __init__(self, db: Database, clock: Clock, channel: str = Channel.TERMINAL.value) -> None:
        self._db = db
        self._clock = clock
        self.channel = channel

    async def send(
        self, chat_ids: Sequence[str], message: PromotionMessage, *, retry_key: str
    ) -> SendResult:
        text = message.text if not message.image_url else f"{message.text}\n🖼 {message.image_url}"
        rows: list[tuple[Button | LinkButton, ...]] = []
        if message.link_url and message.link_label:
            rows.append((LinkButton(message.link_label, message.link_url),))
        rows.append((Button(message.optout_label, message.optout_payload),))
        async with self._db.uow() as uow:
            for chat_id in chat_ids:
                await uow.outbox.enqueue_replies(
                    self.channel,
                    chat_id,
                    [TextReply(text=text, buttons=tuple(rows))],
                    self._clock.now(),
                )
            await uow.commit()
        return SendResult(SendOutcome.SENT)


@contextlib.asynccontextmanager
async def open_broadcaster(container: Container) -> AsyncIterator[Broadcaster]:
    """A broadcaster with a sender for every configured channel (Telegram and LINE when
    their tokens are set; the terminal always), closed at the end."""
    settings = container.settings
    async with contextlib.AsyncExitStack() as stack:
        senders: dict[str, BulkSender] = {
            Channel.TERMINAL.value: OutboxBulkSender(container.db, container.clock)
        }
        if settings.telegram_token is not None:
            senders[Channel.TELEGRAM.value] = await stack.enter_async_context(
                open_telegram_bulk(settings)
            )
        if settings.line_channel_access_token is not None:
            senders[Channel.LINE.value] = await stack.enter_async_context(open_line_bulk(settings))
        yield Broadcaster(
            container.db, senders, container.clock, BroadcastSettings.from_settings(settings)
        )


async def run_campaigns(container: Container, stop: asyncio.Event | None = None) -> int:
    """The worker's job: one pass of the campaign sender (cut short once ``stop`` is set:
    the requests on the wire finish, the rest is handed back); returns how many chats got
    a promotion."""
    async with open_broadcaster(container) as broadcaster:
        return await broadcaster.run_once(stop)
