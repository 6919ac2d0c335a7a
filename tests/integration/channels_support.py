"""The real web app on loopback, wired to the Telegram and LINE stubs, for channel tests.

``running_app`` builds the container from settings (as ``selfcare serve`` does), starts
``bot.app.create_app`` on 127.0.0.1 and hands back a client that posts webhooks the way
the platforms do. ``idle()`` waits for the replies the app sends after answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from bot import bootstrap
from bot.app import METRICS, create_app, default_features
from bot.bootstrap import Container
from bot.settings import load_settings
from bot.web.webhooks import LINE_SIGNATURE_HEADER, TELEGRAM_SECRET_HEADER, WEBHOOKS
from storage import migrate
from storage import tables as t
from tests.stubs import line as line_stub
from tests.stubs.line import LineStub
from tests.stubs.telegram import TelegramStub

# Import every feature's web module now (collection time): some read files when imported,
# which blockbuster would refuse inside the test's event loop.
default_features()

SECRET = "s3cret-token_for_tests"
PUBLIC_URL = "https://selfcare.test"


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass
class Reply:
    status: int
    body: Any


@dataclass
class RunningApp:
    url: str
    app: web.Application
    container: Container
    session: aiohttp.ClientSession

    async def idle(self) -> None:
        """Wait until every reply the app started sending is sent (or failed)."""
        await self.app[WEBHOOKS].tasks.wait_idle()

    async def post(self, path: str, data: bytes, headers: dict[str, str]) -> Reply:
        async with self.session.post(self.url + path, data=data, headers=headers) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            return Reply(response.status, body)

    async def telegram(
        self, update: dict[str, Any] | bytes, *, secret: str | None = SECRET
    ) -> Reply:
        raw = update if isinstance(update, bytes) else json.dumps(update).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[TELEGRAM_SECRET_HEADER] = secret
        return await self.post("/webhooks/telegram", raw, headers)

    async def line(
        self, *events: dict[str, Any], raw: bytes | None = None, signature: str | None = ""
    ) -> Reply:
        body = raw if raw is not None else line_stub.body(*events)
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[LINE_SIGNATURE_HEADER] = signature or line_stub.sign(body)
        return await self.post("/webhooks/line", body, headers)

    async def count(self, table: str) -> int:
        async with self.container.db.engine.connect() as conn:
            query = select(func.count()).select_from(t.metadata.tables[table])
            return int((await conn.execute(query)).scalar_one())

    def metric(self, name: str, **labels: str) -> float:
        value = self.app[METRICS].registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@contextlib.asynccontextmanager
async def running_app(
    database_url: str,
    keyring_path: Path,
    *,
    telegram: TelegramStub | None = None,
    line: LineStub | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningApp]:
    values: dict[str, Any] = {
        "database_url": database_url,
        "keyring_file": keyring_path,
        "env": "test",
        "public_url": PUBLIC_URL,
        # Tests talk fast to one chat; the pacing itself is tested on its own.
        "telegram_chat_messages_per_second": 1000,
    }
    if telegram is not None:
        values.update(
            telegram_token=telegram.token,
            telegram_secret_token=SECRET,
            telegram_api_url=telegram.base_url,
        )
    if line is not None:
        values.update(
            line_channel_secret=line_stub.CHANNEL_SECRET,
            line_channel_access_token=line_stub.ACCESS_TOKEN,
            line_api_url=line.url,
        )
    values.update(overrides)
    settings = await asyncio.to_thread(load_settings, **values)  # reads .env
    await migrate.upgrade(database_url)
    container = await bootstrap.build(settings)
    runner = web.AppRunner(create_app(container), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            yield RunningApp(f"http://127.0.0.1:{port}", runner.app, container, session)
    finally:
        await runner.cleanup()
        await container.close()


@contextlib.asynccontextmanager
async def telegram_stub() -> AsyncIterator[TelegramStub]:
    stub = TelegramStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


@contextlib.asynccontextmanager
async def line_api_stub() -> AsyncIterator[LineStub]:
    stub = LineStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


# --- `selfcare serve` and `selfcare worker` in subprocesses -----------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """A ``selfcare`` subprocess whose output is collected as it runs."""

    process: asyncio.subprocess.Process
    output: list[str]
    reader: asyncio.Task[None]

    @property
    def text(self) -> str:
        return "\n".join(self.output)

    async def wait_for(self, text: str, within: float = 60) -> None:
        """Wait until a line of output contains ``text`` (fails if the process ends
        first)."""
        async with asyncio.timeout(within):
            while not any(text in line for line in self.output):
                if self.reader.done():
                    raise AssertionError(f"exited before {text!r}:\n{self.text}")
                await asyncio.sleep(0.05)  # the reader task collects the output

    async def stop(self, grace_seconds: float = 60) -> int:
        """SIGTERM, then wait for the exit code (killed after ``grace_seconds``)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace_seconds):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self.reader
        return code


async def start_selfcare(
    env: dict[str, str], *args: str, cwd: Path, ready: str | None, start_seconds: float = 90
) -> Process:
    """Start ``python -m bot ARGS`` in ``cwd``; with ``ready``, wait until a line of
    output contains it (raises with the output if the process ends first)."""
    await asyncio.to_thread(cwd.mkdir, parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=cwd,
    )
    output: list[str] = []
    seen = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            output.append(line)
            if ready is not None and ready in line:
                seen.set()
        seen.set()

    reader = asyncio.create_task(read())
    running = Process(process, output, reader)
    if ready is not None:
        try:
            async with asyncio.timeout(start_seconds):
                await seen.wait()
        except TimeoutError:
            await running.stop()
            raise AssertionError("selfcare did not start:\n" + running.text) from None
        if not any(ready in line for line in output):
            await running.stop()
            raise AssertionError("selfcare exited:\n" + running.text)
    return running


def channel_env(
    base: dict[str, str], *, telegram: TelegramStub | None = None, line: LineStub | None = None
) -> dict[str, str]:
    """``base`` plus the settings pointing the process at the stubs."""
    env = dict(base)
    env["SELFCARE_PUBLIC_URL"] = PUBLIC_URL
    env["SELFCARE_TELEGRAM_CHAT_MESSAGES_PER_SECOND"] = "1000"
    if telegram is not None:
        env.update(
            SELFCARE_TELEGRAM_TOKEN=telegram.token,
            SELFCARE_TELEGRAM_SECRET_TOKEN=SECRET,
            SELFCARE_TELEGRAM_API_URL=telegram.base_url,
        )
    if line is not None:
        env.update(
            SELFCARE_LINE_CHANNEL_SECRET=line_stub.CHANNEL_SECRET,
            SELFCARE_LINE_CHANNEL_ACCESS_TOKEN=line_stub.ACCESS_TOKEN,
            SELFCARE_LINE_API_URL=line.url,
        )
    return env


def insecure_client_context() -> ssl.SSLContext:
    """TLS for talking to a development certificate (not verified)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
