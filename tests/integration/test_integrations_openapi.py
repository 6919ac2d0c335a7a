"""The OpenAPI document: served, kept in docs/, its examples valid, and schemathesis finds
no 5xx and no answer outside it (bodies signed like a real sender's)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.web.integrations import EXAMPLES, openapi, render_openapi
from core.integration_events import INBOUND_EVENT_TYPES, parse_event
from tests.integration.integrations_support import integration_app, signed_headers

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations-openapi.json"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def test_the_document_in_docs_is_the_one_the_route_serves() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_openapi(), (
        "regenerate it: .venv/bin/python -m bot.web.integrations > docs/integrations-openapi.json"
    )


def test_every_event_type_has_a_valid_example() -> None:
    assert set(EXAMPLES) == set(INBOUND_EVENT_TYPES)
    for name, example in EXAMPLES.items():
        assert parse_event(json.dumps(example)).type == name


def test_the_document_says_money_is_integer_satang() -> None:
    document = openapi()
    assert "integer number of satang" in document["info"]["description"]
    amount = document["components"]["schemas"]["BillData"]["properties"]["amount_satang"]
    assert amount["type"] == "integer"


class ServerThread:
    """The app on loopback in a thread of its own (schemathesis calls it synchronously)."""

    def __init__(self, database_url: str, keyring_path: Path) -> None:
        self._args = (database_url, keyring_path)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced in start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with integration_app(*self._args) as app:
            self.url = app.url
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        assert self.url, "the server did not start"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def server(database_url: str, keyring_path: Path) -> Iterator[ServerThread]:
    running = ServerThread(database_url, keyring_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_the_route_serves_the_document(server: ServerThread) -> None:
    response = requests.get(server.url + "/integrations/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json() == openapi()


schema = schemathesis.openapi.from_dict(openapi())


def _is_json(value: object) -> bool:
    return value is None or isinstance(value, dict | list | str | int | float | bool)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_5xx_and_no_answer_outside_the_spec(case: Any, server: ServerThread) -> None:
    kwargs: dict[str, Any] = {}
    if case.method == "POST":
        # Signed like a real sender's, so schemathesis gets past the signature to the
        # validation and the use cases (unsigned requests are tested elsewhere).
        body = json.dumps(case.body).encode() if _is_json(case.body) else b""
        headers = dict(case.headers or {})
        headers.update(signed_headers(body))
        kwargs = {"headers": headers, "data": body}
    response = case.call(base_url=server.url, timeout=30, **kwargs)
    case.validate_response(response, checks=CHECKS)
