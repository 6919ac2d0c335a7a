"""SMS senders (``core.ports.SmsSender``): an HTTP gateway, and a development stand-in.

:class:`HttpSmsGateway` posts ``{"to": "+66812345678", "text": "…"}`` as JSON with a bearer
token to ``SELFCARE_SMS_GATEWAY_URL``; any 2xx is success, 429 and 5xx are worth a retry
later (``DeliveryError.retry_after``), other 4xx are not. Nothing it logs holds the
number in clear or the text (which holds the code).

:class:`DevelopmentSms` sends nothing: it prints the message, code included, on standard
output (the server's log, or the terminal of ``selfcare shell``). :func:`sms_sender` only
ever builds it when ``SELFCARE_ENV=development``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO

import aiohttp

from bot.settings import Settings
from core.masking import mask_phone
from core.ports import DeliveryError

__all__ = ["DevelopmentSms", "HttpSmsGateway", "sms_sender"]

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10


def international(phone: str) -> str:
    """``0812345678`` → ``+66812345678`` (E.164, what gateways expect)."""
    return "+66" + phone.removeprefix("0")


class HttpSmsGateway:
    """Posts each message to an HTTP SMS gateway. Its HTTP session opens on first use and
    closes with :meth:`close`."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self._url = url
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def send(self, phone: str, text: str) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            async with self._session.post(
                self._url, json={"to": international(phone), "text": text}, headers=headers
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sms gateway unreachable", extra={"exc_type": type(exc).__name__})
            raise DeliveryError(f"SMS gateway unreachable: {type(exc).__name__}") from None
        if 200 <= status < 300:
            log.info("sms sent", extra={"to": mask_phone(phone)})
            return
        log.warning("sms refused", extra={"to": mask_phone(phone), "status": status})
        retry = float(retry_after) if retry_after.isdigit() else None
        raise DeliveryError(
            f"SMS gateway answered {status}",
            retry_after=retry,
            permanent=400 <= status < 500 and status != 429,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class DevelopmentSms:
    """Prints each message instead of sending it (development only)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    async def send(self, phone: str, text: str) -> None:
        line = f"📱 SMS to {mask_phone(phone)} (development, not sent): {text}"
        out = self._out or sys.stdout
        await asyncio.to_thread(print, line, file=out, flush=True)

    async def close(self) -> None:
        return None


def sms_sender(settings: Settings) -> HttpSmsGateway | DevelopmentSms | None:
    """The sender the settings configure; None when codes cannot be sent."""
    if settings.sms_gateway_url:
        token = settings.sms_gateway_token
        return HttpSmsGateway(
            settings.sms_gateway_url, token.get_secret_value() if token is not None else None
        )
    if settings.env == "development":
        return DevelopmentSms()
    return None
