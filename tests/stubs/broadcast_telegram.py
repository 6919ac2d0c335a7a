"""The Telegram stub (tests/stubs/telegram.py) with what broadcast tests also need: each
send's answer and arrival time, and a gate that holds sends, unanswered, from some point.

A held request has not reached Telegram yet: it is answered (and counted) only once the
gate opens, and never if its client went away meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

from tests.stubs.telegram import SEND_METHODS, BotApiCall, TelegramStub


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic()
    call: BotApiCall
    status: int


class BroadcastTelegramStub(TelegramStub):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[Answer] = []
        self.hold_after: int | None = None  # sends answered before the gate closes
        self.throttle_at: int | None = None  # a 429 answers the send after this many
        self.gate = asyncio.Event()
        self.gate.set()
        self.held = 0

    def open_gate(self) -> None:
        self.hold_after = None
        self.gate.set()

    def accepted(self) -> list[BotApiCall]:
        """Sends Telegram took (a 429, 403 or 500 delivered nothing)."""
        return [a.call for a in self.answers if a.status == 200]

    def per_chat(self) -> Counter[str]:
        """How many messages each chat got."""
        return Counter(c.chat_id for c in self.accepted())

    def _answer(self, call: BotApiCall) -> web.Response:
        if call.method in SEND_METHODS and self.throttle_at is not None:
            if len(self.answers) >= self.throttle_at:
                self.throttle_at = None
                self.rate_limit[call.method] = self.rate_limit.get(call.method, 0) + 1
        response = super()._answer(call)
        if call.method in SEND_METHODS:
            self.answers.append(Answer(time.monotonic(), call, response.status))
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["method"] in SEND_METHODS and self.hold_after is not None:
            if len(self.answers) >= self.hold_after:
                self.gate.clear()
                self.held += 1
                self.notify()
                try:
                    await self.gate.wait()
                finally:
                    self.held -= 1
        return await super()._handle(request)
