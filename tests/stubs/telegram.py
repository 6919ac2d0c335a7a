"""A Telegram Bot API stub that python-telegram-bot really calls, and updates to send.

``TelegramStub`` answers ``POST /bot<TOKEN>/<method>`` like Telegram (form or multipart
parameters, ``{"ok": true, "result": …}``), records every call, and can be told to
answer 403 for chats that blocked the bot, 429 with ``retry_after``, a server error, or
to answer slowly. ``updates`` builds realistic update JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.stubs.server import StubServer

TOKEN = "123456:TEST-token_for-the-stub"
SEND_METHODS = ("sendMessage", "sendPhoto", "sendDocument")
_JSON_PARAMS = ("reply_markup", "allowed_updates", "chat_id", "message_id", "max_connections")


@dataclass
class BotApiCall:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def chat_id(self) -> str:
        return str(self.params.get("chat_id", ""))

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data or url) of an inline keyboard, row by row."""
        markup = self.params.get("reply_markup") or {}
        return [
            (b["text"], b.get("callback_data") or b.get("url", ""))
            for row in markup.get("inline_keyboard", [])
            for b in row
        ]


class TelegramStub(StubServer):
    def __init__(self, token: str = TOKEN) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        super().__init__(app)
        self.token = token
        self.calls: list[BotApiCall] = []
        self.blocked: set[str] = set()
        self.rate_limit: dict[str, int] = {}  # method → how many more 429s
        self.retry_after = 1
        self.server_errors = 0  # how many more 500s to any send
        self.delay = 0.0
        self.webhook: dict[str, Any] = {}
        self._message_ids = itertools.count(1000)

    @property
    def base_url(self) -> str:
        """What SELFCARE_TELEGRAM_API_URL takes (PTB appends the token)."""
        return f"{self.url}/bot"

    def sent(self, chat_id: str | None = None) -> list[BotApiCall]:
        """Messages, photos and documents sent (to ``chat_id``), in order."""
        return [
            c
            for c in self.calls
            if c.method in SEND_METHODS and (chat_id is None or c.chat_id == chat_id)
        ]

    def calls_to(self, method: str) -> list[BotApiCall]:
        return [c for c in self.calls if c.method == method]

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        form = await request.post()
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files[name] = value.file.read()
                params[name] = f"<file {value.filename}>"
            elif name in _JSON_PARAMS:
                params[name] = json.loads(value)
            else:
                params[name] = value
        call = BotApiCall(method, params, files)
        if self.delay:
            await asyncio.sleep(self.delay)
        response = self._answer(call)
        self.calls.append(call)
        self.notify()
        return response

    def _answer(self, call: BotApiCall) -> web.Response:
        method = call.method
        if method in SEND_METHODS or method == "deleteMessage":
            if self.server_errors > 0:
                self.server_errors -= 1
                return _error(500, "Internal Server Error")
            if self.rate_limit.get(method, 0) > 0:
                self.rate_limit[method] -= 1
                return _error(
                    429,
                    f"Too Many Requests: retry after {self.retry_after}",
                    parameters={"retry_after": self.retry_after},
                )
            if call.chat_id in self.blocked:
                return _error(403, "Forbidden: bot was blocked by the user")
        if method == "getMe":
            return _ok(
                {"id": 1, "is_bot": True, "first_name": "Selfcare", "username": "selfcare_bot"}
            )
        if method in SEND_METHODS:
            return _ok(self._message(call))
        if method in ("deleteMessage", "answerCallbackQuery", "deleteWebhook"):
            return _ok(True)
        if method == "setWebhook":
            self.webhook = dict(call.params, has_custom_certificate="certificate" in call.files)
            self.webhook["certificate"] = call.files.get("certificate")
            return _ok(True)
        if method == "getWebhookInfo":
            return _ok(
                {
                    "url": self.webhook.get("url", ""),
                    "has_custom_certificate": bool(self.webhook.get("has_custom_certificate")),
                    "pending_update_count": 0,
                    "allowed_updates": self.webhook.get("allowed_updates", []),
                }
            )
        return _error(404, "Not Found: method not found")

    def _message(self, call: BotApiCall) -> dict[str, Any]:
        chat_id = call.chat_id
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else 0, "type": "private"},
        }
        if call.method == "sendMessage":
            message["text"] = call.params.get("text", "")
        elif call.method == "sendPhoto":
            message["photo"] = [
                {"file_id": "p1", "file_unique_id": "u1", "width": 320, "height": 320}
            ]
        else:
            message["document"] = {"file_id": "d1", "file_unique_id": "u2"}
        return message


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, **extra: Any) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": status, "description": description, **extra}, status=status
    )


# --- updates ---------------------------------------------------------------------------------

_update_ids = itertools.count(int(time.time()) % 1_000_000 * 1000)
_message_ids = itertools.count(1)


def _user(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "is_bot": False, "first_name": "ทดสอบ", "language_code": "th"}


def message(chat_id: int, update_id: int | None = None, **content: Any) -> dict[str, Any]:
    """An update with a private message from ``chat_id`` holding ``content``."""
    return {
        "update_id": next(_update_ids) if update_id is None else update_id,
        "message": {
            "message_id": next(_message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "ทดสอบ"},
            "from": _user(chat_id),
            **content,
        },
    }


def text(chat_id: int, value: str, update_id: int | None = None) -> dict[str, Any]:
    entities = []
    if value.startswith("/"):
        entities = [{"type": "bot_command", "offset": 0, "length": len(value.split()[0])}]
    return message(chat_id, update_id, text=value, **({"entities": entities} if entities else {}))


def callback(chat_id: int, data: str, update_id: int | None = None) -> dict[str, Any]:
    """A button press on a message the bot sent to ``chat_id``."""
    return {
        "update_id": next(_update_ids) if update_id is None else update_id,
        "callback_query": {
            "id": f"cq{next(_message_ids)}",
            "from": _user(chat_id),
            "chat_instance": "-42",
            "data": data,
            "message": {
                "message_id": next(_message_ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": 1, "is_bot": True, "first_name": "Selfcare"},
                "text": "…",
            },
        },
    }


def contact(chat_id: int, phone: str, *, owner_id: int | None) -> dict[str, Any]:
    card: dict[str, Any] = {"phone_number": phone, "first_name": "ทดสอบ"}
    if owner_id is not None:
        card["user_id"] = owner_id
    return message(chat_id, contact=card)


def photo(chat_id: int) -> dict[str, Any]:
    return message(
        chat_id,
        photo=[{"file_id": "x", "file_unique_id": "y", "width": 90, "height": 90}],
    )


def membership(chat_id: int, status: str) -> dict[str, Any]:
    """The bot's membership in a private chat changed (``kicked``: the user blocked it)."""
    bot = {"id": 1, "is_bot": True, "first_name": "Selfcare"}
    return {
        "update_id": next(_update_ids),
        "my_chat_member": {
            "chat": {"id": chat_id, "type": "private"},
            "from": _user(chat_id),
            "date": int(time.time()),
            "old_chat_member": {"status": "member", "user": bot},
            "new_chat_member": {"status": status, "user": bot, "until_date": 0}
            if status == "kicked"
            else {"status": status, "user": bot},
        },
    }
