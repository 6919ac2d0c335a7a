"""Helpers for the integration tests: the web app on loopback with signing secrets, events
signed with the official ``standardwebhooks`` package, event payload factories, and a
subscriber that verifies what it receives with the same package."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select
from standardwebhooks import Webhook, WebhookVerificationError

from bot import bootstrap
from bot.app import create_app
from bot.bootstrap import Container
from bot.settings import load_settings
from bot.web import integrations
from storage import migrate
from storage import tables as t

SECRET = "whsec_" + base64.b64encode(b"billing-system-secret-0123456789").decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"the-rotated-secret-abcdefghijklm").decode()
STRANGER_SECRET = "whsec_" + base64.b64encode(b"nobody-we-know-about-0123456789a").decode()

_ids = itertools.count(1)
_serial = itertools.count(1)


def signed_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    webhook_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed by the official library."""
    msg_id = webhook_id or f"msg_test_{next(_ids)}"
    moment = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, moment, body.decode()),
    }


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class IntegrationApp:
    url: str
    container: Container
    session: aiohttp.ClientSession

    async def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        async with self.session.post(
            self.url + "/integrations/events", data=body, headers=headers
        ) as response:
            text = await response.text()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text
            return Answer(response.status, parsed, dict(response.headers))

    async def send(
        self,
        event: dict[str, Any] | bytes,
        *,
        webhook_id: str | None = None,
        secret: str = SECRET,
        at: datetime | None = None,
    ) -> Answer:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        return await self.post(
            body, signed_headers(body, secret=secret, webhook_id=webhook_id, at=at)
        )

    async def count(self, table: str) -> int:
        async with self.container.db.engine.connect() as conn:
            query = select(func.count()).select_from(t.metadata.tables[table])
            return int((await conn.execute(query)).scalar_one())


@contextlib.asynccontextmanager
async def integration_app(
    database_url: str, keyring_path: Path, *, secrets: str = SECRET, **overrides: Any
) -> AsyncIterator[IntegrationApp]:
    """The app with the integration routes on 127.0.0.1, as ``selfcare serve`` builds it."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "keyring_file": keyring_path,
        "env": "test",
        "integration_secrets": secrets,
        **overrides,
    }
    settings = await asyncio.to_thread(load_settings, **values)  # reads .env
    await migrate.upgrade(database_url)
    container = await bootstrap.build(settings)
    runner = web.AppRunner(create_app(container, features=[integrations.setup]), access_log=None)
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            yield IntegrationApp(f"http://127.0.0.1:{port}", container, session)
    finally:
        await runner.cleanup()
        await container.close()


# --- event payloads --------------------------------------------------------------------------


def customer_data(**overrides: Any) -> dict[str, Any]:
    n = next(_serial)
    data: dict[str, Any] = {
        "account_no": f"{3_000_000_000 + n}",
        "name": f"นางสาวทดสอบ ลำดับที่{n} 🌸",
        "address": f"{n}/7 ถนนพหลโยธิน แขวงลาดยาว เขตจตุจักร กรุงเทพมหานคร 10900",
        "phone": f"08{n:08d}",
        "email": f"customer.{n}@example.co.th",
        "language": "th",
    }
    data["service_accounts"] = [{"number": data["phone"], "kind": "mobile", "plan": "เน็ต 599"}]
    data.update(overrides)
    return data


def bill_data(customer: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "reference": f"T{next(_serial):010d}",
        "account_no": customer["account_no"],
        "service_number": customer["service_accounts"][0]["number"],
        "period_start": "2099-10-01",
        "period_end": "2099-10-31",
        "issued_on": "2099-11-01",
        "due_on": "2099-12-01",
        "amount_satang": 64_093,
    }
    data.update(overrides)
    return data


def payment_data(bill: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "payment_id": f"KBANK-{next(_serial):08d}",
        "amount_satang": bill["amount_satang"],
        "paid_at": "2026-11-25T10:04:00+07:00",
        "ref1": bill["account_no"],
        "ref2": bill["reference"],
        "method": "promptpay",
    }
    data.update(overrides)
    return data


def event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "timestamp": "2026-11-25T03:04:05Z", "data": data}


# --- a subscriber ------------------------------------------------------------------------------


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]


@dataclass
class Subscriber:
    """A receiver on loopback that verifies every request with ``standardwebhooks`` and
    answers with the next status of ``script`` (then 200)."""

    secret: str
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    attempts: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    on_request: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/selfcare"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.refused += 1
            return web.Response(status=401)
        self.attempts.append(request.headers["webhook-id"])
        status = self.script.pop(0) if self.script else 200
        if 200 <= status < 300:
            self.received.append(Received(request.headers["webhook-id"], payload))
        return web.Response(status=status)

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/hooks/selfcare", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


class SteppingClock:
    """A clock that starts at the real time and moves only when told (retry schedules);
    signatures still carry the wall-clock time receivers check."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def customer_line(n: int) -> dict[str, Any]:
    """The ``n``-th customer of a generated import file (unique account and number)."""
    return {
        "account_no": f"{5_000_000_000 + n}",
        "name": f"นายทดสอบ นำเข้า{n}",
        "address": f"{n}/1 ถนนสุขุมวิท แขวงคลองตันเหนือ เขตวัฒนา กรุงเทพมหานคร 10110",
        "phone": f"06{n:08d}",
        "email": f"import.{n}@example.co.th",
        "language": "th" if n % 3 else "en",
        "service_accounts": [{"number": f"06{n:08d}", "kind": "mobile", "plan": "เน็ต 599"}],
    }


def write_customers_file(path: Path, count: int, bad: dict[int, bytes] | None = None) -> None:
    """``count`` lines of customers; line numbers in ``bad`` get that content instead
    (blocking file I/O: call in a thread)."""
    bad = bad or {}
    with path.open("wb") as out:
        for number in range(1, count + 1):
            line = bad.get(number)
            if line is None:
                line = json.dumps(customer_line(number), ensure_ascii=False).encode()
            out.write(line + b"\n")
