"""The LINE stub (tests/stubs/line.py) with the multicast endpoint campaigns use.

``POST /v2/bot/message/multicast`` delivers to up to 500 user ids, honours
``X-Line-Retry-Key`` like LINE (a key accepted before answers 409 and delivers nothing),
and can *hang* a request after accepting it (``hang_after``): the messages count as
delivered but the client never hears back — what a worker killed mid-request leaves.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.stubs.line import ACCESS_TOKEN, LineStub

MAX_MULTICAST = 500


@dataclass(frozen=True)
class Multicast:
    to: tuple[str, ...]
    messages: list[dict[str, Any]]
    retry_key: str | None
    status: int


class BroadcastLineStub(LineStub):
    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/v2/bot/message/multicast", self._multicast)
        self.multicasts: list[Multicast] = []
        self.hang_after: int | None = None  # accepted multicasts before one hangs
        self.hanging = 0
        self.delay = 0.0  # seconds an accepted multicast takes to be answered
        self._release = asyncio.Event()

    def release(self) -> None:
        self.hang_after = None
        self._release.set()

    def per_user(self) -> Counter[str]:
        """How many promotions each user got (accepted multicasts only)."""
        return Counter(u for m in self.multicasts if m.status == 200 for u in m.to)

    def accepted(self) -> list[Multicast]:
        return [m for m in self.multicasts if m.status == 200]

    async def _multicast(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("X-Line-Retry-Key")
        to = tuple(body.get("to") or ())

        def record(status: int) -> None:
            self.multicasts.append(Multicast(to, list(body.get("messages", [])), key, status))
            self.notify()

        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            record(401)
            return web.json_response({"message": "Authentication failed"}, status=401)
        if not 1 <= len(to) <= MAX_MULTICAST or not body.get("messages"):
            record(400)
            return web.json_response({"message": "The request body has 1 error(s)"}, status=400)
        failure = self._failure()
        if failure is not None:
            record(failure.status)
            return failure
        if key is not None and key in self.accepted_keys:
            record(409)
            return web.json_response(
                {"message": "The retry key is already accepted", "sentMessages": []},
                status=409,
                headers={"x-line-accepted-request-id": "stub-accepted"},
            )
        if key is not None:
            self.accepted_keys.add(key)
        hang = self.hang_after is not None and len(self.accepted()) >= self.hang_after
        record(200)
        if self.delay:
            await asyncio.sleep(self.delay)
        if hang:
            self.hanging += 1
            self.notify()
            await self._release.wait()
            self.hanging -= 1
        return web.json_response({})
