"""Delivering integration events to subscribers: signed like the events we receive
(Standard Webhooks v1, the official ``standardwebhooks`` package), at least once.

Each pass (:meth:`WebhookSender.deliver_due`, the worker's job :func:`deliver_webhooks`):

1. claims the deliveries that are due in a short transaction, leasing each (its next
   attempt moves ahead by the lease) so another worker skips it and a crash retries it;
2. POSTs them concurrently, outside any transaction: ``webhook-id`` is the event's stable
   id (the same on every retry and replay, so receivers can deduplicate), the timestamp
   and signature are made for each attempt;
3. records every outcome in a second transaction: a 2xx is delivered; anything else (an
   error status, a refused connection, a timeout) is retried after an exponential back-off
   with jitter, until the delivery has been failing for ``dead_after``: then it is
   dead-lettered until ``selfcare integrations replay`` queues it again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from standardwebhooks import Webhook

from bot.bootstrap import Container, SystemClock
from core.ports import Clock
from storage.integrations import DueDelivery, SqlWebhookDeliveries
from storage.uow import Database

__all__ = ["DeliveryOutcome", "RetryPolicy", "WebhookSender", "deliver_webhooks"]

log = logging.getLogger(__name__)

USER_AGENT = "selfcare-webhooks/1"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Back-off ``first_delay`` × 2^(attempt-1), capped at ``max_delay``, with "equal jitter"
    (half fixed, half random, so retries of many deliveries spread out but never bunch at
    zero); a delivery failing for ``dead_after`` is dead-lettered."""

    first_delay: timedelta = timedelta(seconds=10)
    max_delay: timedelta = timedelta(hours=1)
    dead_after: timedelta = timedelta(hours=72)

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1, 2, …)."""
        exponent = min(max(attempts - 1, 0), 32)
        base: timedelta = min(self.first_delay * 2**exponent, self.max_delay)
        return base / 2 + base / 2 * rng.random()


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery: DueDelivery
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """Sends due deliveries with one HTTP session. ``clock`` schedules retries;
    signatures carry the wall-clock time, which receivers check against theirs."""

    def __init__(
        self,
        db: Database,
        session: aiohttp.ClientSession,
        *,
        clock: Clock,
        policy: RetryPolicy | None = None,
        timeout: timedelta = timedelta(seconds=10),
        concurrency: int = 16,
        rng: random.Random | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._session = session
        self._clock = clock
        self._wall = wall_clock or SystemClock()
        self._policy = policy or RetryPolicy()
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._rng = rng or random.SystemRandom()

    async def deliver_due(self, limit: int = 100) -> int:
        """One pass; returns how many deliveries succeeded."""
        now = self._clock.now()
        lease = self._timeout * 2 + timedelta(seconds=30)
        async with self._db.uow() as uow:
            due = await uow.webhook_deliveries.claim_due(now, limit, lease)
            await uow.commit()
        if not due:
            return 0
        outcomes = await asyncio.gather(*(self._send(d) for d in due))
        finished = self._clock.now()
        async with self._db.uow() as uow:
            for outcome in outcomes:
                await self._record(uow.webhook_deliveries, outcome, finished)
            await uow.commit()
        return sum(outcome.delivered for outcome in outcomes)

    async def _send(self, delivery: DueDelivery) -> DeliveryOutcome:
        signed_at = self._wall.now()
        signature = Webhook(delivery.secret).sign(delivery.event_id, signed_at, delivery.body)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(signed_at.timestamp())),
            "webhook-signature": signature,
        }
        async with self._slots:
            try:
                async with self._session.post(
                    delivery.url,
                    data=delivery.body.encode("utf-8"),
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self._timeout.total_seconds()),
                ) as response:
                    status = response.status
                    await response.content.readany()  # let the connection be reused
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                return DeliveryOutcome(delivery, None, type(exc).__name__)
        error = None if 200 <= status < 300 else f"HTTP {status}"
        return DeliveryOutcome(delivery, status, error)

    async def _record(
        self, deliveries: SqlWebhookDeliveries, outcome: DeliveryOutcome, now: datetime
    ) -> None:
        d = outcome.delivery
        if outcome.delivered:
            assert outcome.status_code is not None
            await deliveries.mark_delivered(d.id, now, outcome.status_code)
            return
        attempts = d.attempts + 1
        give_up = now - d.window_started_at >= self._policy.dead_after
        retry_at = None if give_up else now + self._policy.delay(attempts, self._rng)
        await deliveries.mark_failed(
            d.id,
            now,
            status_code=outcome.status_code,
            error=outcome.error or "failed",
            retry_at=retry_at,
        )
        log.warning(
            "webhook delivery failed",
            extra={
                "event_id": d.event_id,
                "endpoint_id": d.endpoint_id,
                "attempts": attempts,
                "status": outcome.status_code,
                "dead": give_up,
            },
        )


async def deliver_webhooks(container: Container) -> int:
    """The worker's job: one pass over the due deliveries; returns how many succeeded."""
    settings = container.settings
    timeout = timedelta(seconds=settings.webhook_timeout_seconds)
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(
            container.db,
            session,
            clock=container.clock,
            policy=RetryPolicy(dead_after=timedelta(hours=settings.webhook_dead_letter_hours)),
            timeout=timeout,
        )
        return await sender.deliver_due()
