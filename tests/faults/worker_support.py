"""``selfcare worker`` killed and restarted over and over, for the fault suite.

:func:`restart_rounds` starts a worker, waits until it is visibly working (the platform
stub saw a new request), lets it run a random 0.3–1.5 s more, then stops it — SIGKILL and
SIGTERM in turn — and calls the test back while no worker runs, so the test can look at
what the dead (or stopped) worker left in the database. After a bounded number of rounds a
last worker runs until the work is done and is stopped with SIGTERM.

The random durations come from a seeded generator; the seed is printed, and
``SELFCARE_FAULT_SEED`` replays it (as far as timing on a shared machine allows).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from tests.integration.channels_support import Process, start_selfcare

WORKER_READY = "selfcare worker running"
WORKER_STOPPING = "worker stopping"  # logged once it took the SIGTERM in
WORKER_STOPPED = "selfcare worker stopped"
#: Waits on conditions: generous, the suite runs on 2 shared cores next to 3 xdist workers.
SETTLE_SECONDS = 120.0
RUN_SECONDS = (0.3, 1.5)


def fault_seed() -> int:
    """The seed of this run's random durations (``SELFCARE_FAULT_SEED`` replays one)."""
    given = os.environ.get("SELFCARE_FAULT_SEED")
    return int(given) if given else secrets.randbits(32)


@dataclass
class Round:
    """One worker's life: how it ended and for how long it worked."""

    number: int
    hard: bool  # SIGKILL (else SIGTERM)
    starting: float  # seconds from its start to its first request
    ran: float  # seconds between its first request and the signal
    requests: int  # requests the platform stubs saw during its life
    stopping: float  # seconds from the signal to its exit
    #: SIGTERM: requests the stubs saw after the worker said it was stopping (those that
    #: were on the wire then; nothing new may start).
    after_stopping: int = 0


async def until(condition: Callable[[], Awaitable[bool]], within: float = SETTLE_SECONDS) -> None:
    """Poll ``condition`` (the database, another process's work) until it holds."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 (nothing to wait on but polling)
            await asyncio.sleep(0.05)


async def _kill(worker: Process) -> None:
    if worker.process.returncode is None:
        worker.process.kill()
    await worker.process.wait()
    await worker.reader


async def _terminate(worker: Process, requests: Callable[[], int]) -> int:
    """SIGTERM (once: a second one during the exit would kill it), then wait for a clean
    exit; returns how many requests the stubs saw after the worker said it was stopping."""
    worker.process.send_signal(signal.SIGTERM)

    async def acknowledged() -> bool:
        return worker.process.returncode is not None or WORKER_STOPPING in worker.text

    try:
        await until(acknowledged)
        before = requests()
        async with asyncio.timeout(SETTLE_SECONDS):
            code = await worker.process.wait()
    except BaseException:
        await _kill(worker)
        raise
    await worker.reader
    assert code == 0, f"the worker did not stop cleanly ({code}):\n{worker.text}"
    assert WORKER_STOPPED in worker.text, worker.text
    return requests() - before


async def restart_rounds(
    env: dict[str, str],
    cwd: Path,
    *,
    seed: int,
    rounds: int,
    requests: Callable[[], int],
    done: Callable[[], Awaitable[bool]],
    after: Callable[[Round, Process], Awaitable[None]],
) -> list[Round]:
    """Up to ``rounds`` workers, each killed (even rounds: SIGKILL, odd: SIGTERM) a random
    while after its first request (``requests()`` counts what the stubs saw), then one that
    runs until ``done()``. ``after`` runs once each worker is gone, before the next starts.
    Every worker started is gone when this returns or raises."""
    rng = random.Random(seed)
    history: list[Round] = []
    for number in range(rounds):
        if await done():
            break
        hard = number % 2 == 0
        before = requests()
        spawned = time.monotonic()
        worker = await start_selfcare(env, "worker", cwd=cwd, ready=WORKER_READY)
        try:

            async def working(worker: Process = worker, before: int = before) -> bool:
                if worker.process.returncode is not None:
                    raise AssertionError("the worker exited by itself:\n" + worker.text)
                return requests() > before or await done()

            await until(working)
            started = time.monotonic()
            starting = started - spawned
            await asyncio.sleep(rng.uniform(*RUN_SECONDS))
            ran = time.monotonic() - started
        except BaseException:
            await _kill(worker)
            raise
        signalled = time.monotonic()
        after_stopping = 0
        if hard:
            await _kill(worker)
        else:
            after_stopping = await _terminate(worker, requests)
        stopping = time.monotonic() - signalled
        this = Round(number + 1, hard, starting, ran, requests() - before, stopping, after_stopping)
        history.append(this)
        await after(this, worker)
    last = await start_selfcare(env, "worker", cwd=cwd, ready=WORKER_READY)
    try:
        await until(done)
    except BaseException:
        await _kill(last)
        raise
    await _terminate(last, requests)
    return history


def describe(history: list[Round]) -> str:
    """The rounds for the test's printout."""
    return ", ".join(
        f"#{r.number} {'KILL' if r.hard else 'TERM'} {r.starting:.1f}s to its first request, "
        f"{r.ran:.2f}s on, gone in {r.stopping:.2f}s ({r.requests} requests"
        + ("" if r.hard else f", {r.after_stopping} after it said it was stopping")
        + ")"
        for r in history
    )
