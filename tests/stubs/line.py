"""A LINE Messaging API stub that line-bot-sdk's async client really calls, and webhook
events to send.

``LineStub`` answers reply, push and loading-animation requests like LINE: a reply
token works once (and not at all when listed in ``expired_tokens``), a push with an
``X-Line-Retry-Key`` seen before answers 409, and it can be told to answer 429 or 500.
Every request is recorded with its headers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.stubs.server import StubServer

CHANNEL_SECRET = "0123456789abcdef0123456789abcdef"
ACCESS_TOKEN = "line-test-access-token"


@dataclass
class LineCall:
    kind: str  # reply | push | loading
    body: dict[str, Any]
    headers: dict[str, str]
    status: int

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def retry_key(self) -> str | None:
        return self.headers.get("X-Line-Retry-Key")


class LineStub(StubServer):
    def __init__(self) -> None:
        app = web.Application()
        app.router.add_post("/v2/bot/message/reply", self._reply)
        app.router.add_post("/v2/bot/message/push", self._push)
        app.router.add_post("/v2/bot/chat/loading/start", self._loading)
        super().__init__(app)
        self.calls: list[LineCall] = []
        self.expired_tokens: set[str] = set()
        self.used_tokens: set[str] = set()
        self.accepted_keys: set[str] = set()
        self.server_errors = 0
        self.rate_limited = 0
        #: Seconds a push takes to be answered *after* LINE took it (a client that dies
        #: meanwhile never learns it was delivered).
        self.delay = 0.0
        self._ids = itertools.count(1)

    def delivered(self, kind: str | None = None) -> list[LineCall]:
        """Accepted reply and push calls (of ``kind``), in order."""
        return [
            c
            for c in self.calls
            if c.status == 200 and c.kind in ("reply", "push") and kind in (None, c.kind)
        ]

    def messages_to(self, chat_id: str, replies: dict[str, str]) -> list[dict[str, Any]]:
        """Every message delivered to ``chat_id``; ``replies`` maps reply tokens to chats."""
        out: list[dict[str, Any]] = []
        for call in self.delivered():
            target = call.body.get("to") or replies.get(call.body.get("replyToken", ""))
            if target == chat_id:
                out.extend(call.messages)
        return out

    def _record(self, kind: str, request: web.Request, body: dict[str, Any], status: int) -> None:
        self.calls.append(LineCall(kind, body, dict(request.headers), status))
        self.notify()

    def _failure(self) -> web.Response | None:
        if self.server_errors > 0:
            self.server_errors -= 1
            return web.json_response({"message": "Internal error"}, status=500)
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return web.json_response(
                {"message": "The API rate limit has been exceeded. Try again later."}, status=429
            )
        return None

    def _sent(self, body: dict[str, Any]) -> web.Response:
        return web.json_response(
            {
                "sentMessages": [
                    {"id": str(next(self._ids)), "quoteToken": uuid.uuid4().hex}
                    for _ in body.get("messages", [])
                ]
            }
        )

    async def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}"

    async def _reply(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not await self._authorised(request):
            self._record("reply", request, body, 401)
            return web.json_response({"message": "Authentication failed"}, status=401)
        failure = self._failure()
        if failure is not None:
            self._record("reply", request, body, failure.status)
            return failure
        token = body.get("replyToken", "")
        if token in self.expired_tokens or token in self.used_tokens:
            self._record("reply", request, body, 400)
            return web.json_response({"message": "Invalid reply token"}, status=400)
        self.used_tokens.add(token)
        self._record("reply", request, body, 200)
        return self._sent(body)

    async def _push(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not await self._authorised(request):
            self._record("push", request, body, 401)
            return web.json_response({"message": "Authentication failed"}, status=401)
        failure = self._failure()
        if failure is not None:
            self._record("push", request, body, failure.status)
            return failure
        key = request.headers.get("X-Line-Retry-Key")
        if key is not None and key in self.accepted_keys:
            self._record("push", request, body, 409)
            return web.json_response(
                {"message": "The retry key is already accepted", "sentMessages": []}, status=409
            )
        if key is not None:
            self.accepted_keys.add(key)
        self._record("push", request, body, 200)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._sent(body)

    async def _loading(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record("loading", request, body, 202)
        return web.json_response({}, status=202)


# --- webhook events --------------------------------------------------------------------------

_event_ids = itertools.count(1)


def _event_id() -> str:
    # ULID-like, unique per test run.
    return f"01J{uuid.uuid4().hex[:23].upper()}"


def event(user_id: str, kind: str, *, redelivery: bool = False, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": kind,
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user_id},
        "webhookEventId": _event_id(),
        "deliveryContext": {"isRedelivery": redelivery},
    }
    base.update(fields)
    return base


def text(
    user_id: str, value: str, *, reply_token: str | None = None, redelivery: bool = False
) -> dict[str, Any]:
    return event(
        user_id,
        "message",
        redelivery=redelivery,
        replyToken=reply_token or f"rt-{uuid.uuid4().hex}",
        message={
            "type": "text",
            "id": str(next(_event_ids)),
            "text": value,
            "quoteToken": uuid.uuid4().hex,
        },
    )


def postback(user_id: str, data: str, *, reply_token: str | None = None) -> dict[str, Any]:
    return event(
        user_id,
        "postback",
        replyToken=reply_token or f"rt-{uuid.uuid4().hex}",
        postback={"data": data},
    )


def sticker(user_id: str) -> dict[str, Any]:
    return event(
        user_id,
        "message",
        replyToken=f"rt-{uuid.uuid4().hex}",
        message={
            "type": "sticker",
            "id": str(next(_event_ids)),
            "packageId": "446",
            "stickerId": "1988",
            "stickerResourceType": "STATIC",
            "quoteToken": uuid.uuid4().hex,
        },
    )


def follow(user_id: str) -> dict[str, Any]:
    return event(
        user_id, "follow", replyToken=f"rt-{uuid.uuid4().hex}", follow={"isUnblocked": False}
    )


def unfollow(user_id: str) -> dict[str, Any]:
    return event(user_id, "unfollow")


def account_link(user_id: str, nonce: str, *, ok: bool = True) -> dict[str, Any]:
    return event(
        user_id,
        "accountLink",
        replyToken=f"rt-{uuid.uuid4().hex}",
        link={"result": "ok" if ok else "failed", "nonce": nonce},
    )


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps(
        {"destination": "Uf0000000000000000000000000000000", "events": list(events)},
        ensure_ascii=False,
    ).encode("utf-8")


def sign(raw: bytes, secret: str = CHANNEL_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()
