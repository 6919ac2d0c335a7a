"""Subscriber endpoints through the staff API on both databases: admin only, audited,
the secret shown once, clear 4xx for bad bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot import bootstrap
from bot.app import create_app
from bot.settings import load_settings
from bot.web import admin, integrations_admin
from core.domain import StaffRole
from core.integration_events import payment_recorded
from core.services.staff import StaffService
from storage import tables as t
from storage import tables_integrations as ti
from storage.uow import Database
from tests.integration.integrations_support import SECRET

ENDPOINTS = "/admin/api/integrations/endpoints"


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]
    container: bootstrap.Container

    async def call(
        self, method: str, path: str, *, who: str | None = "admin", body: Any = None
    ) -> ClientResponse:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        if isinstance(body, bytes):
            return await self.client.request(
                method, path, data=body, headers=headers | {"Content-Type": "application/json"}
            )
        return await self.client.request(method, path, json=body, headers=headers)


@pytest.fixture
async def api(db: Database, database_url: str, keyring_path: Path) -> AsyncIterator[Api]:
    settings = await asyncio.to_thread(
        load_settings, database_url=database_url, keyring_file=keyring_path, env="test"
    )
    container = await bootstrap.build(settings)
    staff = StaffService(container.db.uow, container.clock)
    tokens: dict[str, str] = {}
    for role in (StaffRole.ADMIN, StaffRole.SUPPORT):
        await staff.add(role.value, [role], actor="test")
        tokens[role.value] = (await staff.issue_token(role.value, actor="test")).value
    app = create_app(container, features=[admin.setup, integrations_admin.setup])
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Api(client, tokens, container)
    finally:
        await client.close()
        await container.close()


async def _audit_actions(api: Api) -> list[tuple[str, str]]:
    async with api.container.db.engine.connect() as conn:
        rows = await conn.execute(
            select(t.audit_log.c.actor, t.audit_log.c.action)
            .where(t.audit_log.c.action.like("webhook%"))
            .order_by(t.audit_log.c.id)
        )
        return [(actor, action) for actor, action in rows]


async def test_an_admin_adds_lists_and_removes_an_endpoint_and_each_change_is_audited(
    api: Api,
) -> None:
    created = await api.call(
        "POST",
        ENDPOINTS,
        body={"url": "https://crm.example.co.th/hooks", "events": ["payment.recorded"]},
    )
    body = await created.json()
    listed = await (await api.call("GET", ENDPOINTS)).json()
    removed = await api.call("DELETE", f"{ENDPOINTS}/{body['id']}")
    again = await api.call("DELETE", f"{ENDPOINTS}/{body['id']}")

    assert created.status == 201 and created.headers["Location"].endswith(body["id"])
    assert body["secret"].startswith("whsec_") and body["events"] == ["payment.recorded"]
    (entry,) = listed["endpoints"]
    assert entry["id"] == body["id"] and "secret" not in entry
    assert entry["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    assert (removed.status, again.status) == (204, 404)
    assert await _audit_actions(api) == [
        ("staff:admin", "webhook_endpoint.add"),
        ("staff:admin", "webhook_endpoint.remove"),
    ]


async def test_only_admins_and_only_with_a_token(api: Api) -> None:
    body = {"url": "https://crm.example.co.th/hooks", "events": "*"}
    for route in integrations_admin.ADMIN_ROUTES:
        path = route.path.replace("{endpoint}", "nope")
        assert (await api.call(route.method, path, who=None, body=body)).status == 401
        assert (await api.call(route.method, path, who="support", body=body)).status == 403


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{oops", 400, None),
        ({"events": ["payment.recorded"]}, 422, "url"),
        ({"url": "http://crm.example.co.th/x", "events": ["*"]}, 422, "url"),
        ({"url": "https://crm.example.co.th/x", "events": ["invoice.paid"]}, 422, "events"),
        ({"url": "https://crm.example.co.th/x", "events": [1]}, 422, "events"),
        ({"url": "https://crm.example.co.th/x", "events": "*", "secret": "abc"}, 422, "secret"),
        ({"url": "https://crm.example.co.th/x", "events": "*", "allow_http": "yes"}, 422, None),
    ],
)
async def test_a_bad_endpoint_gets_a_clear_4xx_and_nothing_is_stored(
    api: Api, body: Any, status: int, field: str | None
) -> None:
    response = await api.call("POST", ENDPOINTS, body=body)

    assert response.status == status
    if field:
        assert (await response.json())["field"] == field
    assert (await (await api.call("GET", ENDPOINTS)).json())["endpoints"] == []


async def test_an_admin_replays_dead_deliveries(api: Api) -> None:
    created = await (
        await api.call(
            "POST",
            ENDPOINTS,
            body={"url": "http://127.0.0.1:9/hooks", "events": "*", "secret": SECRET},
        )
    ).json()
    db = api.container.db
    async with db.uow() as uow:
        event = payment_recorded(
            payment_id="P1",
            account_no="1000000001",
            bill_reference="B1",
            matched=False,
            amount_satang=100,
            applied_satang=0,
            excess_satang=0,
            bill_amount_satang=None,
            bill_paid_satang=None,
            outstanding_satang=None,
            bill_status=None,
            method="promptpay",
            paid_at=api.container.clock.now(),
        )
        await uow.events.publish(event, occurred_at=api.container.clock.now())
        await uow.commit()
    async with db.engine.begin() as conn:
        await conn.execute(update(ti.webhook_deliveries).values(status="dead"))

    nothing = await api.call("POST", "/admin/api/integrations/replay", body={})
    unknown = await api.call("POST", "/admin/api/integrations/replay", body={"endpoint_id": "nope"})
    replayed = await api.call(
        "POST", "/admin/api/integrations/replay", body={"dead": True, "endpoint_id": created["id"]}
    )

    assert (nothing.status, unknown.status) == (422, 404)
    assert replayed.status == 200 and (await replayed.json()) == {"queued": 1}
    listed = await (await api.call("GET", ENDPOINTS)).json()
    assert listed["endpoints"][0]["deliveries"] == {"pending": 1, "delivered": 0, "dead": 0}
