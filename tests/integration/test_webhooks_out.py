"""Events out on both databases: signed with each endpoint's secret and verified by the
official ``standardwebhooks`` package on a loopback receiver; a stable id per event;
retries with back-off after 500s and while the receiver is down; dead-letters and replays."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.webhooks_out import RetryPolicy, WebhookSender, deliver_webhooks
from core.i18n import preload
from core.integration_events import account_linked, payment_recorded
from core.services.integrations import add_endpoint
from storage import tables_integrations as ti
from storage.uow import Database
from tests.integration.integrations_support import (
    NEW_SECRET,
    SECRET,
    SteppingClock,
    Subscriber,
    bill_data,
    customer_data,
    event,
    integration_app,
    payment_data,
)
from tests.integration.support import run_cli

POLICY = RetryPolicy(
    first_delay=timedelta(seconds=10),
    max_delay=timedelta(minutes=10),
    dead_after=timedelta(hours=1),
)


@pytest.fixture(autouse=True, scope="module")
def _catalogs() -> None:
    preload()


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    receiver = Subscriber(SECRET)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def sender(
    db: Database, session: aiohttp.ClientSession, clock: SteppingClock, **kw: Any
) -> WebhookSender:
    return WebhookSender(
        db,
        session,
        clock=clock,
        policy=kw.pop("policy", POLICY),
        rng=random.Random(2569),
        **kw,
    )


async def subscribe(
    db: Database, clock: SteppingClock, url: str, events: list[str], secret: str = SECRET
) -> str:
    async with db.uow() as uow:
        endpoint = await add_endpoint(uow, url, events, now=clock.now(), secret=secret)
        await uow.commit()
    return endpoint.id


def a_payment(n: int = 1) -> Any:
    return payment_recorded(
        payment_id=f"KBANK-{n}",
        account_no="1000000001",
        bill_reference="B100000000125111",
        matched=True,
        amount_satang=64_093,
        applied_satang=64_093,
        excess_satang=0,
        bill_amount_satang=64_093,
        bill_paid_satang=64_093,
        outstanding_satang=0,
        bill_status="paid",
        method="promptpay",
        paid_at=datetime(2026, 11, 25, 3, 4, tzinfo=UTC),
    )


async def publish(db: Database, clock: SteppingClock, *events: Any) -> list[str]:
    async with db.uow() as uow:
        ids = [await uow.events.publish(e, occurred_at=clock.now()) for e in events]
        await uow.commit()
    return ids


async def delivery_row(db: Database, event_id: str) -> Any:
    async with db.engine.connect() as conn:
        d = ti.webhook_deliveries
        return (await conn.execute(select(d).where(d.c.event_id == event_id))).mappings().one()


async def test_an_event_is_delivered_signed_and_verified_by_the_official_library(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    await subscribe(db, clock, subscriber.url, ["payment.recorded"])
    (event_id,) = await publish(db, clock, a_payment())

    delivered = await sender(db, session, clock).deliver_due()

    assert delivered == 1 and subscriber.refused == 0
    (received,) = subscriber.received
    assert received.webhook_id == event_id and event_id.startswith("msg_")
    assert received.body["type"] == "payment.recorded"
    assert received.body["data"]["amount_satang"] == 64_093
    assert received.body["data"]["bill_status"] == "paid"
    row = await delivery_row(db, event_id)
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 1, 200)
    assert await sender(db, session, clock).deliver_due() == 0  # nothing twice


async def test_each_endpoint_gets_only_what_it_asked_for_signed_with_its_own_secret(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    everything = Subscriber(NEW_SECRET)
    await everything.start()
    try:
        await subscribe(db, clock, subscriber.url, ["payment.recorded"])
        await subscribe(db, clock, everything.url, ["*"], secret=NEW_SECRET)
        linked = account_linked(account_no="1000000001", channel="line", linked_at=clock.now())
        await publish(db, clock, a_payment(), linked)

        assert await sender(db, session, clock).deliver_due() == 3
    finally:
        await everything.stop()

    assert [r.body["type"] for r in subscriber.received] == ["payment.recorded"]
    assert sorted(r.body["type"] for r in everything.received) == [
        "account.linked",
        "payment.recorded",
    ]
    assert subscriber.refused == everything.refused == 0


async def test_an_event_nobody_subscribed_to_is_kept_but_not_sent(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    await subscribe(db, clock, subscriber.url, ["consent.changed"])
    await publish(db, clock, a_payment())

    assert await sender(db, session, clock).deliver_due() == 0
    assert subscriber.received == []


async def test_500s_are_retried_with_growing_back_off_and_the_same_event_id(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    subscriber.script = [500, 503]
    await subscribe(db, clock, subscriber.url, ["payment.recorded"])
    (event_id,) = await publish(db, clock, a_payment())
    out = sender(db, session, clock)

    assert await out.deliver_due() == 0
    first = await delivery_row(db, event_id)
    assert await out.deliver_due() == 0  # not due yet: nothing is sent early
    clock.advance(first["next_attempt_at"] - clock.now())
    assert await out.deliver_due() == 0
    second = await delivery_row(db, event_id)
    clock.advance(second["next_attempt_at"] - clock.now())
    assert await out.deliver_due() == 1

    assert subscriber.attempts == [event_id] * 3
    assert (first["last_status"], second["last_status"]) == (500, 503)
    first_wait = first["next_attempt_at"] - first["last_attempt_at"]
    second_wait = second["next_attempt_at"] - second["last_attempt_at"]
    assert timedelta(seconds=5) <= first_wait <= timedelta(seconds=10)
    assert timedelta(seconds=10) <= second_wait <= timedelta(seconds=20)
    assert (await delivery_row(db, event_id))["status"] == "delivered"


async def test_a_receiver_that_is_down_for_a_while_gets_the_event_when_it_is_back(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession
) -> None:
    receiver = Subscriber(SECRET)
    await receiver.start()
    port = receiver.port
    await receiver.stop()  # down: nothing listens on its port
    await subscribe(db, clock, f"http://127.0.0.1:{port}/hooks/selfcare", ["payment.recorded"])
    (event_id,) = await publish(db, clock, a_payment())
    out = sender(db, session, clock)

    for _ in range(4):
        assert await out.deliver_due() == 0
        clock.advance(timedelta(minutes=10))
    down = await delivery_row(db, event_id)
    await receiver.start(port)
    try:
        assert await out.deliver_due() == 1
    finally:
        await receiver.stop()

    assert (down["status"], down["attempts"], down["last_status"]) == ("pending", 4, None)
    assert down["last_error"]
    assert [r.webhook_id for r in receiver.received] == [event_id]


async def test_a_receiver_that_never_answers_in_time_is_retried(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def slow(request: Any) -> Any:
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await subscribe(db, clock, f"http://127.0.0.1:{port}/slow", ["payment.recorded"])
        (event_id,) = await publish(db, clock, a_payment())
        out = sender(db, session, clock, timeout=timedelta(seconds=0.2))
        assert await out.deliver_due() == 0
    finally:
        release.set()
        await runner.cleanup()

    row = await delivery_row(db, event_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "TimeoutError")


async def test_a_delivery_failing_past_the_dead_letter_time_is_dead_until_replayed(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    subscriber.script = [500] * 100
    endpoint_id = await subscribe(db, clock, subscriber.url, ["payment.recorded"])
    (event_id,) = await publish(db, clock, a_payment())
    out = sender(db, session, clock)

    while (await delivery_row(db, event_id))["status"] == "pending":
        await out.deliver_due()
        clock.advance(timedelta(minutes=10))
    dead = await delivery_row(db, event_id)
    assert dead["status"] == "dead"
    assert dead["finished_at"] - dead["window_started_at"] >= POLICY.dead_after
    clock.advance(timedelta(days=1))
    assert await out.deliver_due() == 0  # dead stays dead

    subscriber.script = []
    async with db.uow() as uow:
        queued = await uow.webhooks.replay(now=clock.now(), dead_only=True)
        await uow.commit()
    assert await out.deliver_due() == 1

    assert queued == 1
    assert subscriber.received[-1].webhook_id == event_id  # the same id: receivers dedupe
    summary = await _summary(db, endpoint_id)
    assert (summary.pending, summary.delivered, summary.dead) == (0, 1, 0)


async def test_replay_of_an_old_event_to_an_endpoint_added_later(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    (event_id,) = await publish(db, clock, a_payment())
    endpoint_id = await subscribe(db, clock, subscriber.url, ["payment.recorded"])
    assert await sender(db, session, clock).deliver_due() == 0  # added after the event

    async with db.uow() as uow:
        queued = await uow.webhooks.replay(
            now=clock.now(), event_ids=[event_id], endpoint_id=endpoint_id
        )
        await uow.commit()

    assert queued == 1
    assert await sender(db, session, clock).deliver_due() == 1
    assert subscriber.received[0].webhook_id == event_id


async def test_two_workers_at_once_send_each_delivery_once(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    await subscribe(db, clock, subscriber.url, ["payment.recorded"])
    await publish(db, clock, *(a_payment(n) for n in range(30)))

    counts = await asyncio.gather(
        sender(db, session, clock).deliver_due(limit=20),
        sender(db, session, clock).deliver_due(limit=20),
    )
    while await sender(db, session, clock).deliver_due():
        pass

    assert sum(counts) <= 30
    ids = [r.webhook_id for r in subscriber.received]
    assert len(ids) == len(set(ids)) == 30


async def test_removing_an_endpoint_stops_its_deliveries(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    endpoint_id = await subscribe(db, clock, subscriber.url, ["payment.recorded"])
    await publish(db, clock, a_payment())
    async with db.uow() as uow:
        assert await uow.webhooks.remove_endpoint(endpoint_id)
        await uow.commit()

    assert await sender(db, session, clock).deliver_due() == 0
    assert subscriber.received == []


async def test_a_payment_confirmed_by_the_bank_reaches_the_subscriber_through_the_worker_job(
    database_url: str, keyring_path: Path, subscriber: Subscriber
) -> None:
    async with integration_app(database_url, keyring_path) as app:
        db = app.container.db
        async with db.uow() as uow:
            await add_endpoint(
                uow,
                subscriber.url,
                ["payment.recorded"],
                now=app.container.clock.now(),
                secret=SECRET,
            )
            await uow.commit()
        customer = customer_data()
        bill = bill_data(customer)
        await app.send(event("customer.upserted", customer))
        await app.send(event("bill.issued", bill))
        paid = await app.send(event("payment.succeeded", payment_data(bill)))

        assert await deliver_webhooks(app.container) == 1

    (received,) = subscriber.received
    assert received.webhook_id == paid.body["result"]["event_id"]
    assert received.body["data"]["bill_reference"] == bill["reference"]
    assert received.body["data"]["outstanding_satang"] == 0


async def _summary(db: Database, endpoint_id: str) -> Any:
    async with db.uow() as uow:
        (summary,) = [e for e in await uow.webhooks.list_endpoints() if e.id == endpoint_id]
    return summary


async def test_the_cli_adds_lists_replays_and_removes_endpoints(
    db: Database, cli_env: dict[str, str], subscriber: Subscriber, tmp_path: Path
) -> None:
    added = await run_cli(
        cli_env,
        "integrations",
        "add-endpoint",
        subscriber.url,
        "--events",
        "payment.recorded,account.linked",
        "--events",
        "consent.changed",
        "--description",
        "CRM ทดสอบ",
        cwd=tmp_path,
    )
    assert added.code == 0, added.stderr
    endpoint_id = added.stdout.split()[1]
    secret = added.stdout.strip().splitlines()[-1].split()[-1]
    assert secret.startswith("whsec_")
    async with db.uow() as uow:
        stored = await uow.webhooks.get_endpoint(endpoint_id)
    assert stored is not None and stored.secret == secret
    assert stored.events == ("account.linked", "consent.changed", "payment.recorded")

    listed = await run_cli(cli_env, "integrations", "list", cwd=tmp_path)
    assert listed.code == 0 and endpoint_id in listed.stdout and secret not in listed.stdout
    assert "0 pending, 0 delivered, 0 dead" in listed.stdout

    unknown = await run_cli(
        cli_env, "integrations", "add-endpoint", subscriber.url, "--events", "nope", cwd=tmp_path
    )
    assert unknown.code == 1 and "unknown nope" in unknown.stderr

    replayed = await run_cli(cli_env, "integrations", "replay", "--dead", cwd=tmp_path)
    assert replayed.code == 0 and replayed.stdout.startswith("0 deliveries")

    removed = await run_cli(cli_env, "integrations", "remove", endpoint_id, cwd=tmp_path)
    assert removed.code == 0
    async with db.uow() as uow:
        assert await uow.webhooks.get_endpoint(endpoint_id) is None


async def test_the_outbound_body_is_the_documented_envelope(
    db: Database, clock: SteppingClock, session: aiohttp.ClientSession, subscriber: Subscriber
) -> None:
    await subscribe(db, clock, subscriber.url, ["*"])
    await publish(db, clock, a_payment())
    await sender(db, session, clock).deliver_due()

    (received,) = subscriber.received
    assert set(received.body) == {"type", "timestamp", "data"}
    assert json.dumps(received.body["data"], sort_keys=True) == json.dumps(
        dict(a_payment().data), sort_keys=True
    )
