"""A small deployment on loopback for the fault suite, and the checks every fault test makes.

:class:`Deployment` runs N ``selfcare serve`` processes and ``selfcare worker`` processes
(real subprocesses, tests/integration/channels_support.py) on one database, wired to the
Telegram Bot API stub, and lets a test kill or stop any of them. The checks read what the
platform saw (the stub's transcripts) and what the database holds (inbox, outbox), and
hold the product to its delivery guarantees (bot/delivery.py): every update handled
exactly once, every chat's replies in order, at least once and never lost; a duplicate
only for a message that was on the wire when a process was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import ColumnElement, func, select, true

from storage import tables as t
from storage.uow import Database
from tests.faults.sender import Attempt
from tests.integration.channels_support import (
    Process,
    channel_env,
    free_port,
    start_selfcare,
)
from tests.integration.support import run_cli
from tests.stubs.telegram import TelegramStub

SERVE_READY = "selfcare serving on"
WORKER_READY = "selfcare worker running"
#: Waits on conditions: generous, the suite runs on 2 shared cores next to 3 xdist workers.
SETTLE_SECONDS = 120.0

#: One chat's script. Its replies differ from step to step (language, command), so a reply
#: out of order or twice shows in the transcript.
SCRIPT = ("/start", "/lang en", "/help", "/menu", "/privacy", "/lang th", "/help", "/menu")


def fault_env(base: Mapping[str, str], telegram: TelegramStub, **settings: str) -> dict[str, str]:
    """The processes' environment: ``base`` (the ``cli_env`` fixture), the stub, and
    ``SELFCARE_<NAME>`` settings given as ``name=value``."""
    env = channel_env(dict(base), telegram=telegram)
    # Several deployments share the machine's PostgreSQL with the rest of the suite.
    env["SELFCARE_DATABASE_POOL_SIZE"] = "4"
    env.update({f"SELFCARE_{name.upper()}": value for name, value in settings.items()})
    return env


@dataclass
class Deployment:
    """Web processes (one port each, kept across restarts) and workers on one database."""

    env: dict[str, str]
    base: Path
    ports: list[int]
    web: list[Process | None]
    workers: list[Process] = field(default_factory=list)
    _started: list[Process] = field(default_factory=list)
    _killed: list[Process] = field(default_factory=list)
    _worker_dirs: int = 0

    @property
    def urls(self) -> list[str]:
        return [f"https://127.0.0.1:{port}" for port in self.ports]

    async def start_web(self, n: int) -> Process:
        """(Re)start web process ``n`` on its port."""
        process = await start_selfcare(
            self.env,
            "serve",
            "--port",
            str(self.ports[n]),
            cwd=self.base / f"web{n}",
            ready=SERVE_READY,
        )
        self.web[n] = process
        self._started.append(process)
        return process

    async def start_worker(self) -> Process:
        self._worker_dirs += 1
        cwd = self.base / f"worker{self._worker_dirs}"
        process = await start_selfcare(self.env, "worker", cwd=cwd, ready=WORKER_READY)
        self.workers.append(process)
        self._started.append(process)
        return process

    async def kill(self, process: Process) -> None:
        """SIGKILL: no clean-up, no goodbye (a crash, the OOM killer, a pulled plug)."""
        self._killed.append(process)
        process.process.send_signal(signal.SIGKILL)
        await process.process.wait()
        await process.reader

    async def close(self) -> list[str]:
        """Stop whatever still runs (SIGTERM, then SIGKILL), all at once; returns a
        complaint per process that did not exit cleanly (those killed on purpose aside)."""
        running = [p for p in self._started if p.process.returncode is None]
        await asyncio.gather(*(p.stop(grace_seconds=SETTLE_SECONDS) for p in running))
        return [
            f"exit {p.process.returncode}:\n{p.text}"
            for p in self._started
            if p.process.returncode != 0 and all(p is not killed for killed in self._killed)
        ]


@contextlib.asynccontextmanager
async def deployment(
    env: dict[str, str], base: Path, *, web: int = 2, workers: int = 1
) -> AsyncIterator[Deployment]:
    """Migrate (the release step), start ``web`` serve processes and ``workers`` workers;
    every process is stopped on the way out, whatever happened."""
    upgraded = await run_cli(env, "db", "upgrade")
    assert upgraded.code == 0, upgraded.stderr
    running = Deployment(env, base, [free_port() for _ in range(web)], [None] * web)
    problems: list[str] = []
    try:
        # Side by side: each start waits for its process to say it is ready (or stops it).
        started = await asyncio.gather(
            *(running.start_web(n) for n in range(web)),
            *(running.start_worker() for _ in range(workers)),
            return_exceptions=True,
        )
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        yield running
    finally:
        problems = await running.close()
    assert not problems, "\n".join(problems)


# --- what the database holds -----------------------------------------------------------------


async def inbox_update_ids(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        query = select(t.inbox.c.event_id).where(t.inbox.c.channel == "telegram")
        return [int(event_id) for event_id in (await conn.execute(query)).scalars()]


async def outbox_statuses(db: Database) -> Counter[str]:
    async with db.engine.connect() as conn:
        query = select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status)
        return Counter({row[0]: int(row[1]) for row in await conn.execute(query)})


async def leased_replies(db: Database) -> dict[str, list[str]]:
    """Chat id -> texts of the replies claimed for sending right now (status ``sending``)."""
    return await _replies(db, t.outbox.c.status == "sending")


async def all_replies(db: Database) -> dict[str, list[str]]:
    """Chat id -> texts of every queued reply, in queue order."""
    return await _replies(db, true())


async def _replies(db: Database, where: ColumnElement[bool]) -> dict[str, list[str]]:
    o = t.outbox.c
    async with db.engine.connect() as conn:
        query = select(o.chat_id, o.uid, o.payload_enc).where(where).order_by(o.id)
        rows = (await conn.execute(query)).all()
    found: dict[str, list[str]] = {}
    for row in rows:
        payload = db.cipher.decrypt(
            row.payload_enc, table="outbox", column="payload", row_id=row.uid
        )
        found.setdefault(row.chat_id, []).append(str(json.loads(payload).get("text", "")))
    return found


async def wait_all_sent(db: Database, within: float = SETTLE_SECONDS) -> Counter[str]:
    """Wait until no outbox row is waiting or being sent; returns the status counts."""
    async with asyncio.timeout(within):
        while True:
            statuses = await outbox_statuses(db)
            if statuses["pending"] == 0 and statuses["sending"] == 0:
                return statuses
            await asyncio.sleep(0.2)  # other processes write the database


# --- what the platform saw -------------------------------------------------------------------


def transcript(stub: TelegramStub, chat_id: int) -> list[str]:
    return [call.text for call in stub.sent(str(chat_id))]


@dataclass
class TranscriptCheck:
    """How the chats' transcripts compare with the control chat's."""

    duplicates: dict[int, list[str]]  # chat -> texts it got more than once
    problems: list[str]

    @property
    def duplicate_count(self) -> int:
        return sum(len(texts) for texts in self.duplicates.values())

    def describe(self) -> str:
        """The duplicates, briefly: chat and the start of each text."""
        return "; ".join(
            f"{chat}: " + ", ".join(repr(text[:24]) for text in texts)
            for chat, texts in sorted(self.duplicates.items())
        )


def compare_transcripts(
    stub: TelegramStub,
    control: Sequence[str],
    chats: Iterable[int],
    *,
    allowed_twice: Mapping[str, Sequence[str]] | None = None,
) -> TranscriptCheck:
    """Every chat got the control transcript: each reply once, in the control's order.

    ``allowed_twice`` (chat id -> texts) names the messages that may arrive a second time:
    those on the wire when a process was killed. A repeat is the same message sent again,
    so the first arrivals must still be the control transcript, in order."""
    allowed = allowed_twice or {}
    duplicates: dict[int, list[str]] = {}
    problems: list[str] = []
    for chat in chats:
        got = transcript(stub, chat)
        first = list(dict.fromkeys(got))
        if first != list(control):
            problems.append(f"chat {chat}: {got!r} is not the control transcript {control!r}")
            continue
        repeated = list((Counter(got) - Counter(first)).elements())
        if repeated:
            duplicates[chat] = repeated
            unexpected = Counter(repeated) - Counter(allowed.get(str(chat), []))
            if unexpected:
                problems.append(f"chat {chat}: sent twice, not in flight: {sorted(unexpected)}")
    return TranscriptCheck(duplicates, problems)


def unexpected_attempts(attempts: Iterable[Attempt]) -> list[Attempt]:
    """Attempts the platform should never see: anything but a 2xx, a 503 (retry later) or a
    connection that failed (a process that died or stopped listening)."""
    return [
        a
        for a in attempts
        if not (a.accepted or a.status == 503 or (a.status is None and a.error is not None))
    ]


def summarize(attempts: Sequence[Attempt]) -> str:
    """Attempt outcomes by kind, for the test's printout."""
    kinds = Counter(str(a.status) if a.status is not None else str(a.error) for a in attempts)
    return ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))


class Stopwatch:
    def __init__(self) -> None:
        self._started = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started
