"""A webhook sender that behaves like Telegram, for the fault suite.

Telegram delivers a bot's updates to its webhook one chat at a time: it posts an update,
and until it gets a 2xx it posts the *same* update again (any other status, a reset, a
timeout) with growing pauses; the chat's next update waits. Several chats are delivered
at once. ``TelegramLikeSender`` does exactly that against N ``selfcare serve`` processes,
picking the next process for each attempt (a round-robin load balancer in front of them),
and records every attempt so a test can say what the platform saw during a fault.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.web.webhooks import TELEGRAM_SECRET_HEADER
from tests.integration.channels_support import insecure_client_context
from tests.stubs import telegram as updates

WEBHOOK_PATH = "/webhooks/telegram"
FIRST_BACKOFF = 0.05  # seconds before the first retry; doubles up to ``max_backoff``
ATTEMPT_TIMEOUT = 30.0  # a request that hangs longer counts as failed (Telegram gives up too)


@dataclass
class Attempt:
    update_id: int
    chat_id: int
    url: str  # the server tried
    status: int | None  # HTTP status, or None when the connection failed
    error: str | None  # exception type name when the connection failed

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class UpdateNotAccepted(AssertionError):
    """An update was still refused after ``give_up_after`` seconds of retries."""


class TelegramLikeSender:
    """Posts Telegram updates the way Telegram does: each update retried (any non-2xx, or a
    connection error) with exponential back-off + jitter until a 2xx; one chat's updates strictly
    one after another; several chats at once; each attempt goes to the next server URL
    round-robin (like a load balancer in front of N web processes)."""

    def __init__(
        self,
        urls: list[str],
        secret: str,
        *,
        first_update_id: int = 1,
        max_backoff: float = 2.0,
        give_up_after: float = 120.0,
    ) -> None:
        if not urls:
            raise ValueError("at least one server URL")
        self.urls = list(urls)
        self.secret = secret
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self.attempts: list[Attempt] = []
        self.accepted: list[int] = []  # update ids, in the order they were accepted
        self._update_ids = itertools.count(first_update_id)
        self._created: list[int] = []
        self._next_url = itertools.cycle(self.urls)
        self._progress = asyncio.Condition()

    def update_ids(self) -> list[int]:
        """Every update id this sender created (across all ``run`` calls)."""
        return list(self._created)

    def failures(self) -> list[Attempt]:
        """Attempts that were not accepted (each one was retried)."""
        return [a for a in self.attempts if not a.accepted]

    async def wait_accepted(self, count: int, within: float = 120.0) -> None:
        """Wait until ``count`` updates in all were accepted (to time a fault mid-load)."""
        async with asyncio.timeout(within), self._progress:
            await self._progress.wait_for(lambda: len(self.accepted) >= count)

    async def run(self, scripts: Mapping[int, Sequence[str]]) -> None:
        """Send every chat's texts (chat id -> texts) as message updates; return when all were
        accepted (raises if one was not accepted after give_up_after seconds)."""
        connector = aiohttp.TCPConnector(ssl=insecure_client_context(), limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                async with asyncio.TaskGroup() as group:
                    for chat_id, texts in scripts.items():
                        group.create_task(self._send_chat(session, chat_id, texts))
            except* UpdateNotAccepted as refused:  # the first one; the others were cancelled
                raise refused.exceptions[0] from None

    async def _send_chat(
        self, session: aiohttp.ClientSession, chat_id: int, texts: Sequence[str]
    ) -> None:
        for value in texts:  # the next update only once this one is accepted
            update_id = next(self._update_ids)
            self._created.append(update_id)
            update = updates.text(chat_id, value, update_id=update_id)
            await self._deliver(session, chat_id, update_id, json.dumps(update).encode())

    async def _deliver(
        self, session: aiohttp.ClientSession, chat_id: int, update_id: int, body: bytes
    ) -> None:
        deadline = time.monotonic() + self.give_up_after
        backoff = FIRST_BACKOFF
        while True:
            url = next(self._next_url)
            attempt = await self._attempt(session, url, chat_id, update_id, body)
            self.attempts.append(attempt)
            if attempt.accepted:
                async with self._progress:
                    self.accepted.append(update_id)
                    self._progress.notify_all()
                return
            if time.monotonic() >= deadline:
                raise UpdateNotAccepted(
                    f"update {update_id} (chat {chat_id}) not accepted after "
                    f"{self.give_up_after:.0f}s; last attempt: {attempt}"
                )
            # Full jitter keeps retries of many chats from arriving in lockstep.
            await asyncio.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, self.max_backoff)

    async def _attempt(
        self, session: aiohttp.ClientSession, url: str, chat_id: int, update_id: int, body: bytes
    ) -> Attempt:
        headers: dict[str, Any] = {
            "Content-Type": "application/json",
            TELEGRAM_SECRET_HEADER: self.secret,
        }
        try:
            async with session.post(
                url + WEBHOOK_PATH,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT),
            ) as response:
                await response.read()
                return Attempt(update_id, chat_id, url, response.status, None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Attempt(update_id, chat_id, url, None, type(exc).__name__)
