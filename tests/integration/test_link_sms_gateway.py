"""The SMS senders: the HTTP gateway adapter against a stub gateway on loopback, and which
sender the settings choose (the development stand-in never outside development)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.settings import load_settings
from bot.sms import DevelopmentSms, HttpSmsGateway, sms_sender
from core.ports import DeliveryError
from tests.stubs.server import StubServer

TEXT = "123456 คือรหัสเชื่อมแชตของ ExampleTel ใช้ได้ 5 นาที"


class GatewayStub(StubServer):
    def __init__(self) -> None:
        app = web.Application()
        app.router.add_post("/send", self._send)
        super().__init__(app)
        self.received: list[tuple[dict[str, Any], str]] = []
        self.answer = 202
        self.retry_after: str | None = None

    async def _send(self, request: web.Request) -> web.Response:
        self.received.append((await request.json(), request.headers.get("Authorization", "")))
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        return web.json_response({"ok": self.answer < 300}, status=self.answer, headers=headers)


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayStub]:
    stub = GatewayStub()
    await stub.start()
    try:
        yield stub
    finally:
        await stub.close()


async def test_the_gateway_gets_the_number_in_e164_the_text_and_the_token(
    gateway: GatewayStub, caplog: pytest.LogCaptureFixture
) -> None:
    sender = HttpSmsGateway(gateway.url + "/send", "tok-123")
    caplog.set_level(logging.INFO)
    try:
        await sender.send("0812345678", TEXT)
    finally:
        await sender.close()
    ((body, auth),) = gateway.received
    assert body == {"to": "+66812345678", "text": TEXT}
    assert auth == "Bearer tok-123"
    logged = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert "0812345678" not in logged and "123456" not in logged


@pytest.mark.parametrize(
    ("status", "retry_after", "permanent", "wait"),
    [(429, "7", False, 7.0), (503, None, False, None), (400, None, True, None)],
)
async def test_a_refusal_is_a_delivery_error_saying_whether_to_retry(
    gateway: GatewayStub, status: int, retry_after: str | None, permanent: bool, wait: float | None
) -> None:
    gateway.answer, gateway.retry_after = status, retry_after
    sender = HttpSmsGateway(gateway.url + "/send")
    try:
        with pytest.raises(DeliveryError) as refused:
            await sender.send("0812345678", TEXT)
    finally:
        await sender.close()
    assert (refused.value.permanent, refused.value.retry_after) == (permanent, wait)
    assert "0812345678" not in str(refused.value) and TEXT not in str(refused.value)


async def test_an_unreachable_gateway_is_a_delivery_error() -> None:
    sender = HttpSmsGateway("http://127.0.0.1:9/send")
    try:
        with pytest.raises(DeliveryError, match="unreachable"):
            await sender.send("0812345678", TEXT)
    finally:
        await sender.close()


async def test_the_development_stand_in_prints_the_code_with_the_number_masked() -> None:
    out = io.StringIO()
    await DevelopmentSms(out).send("0812345678", TEXT)
    assert out.getvalue() == f"📱 SMS to 08x-xxx-5678 (development, not sent): {TEXT}\n"


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ("development", None, DevelopmentSms),
        ("test", None, type(None)),
        ("production", None, type(None)),
        ("production", "https://sms.example/send", HttpSmsGateway),
        ("development", "https://sms.example/send", HttpSmsGateway),
    ],
)
def test_the_settings_choose_the_sender(env: str, url: str | None, expected: type) -> None:
    settings = load_settings(env=env, sms_gateway_url=url, _env_file=None)
    assert type(sms_sender(settings)) is expected


def test_a_gateway_url_that_is_no_url_is_refused() -> None:
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="SELFCARE_SMS_GATEWAY_URL"):
        load_settings(sms_gateway_url="sms.example", _env_file=None)
