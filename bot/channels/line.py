"""The LINE channel, through line-bot-sdk v3 (async client): events in, neutral replies out.

In: :func:`verify_signature` checks ``X-Line-Signature`` (base64 HMAC-SHA256 of the raw
body under the channel secret) before anything is parsed; :func:`parse_event` turns one
webhook event into an :class:`~core.chat.Incoming`, its ``webhookEventId`` being the
inbox key: text and commands, postbacks from buttons (:class:`~core.chat.ButtonPress`),
follow (as ``/start``: the greeting, with the privacy notice on first contact), unfollow
(the chat becomes unreachable), ``accountLink`` (:class:`~core.chat.AccountLinkResult`);
other messages are :class:`~core.chat.UnsupportedMessage`, other events ignored.

Out: :class:`LineMessenger` answers with the event's reply token when it is fresh (free
of charge) and pushes otherwise, with an ``X-Line-Retry-Key`` naming the outbox messages
so a retried push is never delivered twice. Up to 5 messages a call. Buttons are quick
replies (at most 13; a payload over 300 characters travels as a stored digest) or, when a
reply holds a link or more buttons, a flex bubble whose buttons stay. Images and files
go out as signed, expiring ``/media`` URLs under ``SELFCARE_PUBLIC_URL``. LINE cannot
share a phone number or delete a user's message: ``request_contact`` is left out (the
flows accept a typed number) and a deletion is skipped.

``SELFCARE_LINE_API_URL`` points the SDK elsewhere (the tests' stub).
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import ClientError
from linebot.v3 import SignatureValidator
from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    PushMessageRequest,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
)
from linebot.v3.messaging.exceptions import ApiException
from linebot.v3.webhooks import (
    AccountLinkEvent,
    Event,
    FollowEvent,
    GroupSource,
    MessageEvent,
    PostbackEvent,
    RoomSource,
    TextMessageContent,
    UnfollowEvent,
    UserSource,
)

from bot.delivery import ReplyToken
from bot.json_body import loads as loads_json
from bot.settings import SettingsError
from bot.web.media import MediaPublisher, MediaSigner
from core.chat import (
    AccountLinkResult,
    Button,
    ButtonPress,
    CommandMessage,
    DeleteUserMessage,
    FileReply,
    ImageReply,
    InboundEvent,
    Incoming,
    LinkButton,
    Reply,
    TextReply,
    UnsupportedMessage,
    parse_text,
)
from core.domain import Channel
from core.ports import Clock, DeliveryError
from storage.channels import DIGEST_MARK
from storage.uow import Database

if TYPE_CHECKING:
    from bot.bootstrap import Container

__all__ = [
    "CHANNEL",
    "LineEvent",
    "LineMessenger",
    "open_messenger",
    "parse_body",
    "parse_event",
    "verify_signature",
]

log = logging.getLogger(__name__)

CHANNEL = Channel.LINE.value
MAX_MESSAGES_PER_CALL = 5
MAX_QUICK_REPLIES = 13
MAX_TEXT = 5000
MAX_ALT_TEXT = 400
MAX_LABEL = 20  # quick reply and postback labels
MAX_FLEX_LABEL = 40
MAX_POSTBACK_DATA = 300
MAX_FLEX_TEXT = 2000
#: The longest chat or event id taken (the chat id column holds 64 characters).
MAX_ID = 64
#: How long after receiving an event its reply token is still used; LINE honours one
#: for about half a minute and replies are sent within milliseconds of the commit.
REPLY_TOKEN_TTL = timedelta(seconds=25)


# --- in --------------------------------------------------------------------------------------


def verify_signature(channel_secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is LINE's signature of ``body`` (constant-time compare)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False  # LINE signs UTF-8 JSON: this body did not come from LINE
    if not signature.isascii():
        # Base64 is ASCII. An undecodable header byte reaches us as a lone surrogate,
        # which the SDK's compare would fail to encode (a 500 instead of this 403).
        return False
    return bool(SignatureValidator(channel_secret).validate(text, signature))


def parse_body(body: bytes) -> list[dict[str, Any]]:
    """The events of an (authenticated) webhook body; raises ``ValueError`` when the body
    is not ``{"events": [...]}``."""
    try:
        data = loads_json(body)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise ValueError('no "events" list')
    events: list[dict[str, Any]] = data["events"]
    if not all(isinstance(e, dict) for e in events):
        raise ValueError("an event is not an object")
    return events


@dataclass(frozen=True, slots=True)
class LineEvent:
    """What one webhook event means. ``incoming`` is None when there is nothing for the
    flows; ``membership`` says the user blocked (unfollow) or added (follow) the bot;
    ``user_chat`` is a one-to-one chat (where the loading animation is available)."""

    chat_id: str
    incoming: Incoming | None = None
    reply_token: ReplyToken | None = None
    membership: Literal["blocked", "unblocked"] | None = None
    user_chat: bool = False


def parse_event(raw: dict[str, Any], received_at: datetime) -> LineEvent | None:
    """Understand one webhook event; None for an event the bot does not handle (or one
    in standby mode, which another channel module answers)."""
    try:
        event = Event.from_dict(raw)
    except Exception as exc:  # an event type or shape the SDK does not know
        log.info(
            "LINE event skipped",
            extra={"event_type": str(raw.get("type"))[:32], "exc_type": type(exc).__name__},
        )
        return None
    if event is None or getattr(event, "mode", None) != "active":
        return None
    source = getattr(event, "source", None)
    if isinstance(source, UserSource) and source.user_id:
        chat_id, user_chat = source.user_id, True
    elif isinstance(source, GroupSource):
        chat_id, user_chat = source.group_id, False
    elif isinstance(source, RoomSource):
        chat_id, user_chat = source.room_id, False
    else:
        return None
    if not 0 < len(chat_id) <= MAX_ID or not 0 < len(event.webhook_event_id) <= MAX_ID:
        # LINE's ids are 33 characters (a webhookEventId 26): anything else did not come
        # from LINE, could not be told apart from a redelivery, and would not fit storage.
        log.info("LINE event skipped", extra={"event_type": "bad id"})
        return None

    if isinstance(event, UnfollowEvent):
        return LineEvent(chat_id=chat_id, membership="blocked", user_chat=user_chat)

    inbound: InboundEvent | None = None
    message_ref: str | None = None
    membership: Literal["blocked", "unblocked"] | None = None
    if isinstance(event, MessageEvent):
        message = event.message
        message_ref = message.id
        if isinstance(message, TextMessageContent):
            inbound = parse_text(CHANNEL, message.text)
        else:
            inbound = UnsupportedMessage(kind=str(message.type))
    elif isinstance(event, PostbackEvent):
        inbound = ButtonPress(payload=event.postback.data)
    elif isinstance(event, FollowEvent):
        inbound, membership = CommandMessage(name="start"), "unblocked"
    elif isinstance(event, AccountLinkEvent):
        inbound = AccountLinkResult(nonce=event.link.nonce, ok=event.link.result == "ok")
    if inbound is None:
        return None

    token = getattr(event, "reply_token", None)
    redelivered = event.delivery_context.is_redelivery
    return LineEvent(
        chat_id=chat_id,
        incoming=Incoming(
            channel=CHANNEL,
            chat_id=chat_id,
            event_id=event.webhook_event_id,
            event=inbound,
            received_at=received_at,
            message_ref=message_ref,
        ),
        # A redelivered event's token has expired long ago: push instead.
        reply_token=ReplyToken(token, received_at + REPLY_TOKEN_TTL)
        if token and not redelivered
        else None,
        membership=membership,
        user_chat=user_chat,
    )


async def resolve_button(db: Database, incoming: Incoming) -> Incoming:
    """``incoming`` with a digest postback replaced by its stored payload."""
    event = incoming.event
    if not isinstance(event, ButtonPress) or not event.payload.startswith(DIGEST_MARK):
        return incoming
    async with db.uow() as uow:
        payload = await uow.callback_payloads.resolve(event.payload)
    return Incoming(
        channel=incoming.channel,
        chat_id=incoming.chat_id,
        event_id=incoming.event_id,
        event=ButtonPress(payload=payload or ""),
        received_at=incoming.received_at,
        message_ref=incoming.message_ref,
    )


# --- out -------------------------------------------------------------------------------------


def _label(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split(text: str, limit: int) -> list[str]:
    return [text[i : i + limit] for i in range(0, len(text), limit)] or [""]


class LineMessenger:
    """Sends neutral replies through the Messaging API; a ``BatchMessenger``."""

    max_batch = MAX_MESSAGES_PER_CALL

    def __init__(
        self, api: AsyncMessagingApi, db: Database, clock: Clock, media: MediaPublisher
    ) -> None:
        self.api = api
        self._db = db
        self._clock = clock
        self._media = media

    async def send(self, chat_id: str, reply: Reply) -> None:
        await self.send_batch(chat_id, [reply], reply_token=None, retry_key=str(uuid.uuid4()))

    async def send_batch(
        self, chat_id: str, replies: Sequence[Reply], *, reply_token: str | None, retry_key: str
    ) -> None:
        """Send ``replies`` in order (reply token first, push otherwise); raises
        DeliveryError."""
        messages: list[dict[str, Any]] = []
        for reply in replies:
            messages.extend(await self.render(reply))
        calls = [
            messages[i : i + MAX_MESSAGES_PER_CALL]
            for i in range(0, len(messages), MAX_MESSAGES_PER_CALL)
        ]
        for number, call in enumerate(calls):
            if number == 0 and reply_token is not None and await self._reply(reply_token, call):
                continue
            key = retry_key if number == 0 else str(uuid.uuid5(uuid.UUID(retry_key), str(number)))
            await self._push(chat_id, call, key)

    async def _reply(self, token: str, messages: list[dict[str, Any]]) -> bool:
        """True if LINE took the reply; False when the token is no good (push instead)."""
        request = ReplyMessageRequest.from_dict({"replyToken": token, "messages": messages})
        try:
            await self.api.reply_message(request)
        except ApiException as exc:
            if exc.status == 400 and "reply token" in _error_message(exc).lower():
                return False
            raise _delivery_error(exc) from None
        except (ClientError, TimeoutError) as exc:
            # It may or may not have arrived; the reply token may be spent. Retry by push.
            raise DeliveryError(f"network: {type(exc).__name__}") from None
        return True

    async def _push(self, chat_id: str, messages: list[dict[str, Any]], retry_key: str) -> None:
        request = PushMessageRequest.from_dict({"to": chat_id, "messages": messages})
        try:
            await self.api.push_message(request, x_line_retry_key=retry_key)
        except ApiException as exc:
            if exc.status == 409:
                return  # this retry key was accepted before: already delivered
            raise _delivery_error(exc) from None
        except (ClientError, TimeoutError) as exc:
            raise DeliveryError(f"network: {type(exc).__name__}") from None

    async def render(self, reply: Reply) -> list[dict[str, Any]]:
        """LINE message objects for ``reply`` (none for what LINE cannot do)."""
        match reply:
            case TextReply():
                return await self._render_text(reply)
            case ImageReply():
                url = await self._media.publish(
                    reply.png, filename=reply.filename, mime_type="image/png"
                )
                out: list[dict[str, Any]] = [
                    {"type": "image", "originalContentUrl": url, "previewImageUrl": url}
                ]
                if reply.caption:
                    out.extend({"type": "text", "text": t} for t in _split(reply.caption, MAX_TEXT))
                return out
            case FileReply():
                url = await self._media.publish(
                    reply.content, filename=reply.filename, mime_type=reply.mime_type
                )
                text = reply.caption or reply.filename
                return [
                    _flex(
                        text,
                        [
                            {
                                "type": "uri",
                                "label": _label("📎 " + reply.filename, MAX_FLEX_LABEL),
                                "uri": url,
                            }
                        ],
                    )
                ]
            case DeleteUserMessage():
                return []  # LINE bots cannot delete what a user sent
        return []

    async def _render_text(self, reply: TextReply) -> list[dict[str, Any]]:
        buttons = [b for row in reply.buttons for b in row]
        parts = _split(reply.text, MAX_TEXT)
        texts: list[dict[str, Any]] = [{"type": "text", "text": t} for t in parts]
        if not buttons:
            return texts
        actions = [await self._action(b, MAX_LABEL) for b in buttons]
        has_link = any(isinstance(b, LinkButton) for b in buttons)
        if not has_link and len(buttons) <= MAX_QUICK_REPLIES:
            texts[-1]["quickReply"] = {"items": [{"type": "action", "action": a} for a in actions]}
            return texts
        # Links (and long menus) as a bubble whose buttons stay after a tap.
        actions = [await self._action(b, MAX_FLEX_LABEL) for b in buttons]
        if len(reply.text) <= MAX_FLEX_TEXT:
            return [_flex(reply.text, actions)]
        return [*texts, _flex(None, actions, alt_text=parts[-1])]

    async def _action(self, button: Button | LinkButton, label_limit: int) -> dict[str, Any]:
        label = _label(button.label, label_limit)
        if isinstance(button, LinkButton):
            return {"type": "uri", "label": label, "uri": button.url}
        return {
            "type": "postback",
            "label": label,
            "data": await self._postback_data(button.payload),
            "displayText": button.label[:300],
        }

    async def _postback_data(self, payload: str) -> str:
        if len(payload) <= MAX_POSTBACK_DATA and not payload.startswith(DIGEST_MARK):
            return payload
        async with self._db.uow() as uow:
            short = await uow.callback_payloads.shorten(payload, self._clock.now())
            await uow.commit()
        return short

    async def show_loading(self, chat_id: str, seconds: int = 20) -> None:
        """The "typing" animation in a one-to-one chat (best effort; ends when the next
        message arrives or after ``seconds``, 5 to 60)."""
        try:
            await self.api.show_loading_animation(
                ShowLoadingAnimationRequest(chatId=chat_id, loadingSeconds=seconds)
            )
        except (ApiException, ClientError, TimeoutError) as exc:
            log.info(
                "loading animation not shown",
                extra={"channel": CHANNEL, "exc_type": type(exc).__name__},
            )


def _flex(
    text: str | None, actions: list[dict[str, Any]], *, alt_text: str | None = None
) -> dict[str, Any]:
    bubble: dict[str, Any] = {"type": "bubble"}
    if text:
        bubble["body"] = {
            "type": "box",
            "layout": "vertical",
            "contents": [{"type": "text", "text": text, "wrap": True}],
        }
    bubble["footer"] = {
        "type": "box",
        "layout": "vertical",
        "spacing": "sm",
        "contents": [
            {"type": "button", "style": "link", "height": "sm", "action": action}
            for action in actions
        ],
    }
    alt = alt_text or text or " ".join(a["label"] for a in actions)
    return {"type": "flex", "altText": _label(alt, MAX_ALT_TEXT), "contents": bubble}


def _error_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


def _delivery_error(exc: ApiException) -> DeliveryError:
    status = int(exc.status or 0)
    if status == 429:
        retry_after = 5.0
        headers = exc.headers or {}
        with contextlib.suppress(TypeError, ValueError):
            retry_after = float(headers.get("Retry-After", retry_after))
        return DeliveryError("429 Too Many Requests", retry_after=retry_after)
    if status in (400, 404, 413, 415):
        # The message itself is refused (or the chat does not exist): retrying won't help.
        return DeliveryError(f"{status} refused by LINE", permanent=True)
    return DeliveryError(f"{status} from LINE")


@contextlib.asynccontextmanager
async def open_messenger(container: Container) -> AsyncIterator[LineMessenger]:
    """A messenger over the SDK's async client for the configured access token and API
    URL, closed at the end."""
    settings = container.settings
    assert settings.line_channel_access_token is not None
    if not settings.public_url.startswith("https://"):
        if settings.is_production:
            raise SettingsError(
                "SELFCARE_PUBLIC_URL: LINE fetches images by HTTPS: it must start with https://"
            )
        log.warning("SELFCARE_PUBLIC_URL is not https: LINE will not show images")
    configuration = Configuration(
        host=settings.line_api_url.rstrip("/"),
        access_token=settings.line_channel_access_token.get_secret_value(),
    )
    media = MediaPublisher(
        container.db,
        container.clock,
        MediaSigner.from_keyring(container.keyring),
        settings.public_url,
        timedelta(seconds=settings.media_url_ttl),
    )
    async with AsyncApiClient(configuration) as client:
        yield LineMessenger(AsyncMessagingApi(client), container.db, container.clock, media)
