"""Promotions to LINE users by multicast: up to 500 users a request (``BulkSender``).

Each request carries an ``X-Line-Retry-Key`` that the worker stores with the request's
rows before sending. LINE delivers a request with a key it has accepted before not a
second time (it answers 409), so a request whose outcome is unknown — a timeout, a 5xx,
a worker killed mid-request — is simply sent again with the same key: exactly once.

The message: the campaign's image (if any), then a flex bubble with the text, the link
button and the one-tap opt-out button (a postback ``optout:<campaign>``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import ClientError
from linebot.v3.messaging import AsyncApiClient, AsyncMessagingApi, Configuration, MulticastRequest
from linebot.v3.messaging.exceptions import ApiException

from bot.channels.line import CHANNEL
from core.domain import PromotionMessage
from core.ports import SendOutcome, SendResult

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["MAX_MULTICAST", "LineBulkSender", "open_line_bulk", "promotion_messages"]

MAX_MULTICAST = 500
MAX_ALT_TEXT = 400
MAX_LABEL = 40
DEFAULT_RETRY_AFTER = 10.0
REQUEST_TIMEOUT = 30  # seconds; a request cut short is sent again with its retry key


def _label(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def promotion_messages(message: PromotionMessage) -> list[dict[str, Any]]:
    """The LINE message objects of one promotion (at most 2 of the 5 a request allows)."""
    out: list[dict[str, Any]] = []
    if message.image_url:
        url = message.image_url
        out.append({"type": "image", "originalContentUrl": url, "previewImageUrl": url})
    actions: list[dict[str, Any]] = []
    if message.link_url and message.link_label:
        actions.append(
            {"type": "uri", "label": _label(message.link_label), "uri": message.link_url}
        )
    actions.append(
        {
            "type": "postback",
            "label": _label(message.optout_label),
            "data": message.optout_payload,
            "displayText": message.optout_label,
        }
    )
    out.append(
        {
            "type": "flex",
            "altText": _label(message.text, MAX_ALT_TEXT),
            "contents": {
                "type": "bubble",
                "body": {
                    "type": "box",
                    "layout": "vertical",
                    "contents": [{"type": "text", "text": message.text, "wrap": True}],
                },
                "footer": {
                    "type": "box",
                    "layout": "vertical",
                    "spacing": "sm",
                    "contents": [
                        {"type": "button", "style": "link", "height": "sm", "action": a}
                        for a in actions
                    ],
                },
            },
        }
    )
    return out


def _error_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


class LineBulkSender:
    """One promotion to up to ``max_batch`` LINE users per call."""

    channel = CHANNEL
    idempotent = True

    def __init__(self, api: AsyncMessagingApi, *, max_batch: int = MAX_MULTICAST) -> None:
        if not 1 <= max_batch <= MAX_MULTICAST:
            raise ValueError(f"a multicast names 1 to {MAX_MULTICAST} users")
        self.api = api
        self.max_batch = max_batch

    async def send(
        self, chat_ids: Sequence[str], message: PromotionMessage, *, retry_key: str
    ) -> SendResult:
        if not 1 <= len(chat_ids) <= self.max_batch:
            raise ValueError(f"{len(chat_ids)} users in one multicast")
        request = MulticastRequest.from_dict(
            {"to": list(chat_ids), "messages": promotion_messages(message)}
        )
        try:
            await self.api.multicast(
                request, x_line_retry_key=retry_key, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            return _outcome(exc)
        except (ClientError, TimeoutError) as exc:
            # It may have arrived: the same retry key makes sending it again safe.
            return SendResult(SendOutcome.UNKNOWN, reason=f"network: {type(exc).__name__}")
        return SendResult(SendOutcome.SENT)


def _outcome(exc: ApiException) -> SendResult:
    status = int(exc.status or 0)
    if status == 409:
        # "The retry key is already accepted": delivered by an earlier attempt.
        return SendResult(SendOutcome.SENT, reason="accepted before")
    message = _error_message(exc)
    if status == 429:
        if "monthly limit" in message.lower():
            return SendResult(SendOutcome.FAILED, reason="429: monthly message limit reached")
        retry_after = DEFAULT_RETRY_AFTER
        with contextlib.suppress(TypeError, ValueError):
            retry_after = float((exc.headers or {}).get("Retry-After", retry_after))
        return SendResult(SendOutcome.RETRY, retry_after=retry_after, reason="429")
    if 400 <= status < 500:
        return SendResult(SendOutcome.FAILED, reason=f"{status}: {message[:120]}")
    return SendResult(SendOutcome.UNKNOWN, reason=f"{status} from LINE")


@contextlib.asynccontextmanager
async def open_line_bulk(settings: Settings) -> AsyncIterator[LineBulkSender]:
    """A sender over the configured access token and API URL, closed at the end."""
    assert settings.line_channel_access_token is not None
    configuration = Configuration(
        host=settings.line_api_url.rstrip("/"),
        access_token=settings.line_channel_access_token.get_secret_value(),
    )
    async with AsyncApiClient(configuration) as client:
        yield LineBulkSender(
            AsyncMessagingApi(client), max_batch=settings.line_multicast_batch_size
        )
