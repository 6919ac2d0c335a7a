"""The email port's adapters: SMTP against a real SMTP server on loopback (aiosmtpd), and
the development stand-in that prints the code; which one the settings build."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from bot.email import DevelopmentEmail, SmtpEmail, email_sender
from bot.settings import SettingsError, load_settings
from core.ports import DeliveryError

TEXT = "123456 คือรหัสยืนยันอีเมลนี้ ใช้ได้ภายใน 10 นาทีค่ะ"


@dataclass
class Mailbox:
    """An SMTP server's handler: keeps what it accepted, refuses one address."""

    received: list[Envelope] = field(default_factory=list)
    refuse: str = "nobody@example.com"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == self.refuse:
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 Message accepted"


@dataclass
class Server:
    mailbox: Mailbox
    port: int
    logins: list[tuple[str, str]]


def _authenticator(logins: list[tuple[str, str]]) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret")

    return check


@pytest.fixture
async def smtp_server() -> AsyncIterator[Server]:
    mailbox = Mailbox()
    logins: list[tuple[str, str]] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            mailbox,
            hostname="mail.test",
            auth_require_tls=False,  # loopback only: the adapter allows plain SMTP there
            authenticator=_authenticator(logins),
        ),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield Server(mailbox, port, logins)
    finally:
        server.close()
        await server.wait_closed()


async def test_smtp_delivers_a_utf8_message_with_its_headers(smtp_server: Server) -> None:
    sender = SmtpEmail(f"smtp://127.0.0.1:{smtp_server.port}", "no-reply@example.co.th")
    await sender.send("Somying@Example.com", "รหัสยืนยันจาก ตัวอย่าง เทเลคอม", TEXT)
    (envelope,) = smtp_server.mailbox.received
    assert envelope.mail_from == "no-reply@example.co.th"
    assert envelope.rcpt_tos == ["Somying@Example.com"]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "รหัสยืนยันจาก ตัวอย่าง เทเลคอม"
    assert message["From"] == "no-reply@example.co.th" and message["Message-ID"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == TEXT


async def test_smtp_signs_in_with_the_credentials_of_the_url(smtp_server: Server) -> None:
    sender = SmtpEmail(
        f"smtp://mailer%40example.co.th:s3cret@127.0.0.1:{smtp_server.port}", "a@example.co.th"
    )
    await sender.send("b@example.com", "s", "t")
    assert smtp_server.logins == [("mailer@example.co.th", "s3cret")]


async def test_a_refused_recipient_is_a_permanent_failure(smtp_server: Server) -> None:
    sender = SmtpEmail(f"smtp://127.0.0.1:{smtp_server.port}", "a@example.co.th")
    with pytest.raises(DeliveryError) as failed:
        await sender.send("nobody@example.com", "s", "t")
    assert failed.value.permanent
    assert "nobody" not in str(failed.value)


async def test_an_unreachable_server_is_a_delivery_error() -> None:
    probe = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    sender = SmtpEmail(f"smtp://127.0.0.1:{port}", "a@example.co.th")
    with pytest.raises(DeliveryError) as failed:
        await sender.send("b@example.com", "s", "t")
    assert not failed.value.permanent


async def test_development_prints_the_code_with_the_address_masked() -> None:
    out = io.StringIO()
    await DevelopmentEmail(out).send("somying@example.com", "Your code", TEXT)
    line = out.getvalue()
    assert "s***@example.com" in line and "123456" in line
    assert "somying@" not in line


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ("development", None, DevelopmentEmail),
        ("test", None, type(None)),
        ("production", None, type(None)),
        ("test", "smtps://u:p@mail.example.co.th:465", SmtpEmail),
        ("development", "smtp://mail.example.co.th", SmtpEmail),
    ],
)
async def test_the_settings_choose_the_sender(env: str, url: str | None, expected: type) -> None:
    values: dict[str, object] = {"env": env}
    if url is not None:
        values["smtp_url"] = url
    settings = await asyncio.to_thread(load_settings, **values)
    assert isinstance(email_sender(settings), expected)


@pytest.mark.parametrize(
    "url", ["http://mail.example.com", "smtp://", "smtp://a@b@c", "mail.example.com:25"]
)
async def test_a_bad_smtp_url_is_refused_at_start(url: str) -> None:
    with pytest.raises(SettingsError) as refused:
        await asyncio.to_thread(load_settings, smtp_url=url)
    assert str(refused.value).startswith("SELFCARE_SMTP_URL:")
