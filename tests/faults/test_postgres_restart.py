"""PostgreSQL stopped and started again in the middle of load.

Two ``selfcare serve`` processes and a worker run on a private PostgreSQL cluster
(tests/faults/cluster.py: the machine's cluster is shared by the tests running in
parallel and is never touched). A sender that behaves like Telegram posts every chat's
updates, round-robin over both servers, retrying anything but a 2xx. Mid-load the cluster
is stopped (``-m fast``: sessions are cut, transactions in flight roll back), kept down a
few seconds, and started again. Meanwhile ``/readyz`` and ``/healthz`` are polled on
both servers and each answer is checked against the database's real state at that time.

What must hold: while the database is down a webhook answers 503 with ``Retry-After``
(and stores nothing), ``/readyz`` 503 "database down", ``/healthz`` 200; no answer is ever
a 500; the servers and the worker reconnect by themselves; every update is handled
exactly once and every chat's replies reach Telegram exactly once, in order (the same
transcript as a control chat that ran with no fault); every outbox row ends ``sent``; no
process prints a traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from core.chat import TextReply
from storage import tables as t
from storage.crypto import FieldCipher
from storage.uow import Database
from tests.faults.cluster import PostgresCluster, private_cluster
from tests.faults.harness import (
    Deployment,
    deployment,
    fault_env,
    transcript,
    wait_all_sent,
)
from tests.faults.sender import TelegramLikeSender
from tests.integration.channels_support import SECRET, Process, insecure_client_context
from tests.stubs import telegram as updates
from tests.stubs.telegram import TelegramStub

pytestmark = [pytest.mark.slow, pytest.mark.faults]

#: Every chat says this; the replies differ from step to step, so a reply lost, doubled
#: or out of order shows. /start also reads the database inside its flow.
SCRIPT = (
    "/start",
    "/lang en",
    "/help",
    "/menu",
    "/lang th",
    "/privacy",
    "/help",
    "/lang en",
    "/menu",
    "/start",
)
CONTROL_CHAT = 7000
LOAD_CHATS = range(7001, 7013)
PROBE_UPDATE_ID = 900_000  # posted straight at the servers while the database is down
WORKER_CHAT = 7200  # a reply only the worker's relay can send
#: How long the database stays down (the fault itself, not a wait for a condition).
DOWN_SECONDS = 4.0
#: Generous: the machine has 2 cores shared with the rest of the suite.
SETTLE_SECONDS = 120
POLL_EVERY = 0.05


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with private_cluster() as started:
        yield started


@pytest.fixture
def database_url(cluster: PostgresCluster) -> str:
    """The private cluster (overrides the suite's sqlite/postgresql parameter)."""
    return cluster.url


@pytest.fixture
async def database(cluster: PostgresCluster, cipher: FieldCipher) -> AsyncIterator[Database]:
    """The test's own view of the database (its pool pings: it outlives the restart)."""
    database = Database.connect(cluster.url, cipher)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def running(
    cli_env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> AsyncIterator[Deployment]:
    """Two web processes and a worker on the private cluster (tests/faults/harness.py)."""
    env = fault_env(
        cli_env,
        tg,
        worker_poll_seconds="0.5",
        shutdown_timeout_seconds="10",
        # A claim whose commit the stop cut off (done, but the answer lost) waits for its
        # lease to end; a shorter one than production's keeps the test short.
        outbox_lease_seconds="20",
    )
    async with deployment(env, tmp_path, web=2, workers=1) as started:
        yield started


# --- the database's real state, and what /readyz said -------------------------------------


@dataclass
class DatabaseTimeline:
    """Monotonic times of the outage: stop asked, stopped, start asked, started."""

    stopping: float = float("inf")
    stopped: float = float("inf")
    starting: float = float("inf")
    started: float = float("inf")

    def state(self, sent: float, answered: float) -> str:
        """What the database was for the whole of [sent, answered]: up, down, or changing."""
        if answered < self.stopping or sent > self.started:
            return "up"
        if sent > self.stopped and answered < self.starting:
            return "down"
        return "changing"


@dataclass
class Probe:
    url: str
    path: str
    sent: float
    answered: float
    status: int | None
    body: str
    retry_after: str | None = None


async def _get(session: aiohttp.ClientSession, url: str, path: str) -> Probe:
    sent = time.monotonic()
    try:
        async with session.get(url + path, timeout=aiohttp.ClientTimeout(total=30)) as response:
            body = await response.text()
            return Probe(url, path, sent, time.monotonic(), response.status, body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Probe(url, path, sent, time.monotonic(), None, type(exc).__name__)


async def _poll_health(
    session: aiohttp.ClientSession, servers: list[str], probes: list[Probe], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        for url in servers:
            probes.append(await _get(session, url, "/readyz"))
            probes.append(await _get(session, url, "/healthz"))
        await asyncio.sleep(POLL_EVERY)


async def _post_probe(session: aiohttp.ClientSession, url: str) -> Probe:
    """A Telegram update straight at one server (not retried)."""
    update = updates.text(CONTROL_CHAT + 100, "/help", update_id=PROBE_UPDATE_ID)
    sent = time.monotonic()
    async with session.post(
        url + "/webhooks/telegram",
        data=json.dumps(update),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as response:
        body = await response.text()
        retry_after = response.headers.get("Retry-After")
        answered = time.monotonic()
        return Probe(url, "/webhooks/telegram", sent, answered, response.status, body, retry_after)


# --- the database's contents ----------------------------------------------------------------


async def _count(database: Database, table: str, *where: object) -> int:
    async with database.engine.connect() as conn:
        query = select(func.count()).select_from(t.metadata.tables[table])
        for condition in where:
            query = query.where(condition)  # type: ignore[arg-type]
        return int((await conn.execute(query)).scalar_one())


def _logged_errors(process: Process) -> list[str]:
    """Lines logged at ERROR or above (the log is one JSON object a line)."""
    errors = []
    for line in process.output:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("ERROR", "CRITICAL"):
            errors.append(line)
    return errors


# --- the test -----------------------------------------------------------------------------


async def test_postgres_restart_mid_load_loses_nothing_and_doubles_nothing(
    cluster: PostgresCluster, running: Deployment, tg: TelegramStub, database: Database
) -> None:
    servers = running.urls
    # The control chat, with no fault: what every chat must receive, in this order.
    control = TelegramLikeSender(servers, SECRET, first_update_id=1)
    await control.run({CONTROL_CHAT: SCRIPT})
    await wait_all_sent(database)
    expected = transcript(tg, CONTROL_CHAT)
    assert len(expected) > len(SCRIPT), expected  # /start's first answer has two messages
    assert all(a != b for a, b in itertools.pairwise(expected)), expected

    timeline = DatabaseTimeline()
    health: list[Probe] = []
    direct: list[Probe] = []
    polling_done = asyncio.Event()
    connector = aiohttp.TCPConnector(ssl=insecure_client_context(), limit=0)
    sender = TelegramLikeSender(servers, SECRET, first_update_id=1000)
    total = len(LOAD_CHATS) * len(SCRIPT)
    async with aiohttp.ClientSession(connector=connector) as session:
        poller = asyncio.create_task(_poll_health(session, servers, health, polling_done))
        load = asyncio.create_task(sender.run({chat: SCRIPT for chat in LOAD_CHATS}))
        try:
            await sender.wait_accepted(total // 3, within=SETTLE_SECONDS)
            timeline.stopping = time.monotonic()
            await asyncio.to_thread(cluster.stop, "fast")
            timeline.stopped = time.monotonic()
            for url in servers:
                direct.append(await _post_probe(session, url))
            await asyncio.sleep(max(0.0, timeline.stopped + DOWN_SECONDS - time.monotonic()))
            attempts_before_start = len(sender.attempts)
            timeline.starting = time.monotonic()
            await asyncio.to_thread(cluster.start)
            timeline.started = time.monotonic()
            async with asyncio.timeout(SETTLE_SECONDS):
                await load
            await wait_all_sent(database)
        finally:
            polling_done.set()
            await poller
            if not load.done():
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)

    # What the platform saw: 503s while the database was down (so it retried), never a 500.
    statuses = Counter(a.status for a in sender.attempts)
    print(f"\nwebhook attempts by status: {dict(sorted(statuses.items(), key=str))}")
    assert statuses[503] > 0, statuses
    assert set(statuses) <= {200, 503}, statuses
    # A webhook while the database is down: 503 with Retry-After, and nothing stored.
    for probe in direct:
        assert probe.status == 503, probe
        assert probe.retry_after is not None and int(probe.retry_after) > 0, probe
    probe_id = t.inbox.c.event_id == str(PROBE_UPDATE_ID)
    assert await _count(database, "inbox", probe_id) == 0

    # /readyz and /healthz told the truth all along.
    wrong = []
    for probe in health:
        state = timeline.state(probe.sent, probe.answered)
        if probe.path == "/healthz" or state == "up":
            right = probe.status == 200
        elif state == "down":
            right = probe.status == 503 and json.loads(probe.body)["database"] == "down"
        else:  # the instant it changed: either answer is the truth
            right = probe.status in (200, 503)
        if not right:
            wrong.append((state, probe))
    assert not wrong, wrong[:5]
    readyz = [p for p in health if p.path == "/readyz"]
    while_down = [p for p in readyz if timeline.state(p.sent, p.answered) == "down"]
    assert while_down, "no /readyz answer fell inside the outage"
    ready_again = {
        url: min(
            (p.answered for p in readyz if p.url == url and p.sent > timeline.started),
            default=math.inf,
        )
        for url in servers
    }
    print(
        f"database down {timeline.starting - timeline.stopped:.1f}s; /readyz polled "
        f"{len(readyz)} times, {len(while_down)} while down; ready again "
        + ", ".join(f"{at - timeline.started:.2f}s" for at in ready_again.values())
        + " after the database started"
    )

    # Both servers and the worker reconnected by themselves.
    after_start = sender.attempts[attempts_before_start:]
    for url in servers:
        assert any(a.url == url and a.accepted for a in after_start), url
    async with database.uow() as uow:  # as a crashed web process leaves it: the relay's job
        await uow.outbox.enqueue_replies(
            "telegram", str(WORKER_CHAT), [TextReply("relayed")], datetime.now(UTC)
        )
        await uow.commit()
    await tg.wait_until(lambda: bool(tg.sent(str(WORKER_CHAT))), within=SETTLE_SECONDS)

    # Every update handled exactly once; every chat got the control's replies, once each,
    # in order; every reply sent.
    created = control.update_ids() + sender.update_ids()
    assert len(created) == len(set(created)) == len(SCRIPT) + total
    assert await _count(database, "inbox") == len(created)
    # Exactly the control's transcript: an outage alone may not send anything twice.
    differ = {chat: got for chat in LOAD_CHATS if (got := transcript(tg, chat)) != expected}
    assert not differ, (expected, differ)
    await wait_all_sent(database)
    assert await _count(database, "outbox", t.outbox.c.status != "sent") == 0
    assert await _count(database, "outbox") == len(expected) * (1 + len(LOAD_CHATS)) + 1
    assert [c.text for c in tg.sent(str(WORKER_CHAT))] == ["relayed"]

    # Nothing restarted, and nothing logged as a bug (warnings are expected).
    for process in [*running.web, *running.workers]:
        assert process is not None
        assert process.process.returncode is None, process.text
        assert "Traceback" not in process.text, process.text
        assert not _logged_errors(process), _logged_errors(process)
