"""``selfcare worker``: sends what the web processes left in the outbox, and runs the
periodic jobs of every feature.

The relay loop looks for due outbox messages every ``SELFCARE_WORKER_POLL_SECONDS``
(new ones a crash left behind, retries whose time has come, messages whose sender died
with them leased) and sends them in order per chat (bot/delivery.py). It leaves a message
alone for its first 2 seconds (the web process that committed it is sending it) and skips
channels it has no credentials for.

Periodic jobs: a feature adds one line to :data:`JOBS`::

    Job("bill-reminders", 3600, reminders.send_due),

where ``send_due`` is ``async def send_due(container: Container) -> object`` (what it
returns is logged when it is an int, e.g. how many rows it handled). Each job runs in
its own task, once at start and then every ``interval`` seconds after the previous run
ended; an exception is logged and the job runs again at its next time. A job whose runs
may be long (a campaign pass) says ``stops=True`` and is called ``run(container, stop)``:
it ends its run early, cleanly, once ``stop`` is set. Jobs must be safe when several
workers run them at once (claim rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, or
take an advisory lock), and must not block the event loop.

On SIGTERM (or SIGINT) the worker stops starting work: the relay and stoppable jobs
claim nothing more and send nothing new, the sends on the wire finish and what was
claimed but not sent is handed back (so a graceful stop sends nothing twice). What still
runs after ``SELFCARE_SHUTDOWN_TIMEOUT_SECONDS`` is cancelled; a cancelled send hands the
messages it had claimed back to the outbox (bot/delivery.py), so nothing is left leased.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from aiohttp import web

from bot import billing_jobs, broadcast, privacy_jobs, webhooks_out
from bot.app import CONTAINER, METRICS, healthz
from bot.app import metrics as metrics_page
from bot.bootstrap import Container
from bot.delivery import OutboxDelivery, open_outbound
from bot.metrics import Metrics
from bot.web import integrations
from storage.db import is_unavailable

__all__ = ["JOBS", "Job", "Worker", "metrics_app", "purge_expired_media"]

log = logging.getLogger(__name__)

JobFunction = Callable[[Container], Awaitable[object]]
#: What a ``stops=True`` job's ``run`` really is (it may default ``stop`` to None).
StoppableJobFunction = Callable[[Container, asyncio.Event], Awaitable[object]]
#: Relay batches: how many chats one pass looks at.
RELAY_BATCH = 100
#: A reply committed this recently is being sent by the web process that committed it.
RELAY_GRACE = timedelta(seconds=2)
#: Button payloads stored for Telegram are kept this long (older buttons go stale).
CALLBACK_PAYLOAD_DAYS = 90


@dataclass(frozen=True, slots=True)
class Job:
    """A periodic job: ``run(container)`` every ``interval`` seconds."""

    name: str
    interval: float
    run: JobFunction
    #: ``run`` takes the worker's stop event too, and ends early once it is set.
    stops: bool = False


async def purge_expired_media(container: Container) -> int:
    """Delete images and files whose signed URL has expired, and long-unused button
    payloads; returns how many rows went."""
    now = container.clock.now()
    async with container.db.uow() as uow:
        media = await uow.media.purge_expired(now)
        payloads = await uow.callback_payloads.purge_older_than(
            now - timedelta(days=CALLBACK_PAYLOAD_DAYS)
        )
        await uow.commit()
    return media + payloads


#: Every feature's periodic jobs (see the module docstring).
JOBS: tuple[Job, ...] = (
    Job("media-cleanup", 15 * 60, purge_expired_media),
    Job("campaigns", 2, broadcast.run_campaigns, stops=True),
    Job("bill-reminders", 15 * 60, billing_jobs.send_bill_reminders),
    Job("pay-link-cleanup", 60 * 60, billing_jobs.purge_expired_pay_links),
    Job("webhooks-out", 2, webhooks_out.deliver_webhooks),
    Job("integration-inbox-cleanup", 24 * 60 * 60, integrations.purge_processed_events),
    Job("retention", 60 * 60, privacy_jobs.purge_expired),
)


def metrics_app(container: Container, metrics: Metrics) -> web.Application:
    """The worker's own ``/metrics`` (its relay's and campaigns' sends, errors and 429s,
    and the outbox gauge) and ``/healthz``: ``selfcare worker --metrics-port``. Plain
    HTTP, for a private address: nothing else is served."""
    app = web.Application()
    app[CONTAINER] = container
    app[METRICS] = metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    return app


class Worker:
    """The relay loop and the jobs, until :meth:`stop`."""

    def __init__(
        self,
        container: Container,
        *,
        jobs: Sequence[Job] = JOBS,
        metrics: Metrics | None = None,
    ) -> None:
        self._container = container
        self._jobs = tuple(jobs)
        self._metrics = metrics or Metrics()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Ask the loops to finish (safe from a signal handler)."""
        self._stopping.set()

    async def run(self, *, once: bool = False) -> None:
        """Run until :meth:`stop` (``once``: one relay pass and each job once, then return)."""
        settings = self._container.settings
        async with open_outbound(self._container, self._metrics) as outbound:
            loops = [self._relay(outbound.delivery, once)]
            loops += [self._job(job, once) for job in self._jobs]
            tasks = [asyncio.create_task(loop) for loop in loops]
            if not once:
                await self._stopping.wait()
                log.info(
                    "worker stopping", extra={"grace_seconds": settings.shutdown_timeout_seconds}
                )
            allowed = None if once else settings.shutdown_timeout_seconds
            _, pending = await asyncio.wait(tasks, timeout=allowed)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    async def _relay(self, delivery: OutboxDelivery, once: bool) -> None:
        poll = self._container.settings.worker_poll_seconds
        while not self._stopping.is_set():
            try:
                # A one-off pass takes everything due; the loop leaves the newest to web.
                grace = timedelta(0) if once else RELAY_GRACE
                sent = await delivery.relay_due(RELAY_BATCH, grace=grace, stop=self._stopping)
            except Exception as exc:  # the database may be down: try again later
                log.warning("relay pass failed", extra={"exc_type": type(exc).__name__})
                sent = 0
            if sent:
                log.info("outbox relayed", extra={"sent": sent})
            if once:
                return
            if sent < RELAY_BATCH:  # a full batch: more is probably waiting
                await self._pause(poll)

    async def _job(self, job: Job, once: bool) -> None:
        while not self._stopping.is_set():
            try:
                if job.stops:
                    run = cast(StoppableJobFunction, job.run)
                    result = await run(self._container, self._stopping)
                else:
                    result = await job.run(self._container)
            except Exception as exc:  # one failing run must not end the job
                if is_unavailable(exc):  # an outage, not a bug: no stack trace
                    log.warning(
                        "job skipped: database unavailable",
                        extra={"job": job.name, "exc_type": type(exc).__name__},
                    )
                else:
                    log.exception(
                        "job failed", extra={"job": job.name, "exc_type": type(exc).__name__}
                    )
            else:
                if isinstance(result, int) and not isinstance(result, bool) and result:
                    log.info("job ran", extra={"job": job.name, "count": result})
            if once:
                return
            await self._pause(job.interval)
