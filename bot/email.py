"""Email senders (``core.ports.EmailSender``): SMTP, and a development stand-in.

:class:`SmtpEmail` sends through ``SELFCARE_SMTP_URL``: ``smtps://`` speaks TLS from the
start; ``smtp://`` upgrades with STARTTLS, which is required unless the server is on a
loopback address (a local relay). The standard library's client runs in a thread, off the
event loop. Nothing it logs holds the address in clear or the text (which holds a code).

:class:`DevelopmentEmail` sends nothing: it prints the message, code included, on standard
output (the server's log, or the terminal of ``selfcare shell``). :func:`email_sender`
only ever builds it when ``SELFCARE_ENV=development``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TextIO
from urllib.parse import unquote, urlsplit

from bot.settings import Settings
from core.masking import mask_email
from core.ports import DeliveryError

__all__ = ["DevelopmentEmail", "SmtpEmail", "email_sender"]

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpEmail:
    """Sends each message in its own SMTP session (codes are rare: no pool needed)."""

    def __init__(self, url: str, sender: str, *, tls_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("an SMTP URL is smtp://HOST[:PORT] or smtps://HOST[:PORT]")
        self._implicit_tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._implicit_tls else 587)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._tls = tls_context or ssl.create_default_context()

    def _message(self, to: str, subject: str, text: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        message.set_content(text)
        return message

    def _send_blocking(self, message: EmailMessage) -> None:
        client: smtplib.SMTP
        if self._implicit_tls:
            client = smtplib.SMTP_SSL(
                self._host, self._port, timeout=TIMEOUT_SECONDS, context=self._tls
            )
        else:
            client = smtplib.SMTP(self._host, self._port, timeout=TIMEOUT_SECONDS)
        with client:
            client.ehlo()
            if not self._implicit_tls:
                if client.has_extn("starttls"):
                    client.starttls(context=self._tls)
                    client.ehlo()
                elif not _is_loopback(self._host):
                    raise smtplib.SMTPNotSupportedError("the server offers no STARTTLS")
            if self._username is not None:
                client.login(self._username, self._password or "")
            client.send_message(message)

    async def send(self, to: str, subject: str, text: str) -> None:
        message = self._message(to, subject, text)
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except smtplib.SMTPRecipientsRefused:
            log.warning("email refused", extra={"to": mask_email(to)})
            raise DeliveryError("the SMTP server refused the recipient", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("email not sent", extra={"exc_type": type(exc).__name__})
            raise DeliveryError(f"SMTP failed: {type(exc).__name__}") from None
        log.info("email sent", extra={"to": mask_email(to)})

    async def close(self) -> None:
        return None


class DevelopmentEmail:
    """Prints each message instead of sending it (development only)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    async def send(self, to: str, subject: str, text: str) -> None:
        line = f"📧 Email to {mask_email(to)} (development, not sent): {subject}: {text}"
        out = self._out or sys.stdout
        await asyncio.to_thread(print, line, file=out, flush=True)

    async def close(self) -> None:
        return None


def email_sender(settings: Settings) -> SmtpEmail | DevelopmentEmail | None:
    """The sender the settings configure; None when emails cannot be sent."""
    if settings.smtp_url is not None:
        return SmtpEmail(settings.smtp_url.get_secret_value(), settings.email_from)
    if settings.env == "development":
        return DevelopmentEmail()
    return None
