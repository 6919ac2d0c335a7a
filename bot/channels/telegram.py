"""The Telegram channel, through python-telegram-bot: updates in, neutral replies out.

In: :func:`parse_update` turns a Bot API update (already authenticated by the webhook)
into an :class:`~core.chat.Incoming`: text and commands (``/start payload`` deep links
included), button presses (callback queries), a shared contact (``is_own`` only when the
card is the sender's own), anything else as :class:`~core.chat.UnsupportedMessage`.
``my_chat_member`` updates tell when the user blocks or unblocks the bot.

Out: :class:`TelegramMessenger` renders replies: buttons as an inline keyboard (a payload
over Telegram's 64 bytes travels as a stored digest), a link button as a URL button,
``request_contact`` as a one-time reply keyboard, images with ``sendPhoto``, files with
``sendDocument``, and deletes the message that held a password. Telegram's limits are
kept (about 1 message a second per chat with short bursts, about 30 a second in all,
``retry_after`` on 429); a user who blocked the bot raises
:class:`~bot.delivery.ChatUnreachable`.

``SELFCARE_TELEGRAM_API_URL`` points PTB at another Bot API server (a local one, or the
tests' stub).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
    WebhookInfo,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from bot.delivery import ChatUnreachable, Throttled
from core.chat import (
    Button,
    ButtonPress,
    DeleteUserMessage,
    FileReply,
    ImageReply,
    InboundEvent,
    Incoming,
    LinkButton,
    Reply,
    SharedContact,
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
    from bot.settings import Settings

__all__ = [
    "ALLOWED_UPDATES",
    "CHANNEL",
    "SendRateLimiter",
    "TelegramMessenger",
    "TelegramUpdate",
    "open_messenger",
    "parse_update",
    "set_webhook",
]

log = logging.getLogger(__name__)

# PTB 22 moves time periods (RetryAfter.retry_after…) to timedelta; opt in now rather than
# get a deprecation warning on every 429. _seconds() reads either form.
os.environ.setdefault("PTB_TIMEDELTA", "true")

CHANNEL = Channel.TELEGRAM.value
#: What the webhook asks Telegram for (``setWebhook``'s allowed_updates).
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
#: A message kind Telegram may send that the bot cannot read, by Message attribute.
_UNSUPPORTED_KINDS = (
    "photo",
    "sticker",
    "document",
    "voice",
    "video",
    "video_note",
    "audio",
    "animation",
    "location",
    "venue",
    "poll",
    "dice",
    "game",
    "story",
    "invoice",
)


# --- in --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TelegramUpdate:
    """What one update means. ``incoming`` is None when there is nothing for the flows
    (a service message, a callback without data, a membership change);
    ``callback_query_id`` is set for a button press (answer it); ``membership`` says the
    user blocked (``"blocked"``) or unblocked (``"unblocked"``) the bot."""

    chat_id: str
    incoming: Incoming | None = None
    callback_query_id: str | None = None
    membership: Literal["blocked", "unblocked"] | None = None


def parse_update(data: dict[str, Any], received_at: datetime) -> TelegramUpdate | None:
    """Understand a Bot API update; None for a kind the bot does not handle (edited
    messages, channel posts…). Raises ``ValueError`` for a body that is not an update."""
    update_id = data.get("update_id")
    try:
        _int(update_id)
    except TypeError:
        raise ValueError("update_id is missing or not an integer") from None
    kind = next((k for k in ALLOWED_UPDATES if k in data), None)
    if kind is None:
        return None  # a kind the bot does not handle: not even parsed
    try:
        # Only the part the bot handles: an unknown neighbour must not make it a 400.
        update = Update.de_json({"update_id": update_id, kind: data[kind]}, None)
        # PTB checks neither presence nor types: a message without a chat, or a text that
        # is a list, must be this 400 rather than an AttributeError (a 500) further on.
        return _interpret(update, received_at)
    except Exception as exc:  # PTB raises whatever the malformed field provokes
        raise ValueError(f"not a Bot API update ({type(exc).__name__})") from None


def _interpret(update: Update, received_at: datetime) -> TelegramUpdate | None:
    """The meaning of a de-serialised update; raises TypeError/AttributeError on a field
    that is missing or of the wrong type (``parse_update`` makes them a ValueError)."""
    event_id = str(update.update_id)

    if update.message is not None:
        message = update.message
        chat_id = str(_int(message.chat.id))
        event = _message_event(message)
        if event is None:
            return TelegramUpdate(chat_id=chat_id)
        return TelegramUpdate(
            chat_id=chat_id,
            incoming=Incoming(
                channel=CHANNEL,
                chat_id=chat_id,
                event_id=event_id,
                event=event,
                received_at=received_at,
                message_ref=str(_int(message.message_id)),
            ),
        )

    if update.callback_query is not None:
        query = update.callback_query
        chat = query.message.chat.id if query.message is not None else query.from_user.id
        chat_id = str(_int(chat))
        query_id = _str(query.id)
        if query.data is None:  # a game button: nothing for the flows, but answer it
            return TelegramUpdate(chat_id=chat_id, callback_query_id=query_id)
        return TelegramUpdate(
            chat_id=chat_id,
            callback_query_id=query_id,
            incoming=Incoming(
                channel=CHANNEL,
                chat_id=chat_id,
                event_id=event_id,
                event=ButtonPress(payload=_str(query.data)),
                received_at=received_at,
            ),
        )

    if update.my_chat_member is not None:
        member = update.my_chat_member
        status = member.new_chat_member.status
        chat_id = str(_int(member.chat.id))
        if status in ("kicked", "left"):
            return TelegramUpdate(chat_id=chat_id, membership="blocked")
        if status in ("member", "administrator"):
            return TelegramUpdate(chat_id=chat_id, membership="unblocked")
        return TelegramUpdate(chat_id=chat_id)
    return None


def _int(value: object) -> int:
    # Bot API ids are signed 64-bit integers; a longer one would not fit the stored chat id.
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise TypeError("not a 64-bit integer")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _message_event(message: Message) -> InboundEvent | None:
    if message.text is not None:
        return parse_text(CHANNEL, _str(message.text))
    if message.contact is not None:
        sender = message.from_user
        own = (
            sender is not None
            and message.contact.user_id is not None
            and message.contact.user_id == sender.id
        )
        return SharedContact(phone=_str(message.contact.phone_number), is_own=own)
    for kind in _UNSUPPORTED_KINDS:
        if getattr(message, kind, None):
            return UnsupportedMessage(kind=kind)
    return None  # a service message (someone joined, a pin…): nothing to answer


# --- out -------------------------------------------------------------------------------------


class SendRateLimiter:
    """Telegram's pacing, per process: ``per_chat`` messages a second to one chat (bursts
    of ``chat_burst``) and ``overall`` a second in all (bursts of one second's worth).

    A generic cell rate algorithm for each limit: a send reserves the chat's next slot,
    sleeps until then, then takes a slot in the overall rate. A wait longer than ``max_wait`` raises
    :class:`~bot.delivery.Throttled` instead, so the message goes back to the outbox
    rather than holding its lease."""

    def __init__(
        self,
        overall: float,
        per_chat: float,
        *,
        chat_burst: int = 3,
        max_wait: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / overall
        self._tolerance = self._interval * (max(1, int(overall)) - 1)
        self._chat_interval = 1.0 / per_chat
        self._chat_tolerance = self._chat_interval * (chat_burst - 1)
        self._max_wait = max_wait
        self._clock = clock
        self._next = 0.0
        self._chats: dict[str, float] = {}

    def reserve_chat(self, chat_id: str) -> float:
        """Reserve the chat's next send; returns the seconds to wait before it."""
        now = self._clock()
        chat_next = max(self._chats.get(chat_id, now), now)
        delay = max(0.0, chat_next - self._chat_tolerance - now)
        if delay > self._max_wait:
            raise Throttled(retry_after=delay)
        self._chats[chat_id] = chat_next + self._chat_interval
        if len(self._chats) > 10_000:
            self._chats = {c: t for c, t in self._chats.items() if t > now}
        return delay

    def reserve_overall(self) -> float:
        """Reserve a send now against the overall rate; returns the seconds to wait."""
        now = self._clock()
        next_ = max(self._next, now)
        delay = max(0.0, next_ - self._tolerance - now)
        if delay > self._max_wait:
            raise Throttled(retry_after=delay)
        self._next = next_ + self._interval
        return delay

    async def wait(self, chat_id: str) -> None:
        # The chat's turn first, then a slot in the overall rate at the moment of sending
        # (a message waiting for its chat must not hold up other chats).
        delay = self.reserve_chat(chat_id)
        if delay > 0:
            await asyncio.sleep(delay)
        delay = self.reserve_overall()
        if delay > 0:
            await asyncio.sleep(delay)


class TelegramMessenger:
    """Sends neutral replies through the Bot API; implements ``core.ports.Messenger``."""

    def __init__(self, bot: Bot, db: Database, clock: Clock, limiter: SendRateLimiter) -> None:
        self.bot = bot
        self._db = db
        self._clock = clock
        self._limiter = limiter

    async def send(self, chat_id: str, reply: Reply) -> None:
        """Raises DeliveryError (ChatUnreachable when the user blocked the bot)."""
        try:
            await self._send(chat_id, reply)
        except RetryAfter as exc:
            raise DeliveryError("429 Too Many Requests", retry_after=_seconds(exc)) from None
        except Forbidden:
            raise ChatUnreachable("blocked by the user") from None
        except ChatMigrated:
            raise DeliveryError("chat migrated", permanent=True) from None
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise ChatUnreachable("chat not found") from None
            raise DeliveryError("400 Bad Request", permanent=True) from None
        except InvalidToken:
            raise DeliveryError("token rejected") from None
        except NetworkError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}") from None
        except TelegramError as exc:
            raise DeliveryError(f"telegram: {type(exc).__name__}") from None

    async def _send(self, chat_id: str, reply: Reply) -> None:
        match reply:
            case TextReply():
                await self._send_text(chat_id, reply)
            case ImageReply():
                caption = reply.caption if len(reply.caption) <= MAX_CAPTION else ""
                await self._limiter.wait(chat_id)
                await self.bot.send_photo(
                    chat_id,
                    photo=InputFile(reply.png, filename=reply.filename),
                    caption=caption or None,
                )
                if reply.caption and not caption:
                    await self._send_text(chat_id, TextReply(reply.caption))
            case FileReply():
                caption = reply.caption if len(reply.caption) <= MAX_CAPTION else ""
                await self._limiter.wait(chat_id)
                await self.bot.send_document(
                    chat_id,
                    document=InputFile(reply.content, filename=reply.filename),
                    caption=caption or None,
                )
                if reply.caption and not caption:
                    await self._send_text(chat_id, TextReply(reply.caption))
            case DeleteUserMessage():
                await self._delete(chat_id, reply.message_ref)

    async def _send_text(self, chat_id: str, reply: TextReply) -> None:
        parts = split_text(reply.text, MAX_TEXT)
        inline = await self._inline_keyboard(reply) if reply.buttons else None
        contact = (
            ReplyKeyboardMarkup(
                [[KeyboardButton(reply.request_contact, request_contact=True)]],
                one_time_keyboard=True,
                resize_keyboard=True,
            )
            if reply.request_contact
            else None
        )
        for number, part in enumerate(parts, start=1):
            last = number == len(parts)
            markup = (inline or contact) if last else None
            await self._limiter.wait(chat_id)
            await self.bot.send_message(chat_id, part, reply_markup=markup)
        if inline is not None and contact is not None and reply.request_contact:
            # One message carries one kind of keyboard: the contact button comes next.
            await self._limiter.wait(chat_id)
            await self.bot.send_message(chat_id, reply.request_contact, reply_markup=contact)

    async def _inline_keyboard(self, reply: TextReply) -> InlineKeyboardMarkup:
        rows: list[list[InlineKeyboardButton]] = []
        for row in reply.buttons:
            cells = []
            for button in row:
                if isinstance(button, LinkButton):
                    cells.append(InlineKeyboardButton(button.label, url=button.url))
                else:
                    data = await self.callback_data(button)
                    cells.append(InlineKeyboardButton(button.label, callback_data=data))
            rows.append(cells)
        return InlineKeyboardMarkup(rows)

    async def callback_data(self, button: Button) -> str:
        """The button's payload, or a stored digest of it when it is too long for
        Telegram (or could be mistaken for a digest)."""
        payload = button.payload
        if len(payload.encode("utf-8")) <= MAX_CALLBACK_DATA and not payload.startswith(
            DIGEST_MARK
        ):
            return payload
        async with self._db.uow() as uow:
            short = await uow.callback_payloads.shorten(payload, self._clock.now())
            await uow.commit()
        return short

    async def _delete(self, chat_id: str, message_ref: str) -> None:
        try:
            message_id = int(message_ref)
        except ValueError:
            return
        await self._limiter.wait(chat_id)
        try:
            await self.bot.delete_message(chat_id, message_id)
        except BadRequest:
            # Gone already, or older than 48 hours: nothing a retry could change.
            log.info("could not delete a user's message", extra={"channel": CHANNEL})

    async def answer_callback(self, callback_query_id: str) -> None:
        """Stop the button's spinner (best effort: Telegram stops it after a while anyway)."""
        try:
            await self.bot.answer_callback_query(callback_query_id)
        except TelegramError as exc:
            log.info(
                "callback query not answered",
                extra={"channel": CHANNEL, "exc_type": type(exc).__name__},
            )


async def resolve_button(db: Database, update: TelegramUpdate) -> TelegramUpdate:
    """The update with a digest callback data replaced by its stored payload (an unknown
    digest becomes an empty payload: the flows answer "that button is no longer active")."""
    incoming = update.incoming
    if incoming is None or not isinstance(incoming.event, ButtonPress):
        return update
    data = incoming.event.payload
    if not data.startswith(DIGEST_MARK):
        return update
    async with db.uow() as uow:
        payload = await uow.callback_payloads.resolve(data)
    event = ButtonPress(payload=payload or "")
    return TelegramUpdate(
        chat_id=update.chat_id,
        callback_query_id=update.callback_query_id,
        incoming=Incoming(
            channel=incoming.channel,
            chat_id=incoming.chat_id,
            event_id=incoming.event_id,
            event=event,
            received_at=incoming.received_at,
            message_ref=incoming.message_ref,
        ),
    )


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at paragraph or line ends
    where possible."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = max(rest.rfind("\n\n", 0, limit), rest.rfind("\n", 0, limit))
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest:
        parts.append(rest)
    return parts


def _seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


# --- the client ------------------------------------------------------------------------------


def _make_bot(settings: Settings) -> tuple[Bot, HTTPXRequest, HTTPXRequest]:
    # Blocking (httpx builds its TLS context from files): call in a thread.
    assert settings.telegram_token is not None
    request = HTTPXRequest(
        connection_pool_size=64, read_timeout=10, write_timeout=10, media_write_timeout=30
    )
    updates_request = HTTPXRequest(connection_pool_size=1)
    bot = Bot(
        settings.telegram_token.get_secret_value(),
        base_url=settings.telegram_api_url,
        request=request,
        get_updates_request=updates_request,
    )
    return bot, request, updates_request


@contextlib.asynccontextmanager
async def open_bot(settings: Settings) -> AsyncIterator[Bot]:
    """A PTB ``Bot`` for the configured token and Bot API URL, closed at the end. It is
    not initialised with ``getMe``: starting must not depend on Telegram answering."""
    bot, request, updates_request = await asyncio.to_thread(_make_bot, settings)
    await request.initialize()
    try:
        yield bot
    finally:
        await request.shutdown()
        await updates_request.shutdown()


@contextlib.asynccontextmanager
async def open_messenger(container: Container) -> AsyncIterator[TelegramMessenger]:
    settings = container.settings
    async with open_bot(settings) as bot:
        limiter = SendRateLimiter(
            settings.telegram_messages_per_second, settings.telegram_chat_messages_per_second
        )
        yield TelegramMessenger(bot, container.db, container.clock, limiter)


async def set_webhook(
    settings: Settings,
    url: str,
    *,
    certificate: Path | None,
    drop_pending_updates: bool = False,
    max_connections: int | None = None,
) -> WebhookInfo:
    """Register ``url`` with Telegram: the secret token, the update kinds the bot handles,
    and ``certificate`` (PEM) when it is self-signed. Returns what Telegram then reports.
    Raises ``telegram.error.TelegramError`` when Telegram refuses."""
    assert settings.telegram_secret_token is not None
    pem = await asyncio.to_thread(certificate.read_bytes) if certificate is not None else None
    async with open_bot(settings) as bot:
        await bot.set_webhook(
            url,
            certificate=InputFile(pem, filename="certificate.pem") if pem is not None else None,
            allowed_updates=list(ALLOWED_UPDATES),
            secret_token=settings.telegram_secret_token.get_secret_value(),
            drop_pending_updates=drop_pending_updates or None,
            max_connections=max_connections,
        )
        return await bot.get_webhook_info()
