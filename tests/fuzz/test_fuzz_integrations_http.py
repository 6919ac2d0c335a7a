"""Fuzzing ``POST /integrations/events`` over HTTP: the real app on loopback (SQLite and
PostgreSQL), every request correctly signed with the official ``standardwebhooks`` package so
that the fuzz reaches validation and the use cases, not only the signature check.

Whatever JSON a billing or payment system posts, the answer is 200 (processed), 400 (not
JSON), 409 (a conflict) or 422 with each failing field's path, never a 5xx; and anything
but a 200 changes no customer, bill or payment.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz.strategies import INTEGRATION_EVENTS, any_json, budget, integration_events, to_body
from tests.integration.integrations_support import IntegrationApp, integration_app

_TABLES = ("customers", "service_accounts", "bills", "payments", "integration_inbox")


@pytest.fixture
async def app(database_url: str, keyring_path: Path) -> AsyncIterator[IntegrationApp]:
    async with integration_app(database_url, keyring_path) as running:
        yield running


async def _counts(app: IntegrationApp) -> dict[str, int]:
    return {table: await app.count(table) for table in _TABLES}


def _check_invalid(body: Any) -> None:
    assert body["error"] == "invalid_event" and body["message"]
    assert body["errors"], "a 422 names at least one field"
    for error in body["errors"]:
        assert isinstance(error["loc"], list)
        assert all(isinstance(part, str | int) for part in error["loc"])
        assert error["type"] and error["msg"]


_bodies = st.one_of(
    st.sampled_from(INTEGRATION_EVENTS).map(to_body),  # valid ones too: the 200 path
    integration_events.map(to_body),
    any_json.map(to_body),
    st.binary(max_size=200),
)


@given(body=_bodies)
@budget(80)
@example(body=b'{"type": "customer.deleted", "data": {"account_no": "0000"}}')
@example(body=b'{"type": "payment.reversed", "data": {"payment_id": "x", "reversed_at": 1}}')
@example(
    body='{"type": "bill.issued", "data": {"reference": "\ud800"}}'.encode(errors="surrogatepass")
)
async def test_any_signed_event_gets_200_400_409_or_422_with_field_paths(
    app: IntegrationApp, body: bytes
) -> None:
    before = await _counts(app)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None:
        # Standard Webhooks signs text: an undecodable body cannot be signed, and is 400.
        answer = await app.post(body, {"content-type": "application/json"})
        assert answer.status == 400, answer.body
        assert await _counts(app) == before
        return
    answer = await app.send(body)
    event(f"status {answer.status}")
    assert answer.status in (200, 400, 409, 422), answer.body
    if answer.status == 422:
        _check_invalid(answer.body)
    if answer.status == 200:
        assert answer.body["status"] == "processed"
        assert answer.body["type"] == json.loads(text)["type"]
    else:
        changed = await _counts(app)
        assert changed == before, "a refused event changed stored data"
