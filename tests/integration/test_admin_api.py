"""The staff API over real HTTP on both databases: every route against every role and
no token, the audited customer lookup, and bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot import bootstrap
from bot.app import create_app
from bot.web import admin, admin_page
from core.domain import CampaignStatus, Channel, ChatLink, Customer, ProfileField, StaffRole
from core.services.corrections import request_correction
from core.services.staff import StaffService, hash_token
from storage import tables as t
from storage.uow import Database
from tests.integration import factories
from tests.integration.broadcast_support import DRAFT, add_customer, broadcast_values, settings_of

ROLES = (StaffRole.SUPPORT, StaffRole.MARKETER, StaffRole.ADMIN)


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]  # identity → token
    container: bootstrap.Container

    async def call(
        self, method: str, path: str, *, who: str | None, body: Any = None, raw: bytes | None = None
    ) -> ClientResponse:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        if raw is not None:
            headers["Content-Type"] = "application/json"
            return await self.client.request(method, path, data=raw, headers=headers)
        return await self.client.request(method, path, json=body, headers=headers)


@pytest.fixture
async def api(db: Database, database_url: str, keyring_path: Path) -> AsyncIterator[Api]:
    values = broadcast_values(database_url, keyring_path)
    container = await bootstrap.build(await asyncio.to_thread(settings_of, values))
    staff = StaffService(container.db.uow, container.clock)
    tokens: dict[str, str] = {}
    for role in ROLES:
        chat = "telegram:900100" if role is StaffRole.MARKETER else None
        await staff.add(role.value, [role], actor="test", chat=chat)
        tokens[role.value] = (await staff.issue_token(role.value, actor="test")).value
    await staff.add("target", [StaffRole.SUPPORT], actor="test")
    tokens["invalid"] = "sc_" + "A" * 43
    app = create_app(container, features=[admin.setup, admin_page.setup])
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Api(client, tokens, container)
    finally:
        await client.close()
        await container.close()


async def _campaign(api: Api) -> str:
    response = await api.call("POST", "/admin/api/campaigns", who="marketer", body=DRAFT)
    assert response.status == 201
    return str((await response.json())["id"])


async def _correction(api: Api, customer: Customer) -> str:
    async with api.container.db.uow() as uow:
        request = await request_correction(
            uow,
            customer,
            ProfileField.ADDRESS,
            "ที่อยู่ผิด ย้ายบ้านแล้ว",
            channel="line",
            now=api.container.clock.now(),
        )
        await uow.commit()
    return request.id


async def _example(api: Api, route: admin.AdminRoute) -> tuple[str, Any, int]:
    """A request each route answers with success for its role: (path, body, status)."""
    key = (route.method, route.path)
    customer = factories.customer()
    await factories.add_customers(api.container.db, customer)
    if "{campaign}" in route.path:
        path = route.path.replace("{campaign}", await _campaign(api))
    elif "{request}" in route.path:
        path = route.path.replace("{request}", await _correction(api, customer))
    else:
        path = route.path.replace("{handle}", "target")
    examples: dict[tuple[str, str], tuple[Any, int]] = {
        ("GET", "/admin/api/me"): (None, 200),
        ("POST", "/admin/api/customers/lookup"): (
            {"account_no": customer.account_no, "reason": "customer_request"},
            200,
        ),
        ("GET", "/admin/api/corrections"): (None, 200),
        ("POST", "/admin/api/corrections/{request}/resolve"): (
            {"note": "แก้ไขที่อยู่ในระบบแล้วค่ะ"},
            200,
        ),
        ("GET", "/admin/api/campaigns"): (None, 200),
        ("POST", "/admin/api/campaigns"): (DRAFT, 201),
        ("GET", "/admin/api/campaigns/{campaign}"): (None, 200),
        ("POST", "/admin/api/campaigns/{campaign}/preview"): (None, 202),
        ("POST", "/admin/api/campaigns/{campaign}/send"): (None, 202),
        ("POST", "/admin/api/campaigns/{campaign}/cancel"): (None, 200),
        ("GET", "/admin/api/staff"): (None, 200),
        ("POST", "/admin/api/staff"): ({"handle": "new.one", "roles": ["support"]}, 201),
        ("POST", "/admin/api/staff/{handle}/disable"): (None, 200),
        ("POST", "/admin/api/staff/{handle}/tokens"): ({"days": 30}, 201),
        ("GET", "/admin/api/audit"): (None, 200),
        ("GET", "/admin/api/audit/verify"): (None, 200),
    }
    assert key in examples, f"no example request for {key}: add one to this table"
    body, status = examples[key]
    return path, body, status


@pytest.mark.parametrize("route", admin.ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_every_route_refuses_no_token_and_the_wrong_role_and_serves_its_role(
    api: Api, route: admin.AdminRoute
) -> None:
    path, body, success = await _example(api, route)
    for who in (None, "invalid"):
        response = await api.call(route.method, path, who=who, body=body)
        assert response.status == 401, (who, await response.text())
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    allowed = set(ROLES) if route.role is None else {route.role}
    for role in sorted(set(ROLES) - allowed):
        response = await api.call(route.method, path, who=role.value, body=body)
        assert response.status == 403, (role, await response.text())
        assert (await response.json())["error"] == "forbidden"
    for role in sorted(allowed):
        response = await api.call(route.method, path, who=role.value, body=body)
        assert response.status == success, (role, await response.text())


# --- the lookup ------------------------------------------------------------------------------


async def _audit(api: Api) -> list[dict[str, Any]]:
    response = await api.call("GET", "/admin/api/audit?limit=500", who="admin")
    entries: list[dict[str, Any]] = (await response.json())["entries"]
    return entries


async def test_a_lookup_is_audited_with_who_what_when_why_and_no_personal_value(
    api: Api,
) -> None:
    customer = factories.customer()
    await factories.add_customers(api.container.db, customer)
    response = await api.call(
        "POST",
        "/admin/api/customers/lookup",
        who="support",
        body={"phone": customer.phone, "reason": "billing_dispute", "ticket": "CASE-2026-0042"},
    )
    assert response.status == 200
    found = await response.json()
    assert found["name"] == customer.name and found["address"] == customer.address
    assert found["national_id"].endswith(customer.national_id[-4:])
    assert customer.national_id not in json.dumps(found)

    (entry,) = [e for e in await _audit(api) if e["action"] == "customer.view"]
    assert entry["actor"] == "staff:support"
    assert entry["subject"] == customer.id
    assert entry["details"]["reason"] == "billing_dispute"
    assert entry["details"]["ticket"] == "CASE-2026-0042"
    assert "name" in entry["details"]["fields"]
    dumped = json.dumps(entry, ensure_ascii=False)
    for value in (customer.name, customer.phone, customer.address, customer.email):
        assert value not in dumped


async def test_the_lookup_is_on_record_before_anything_is_decrypted(api: Api) -> None:
    customer = factories.customer()
    await factories.add_customers(api.container.db, customer)
    async with api.container.db.engine.begin() as conn:  # a value that cannot be decrypted
        await conn.execute(
            update(t.customers)
            .where(t.customers.c.id == customer.id)
            .values(name_enc=b"\x01garbage-ciphertext-garbage-ciphertext")
        )
    response = await api.call(
        "POST",
        "/admin/api/customers/lookup",
        who="support",
        body={"account_no": customer.account_no, "reason": "customer_request"},
    )
    assert response.status == 500
    views = [e for e in await _audit(api) if e["action"] == "customer.view"]
    assert [e["subject"] for e in views] == [customer.id]


async def test_a_lookup_that_finds_nobody_is_recorded_too(api: Api) -> None:
    response = await api.call(
        "POST",
        "/admin/api/customers/lookup",
        who="support",
        body={"phone": "0899999999", "reason": "complaint"},
    )
    assert response.status == 404
    (miss,) = [e for e in await _audit(api) if e["action"] == "customer.lookup_miss"]
    assert miss["actor"] == "staff:support" and "0899999999" not in json.dumps(miss)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account_no": "1"}, "reason"),
        ({"account_no": "1", "reason": "curious"}, "reason"),
        ({"account_no": "1", "reason": "complaint", "ticket": "call 081-234-5678"}, "ticket"),
        ({"account_no": "1", "reason": "complaint", "ticket": "0812345678"}, "ticket"),
        ({"reason": "complaint"}, "query"),
        ({"account_no": 1001, "reason": "complaint"}, "account_no"),
        ({"account_no": "1", "phone": "0812345678", "reason": "complaint"}, "query"),
    ],
)
async def test_a_lookup_without_a_proper_reason_or_query_is_refused_and_not_run(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.call("POST", "/admin/api/customers/lookup", who="support", body=body)
    assert response.status == 422
    assert (await response.json())["field"] == field
    assert not [e for e in await _audit(api) if e["action"].startswith("customer.")]


# --- tokens ----------------------------------------------------------------------------------


async def test_a_disabled_member_and_a_revoked_or_expired_token_are_refused(api: Api) -> None:
    assert (await api.call("GET", "/admin/api/me", who="support")).status == 200
    response = await api.call("POST", "/admin/api/staff/support/disable", who="admin")
    assert response.status == 200
    assert (await api.call("GET", "/admin/api/me", who="support")).status == 401

    staff = StaffService(api.container.db.uow, api.container.clock)
    expiring = "sc_" + "e" * 43
    member = await staff.get("marketer")
    async with api.container.db.uow() as uow:
        now = api.container.clock.now()
        await uow.staff.add_token(
            member.id, hash_token(expiring), now - timedelta(days=2), now - timedelta(seconds=1)
        )
        await uow.commit()
    api.tokens["expired"] = expiring
    assert (await api.call("GET", "/admin/api/me", who="expired")).status == 401


async def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    async with api.container.db.engine.connect() as conn:
        stored = (await conn.execute(select(t.metadata.tables["staff_tokens"]))).mappings().all()
    blob = repr([dict(r) for r in stored]).encode()
    for token in api.tokens.values():
        assert token.encode() not in blob
    assert {bytes(r["token_hash"]) for r in stored} >= {
        hash_token(api.tokens[r.value]) for r in ROLES
    }


async def test_a_token_in_the_query_string_is_not_accepted(api: Api) -> None:
    response = await api.client.get(f"/admin/api/me?access_token={api.tokens['admin']}")
    assert response.status == 401


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2, 3]", 400),
        (b'"just a string"', 400),
        (b"", 400),
        (b"\xff\xfe", 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),  # nested too deep to decode
        (json.dumps({**DRAFT, "title": 42}).encode(), 422),
        (json.dumps({**DRAFT, "text_th": ["a"]}).encode(), 422),
        (json.dumps({**DRAFT, "link_url": "javascript:alert(1)"}).encode(), 422),
        (json.dumps({**DRAFT, "image_url": "http://example.co.th/a.png"}).encode(), 422),
        (json.dumps({**DRAFT, "text_en": "x" * 5000}).encode(), 422),
        (json.dumps({**DRAFT, "link_label_th": None}).encode(), 422),
        (b'{"title": "' + b"x" * (300 * 1024) + b'"}', 413),
    ],
)
async def test_bad_campaign_bodies_get_a_clear_4xx(api: Api, raw: bytes, status: int) -> None:
    response = await api.call("POST", "/admin/api/campaigns", who="marketer", raw=raw)
    assert response.status == status, await response.text()
    assert (await response.json())["error"]
    listed = await api.call("GET", "/admin/api/campaigns", who="marketer")
    assert (await listed.json())["campaigns"] == []


async def test_thai_emoji_and_sql_looking_text_are_kept_as_written(api: Api) -> None:
    body = {
        **DRAFT,
        "title": "'; DROP TABLE campaigns; -- โปร 🎉",
        "text_th": "ลด 50% ทุกแพ็กเกจ 🇹🇭🔥\nบรรทัดที่สอง",
    }
    response = await api.call("POST", "/admin/api/campaigns", who="marketer", body=body)
    assert response.status == 201
    campaign_id = (await response.json())["id"]
    async with api.container.db.uow() as uow:
        stored = await uow.campaigns.get(campaign_id)
    assert stored is not None
    assert (stored.title, stored.text_th) == (body["title"], body["text_th"])


async def test_an_unknown_or_malformed_campaign_id_is_404(api: Api) -> None:
    for campaign_id in ("0" * 32, "not-an-id", "%27%20OR%201%3D1"):
        response = await api.call("GET", f"/admin/api/campaigns/{campaign_id}", who="marketer")
        assert response.status == 404


async def test_two_concurrent_cancels_stop_the_campaign_once(api: Api) -> None:
    campaign_id = await _campaign(api)
    path = f"/admin/api/campaigns/{campaign_id}/cancel"
    first, second = await asyncio.gather(
        api.call("POST", path, who="marketer"), api.call("POST", path, who="marketer")
    )
    assert sorted([first.status, second.status]) == [200, 409]
    cancels = [e for e in await _audit(api) if e["action"] == "campaign.cancel"]
    assert len(cancels) == 1


async def test_sending_at_a_time_schedules_it_and_a_naive_time_is_refused(api: Api) -> None:
    campaign_id = await _campaign(api)
    path = f"/admin/api/campaigns/{campaign_id}/send"
    naive = await api.call("POST", path, who="marketer", body={"at": "2030-01-01T09:00"})
    assert naive.status == 422
    later = await api.call("POST", path, who="marketer", body={"at": "2030-01-01T09:00+07:00"})
    assert later.status == 202
    report = await later.json()
    assert report["status"] == CampaignStatus.SCHEDULED
    assert report["scheduled_at"].startswith("2030-01-01T02:00")


async def test_a_preview_needs_a_chat_on_record(api: Api) -> None:
    campaign_id = await _campaign(api)
    staff = StaffService(api.container.db.uow, api.container.clock)
    await staff.add("nochat", [StaffRole.MARKETER], actor="test")
    api.tokens["nochat"] = (await staff.issue_token("nochat", actor="test")).value
    response = await api.call("POST", f"/admin/api/campaigns/{campaign_id}/preview", who="nochat")
    assert response.status == 409


async def test_customer_linked_chats_are_listed_without_their_chat_ids(api: Api) -> None:
    recipient = await add_customer(api.container.db, channels=[Channel.TELEGRAM, Channel.LINE])
    async with api.container.db.uow() as uow:
        customer = await uow.customers.get(recipient.customer_id)
        links: list[ChatLink] = await uow.links.for_customer(recipient.customer_id)
    assert customer is not None and len(links) == 2
    response = await api.call(
        "POST",
        "/admin/api/customers/lookup",
        who="support",
        body={"account_no": customer.account_no, "reason": "customer_request"},
    )
    found = await response.json()
    assert {c["channel"] for c in found["linked_channels"]} == {"telegram", "line"}
    assert found["marketing_consent"] is True
    for chat_id in recipient.chats.values():
        assert chat_id not in json.dumps(found)


async def test_support_lists_open_corrections_on_record_and_resolves_each_once(api: Api) -> None:
    customer = factories.customer()
    await factories.add_customers(api.container.db, customer)
    request_id = await _correction(api, customer)
    listed = await api.call("GET", "/admin/api/corrections", who="support")
    (item,) = (await listed.json())["corrections"]
    assert (item["id"], item["account_no"], item["field"]) == (
        request_id,
        customer.account_no,
        "address",
    )
    assert item["text"] == "ที่อยู่ผิด ย้ายบ้านแล้ว"
    looks = [e for e in await _audit(api) if e["action"] == "correction.list"]
    assert [e["actor"] for e in looks] == ["staff:support"]

    path = f"/admin/api/corrections/{request_id}/resolve"
    empty = await api.call("POST", path, who="support", body={"note": " "})
    assert empty.status == 422
    done = await api.call("POST", path, who="support", body={"note": "แก้ไขแล้วค่ะ"})
    assert done.status == 200 and (await done.json())["resolved_by"] == "staff:support"
    again = await api.call("POST", path, who="support", body={"note": "แก้ไขแล้วค่ะ"})
    assert again.status == 409
    unknown = await api.call(
        "POST", "/admin/api/corrections/nope/resolve", who="support", body={"note": "abc"}
    )
    assert unknown.status == 404
