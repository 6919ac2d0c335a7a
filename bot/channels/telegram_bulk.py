"""Promotions to Telegram chats, one Bot API call per chat (``core.ports.BulkSender``).

The text goes as a message (or as the caption of the campaign's image, sent by URL)
with an inline keyboard: the link button, then the one-tap opt-out button. Pacing is the
broadcast worker's (``bot/broadcast.py``): about 30 messages a second for all workers,
and a 429's ``retry_after`` stops every worker for that long.

Telegram has no idempotency key, so an answer that may hide a delivery (a timeout, a
connection dropped after the request went out, a 5xx) is :attr:`SendOutcome.UNKNOWN`:
the worker then never sends that chat the promotion again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.channels.telegram import CHANNEL, _seconds, open_bot
from core.domain import PromotionMessage
from core.ports import SendOutcome, SendResult

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = ["TelegramBulkSender", "open_telegram_bulk"]

log = logging.getLogger(__name__)

#: How long to wait before trying again after a connection that never opened.
CONNECT_RETRY_SECONDS = 5.0
#: A token Telegram refuses: every send fails the same way until an operator fixes it.
TOKEN_RETRY_SECONDS = 60.0


def keyboard(message: PromotionMessage) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if message.link_url and message.link_label:
        rows.append([InlineKeyboardButton(message.link_label, url=message.link_url)])
    rows.append([InlineKeyboardButton(message.optout_label, callback_data=message.optout_payload)])
    return InlineKeyboardMarkup(rows)


class TelegramBulkSender:
    """One promotion to one Telegram chat per call."""

    channel = CHANNEL
    max_batch = 1
    idempotent = False

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(
        self, chat_ids: Sequence[str], message: PromotionMessage, *, retry_key: str
    ) -> SendResult:
        (chat_id,) = chat_ids
        markup = keyboard(message)
        try:
            if message.image_url:
                await self.bot.send_photo(
                    chat_id, photo=message.image_url, caption=message.text, reply_markup=markup
                )
            else:
                await self.bot.send_message(chat_id, message.text, reply_markup=markup)
        except RetryAfter as exc:
            return SendResult(SendOutcome.RETRY, retry_after=_seconds(exc), reason="429")
        except Forbidden:
            return SendResult(SendOutcome.BLOCKED, reason="blocked by the user")
        except ChatMigrated:
            return SendResult(SendOutcome.FAILED, reason="chat migrated")
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                return SendResult(SendOutcome.BLOCKED, reason="chat not found")
            return SendResult(SendOutcome.FAILED, reason=f"400: {exc.message[:120]}")
        except InvalidToken:
            return SendResult(
                SendOutcome.RETRY, retry_after=TOKEN_RETRY_SECONDS, reason="token rejected"
            )
        except TimedOut:
            return SendResult(SendOutcome.UNKNOWN, reason="timed out")
        except NetworkError as exc:
            # PTB names the httpx error: a connection that never opened sent nothing.
            if "ConnectError" in str(exc):
                return SendResult(
                    SendOutcome.RETRY, retry_after=CONNECT_RETRY_SECONDS, reason="connect error"
                )
            return SendResult(SendOutcome.UNKNOWN, reason=f"network: {type(exc).__name__}")
        except TelegramError as exc:
            return SendResult(SendOutcome.UNKNOWN, reason=f"telegram: {type(exc).__name__}")
        return SendResult(SendOutcome.SENT)


@contextlib.asynccontextmanager
async def open_telegram_bulk(settings: Settings) -> AsyncIterator[TelegramBulkSender]:
    """A sender over the configured bot token and Bot API URL, closed at the end."""
    async with open_bot(settings) as bot:
        yield TelegramBulkSender(bot)
