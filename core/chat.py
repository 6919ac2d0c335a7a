"""Channel-neutral chat messages: what a customer sends and what the bot replies.

Every channel adapter (terminal, Telegram, LINE) translates its platform's updates into
an :class:`Incoming` and renders :data:`Reply` values back; flows see nothing else.
Replies are stored in the outbox as JSON, so each has ``to_json``/``reply_from_json``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# --- inbound -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextMessage:
    text: str


@dataclass(frozen=True, slots=True)
class CommandMessage:
    """``/name arg`` (Telegram deep links arrive as ``/start payload``)."""

    name: str
    arg: str = ""


@dataclass(frozen=True, slots=True)
class ButtonPress:
    payload: str


@dataclass(frozen=True, slots=True)
class SharedContact:
    """A phone number the user shared; ``is_own`` is False when the contact card is
    someone else's (Telegram: ``contact.user_id`` differs from the sender)."""

    phone: str
    is_own: bool


@dataclass(frozen=True, slots=True)
class UnsupportedMessage:
    kind: str


@dataclass(frozen=True, slots=True)
class AccountLinkResult:
    """LINE's account-link event: the ``nonce`` we issued, and whether the user agreed."""

    nonce: str
    ok: bool


InboundEvent = (
    TextMessage
    | CommandMessage
    | ButtonPress
    | SharedContact
    | UnsupportedMessage
    | AccountLinkResult
)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One update from one chat. ``event_id`` is the platform's id for the update, the
    inbox's idempotency key; ``message_ref`` identifies the user's message on the
    platform (used to delete a message that held a password)."""

    channel: str
    chat_id: str
    event_id: str
    event: InboundEvent
    received_at: datetime
    message_ref: str | None = None


def parse_text(channel: str, text: str) -> InboundEvent:
    """Turn typed text into a command (``/bill``, ``/start payload``) or plain text."""
    stripped = text.strip()
    if stripped.startswith("/") and len(stripped) > 1:
        head, _, arg = stripped[1:].partition(" ")
        name = head.split("@", 1)[0].lower()  # Telegram groups: /bill@SelfcareBot
        if name.isascii() and name.replace("_", "").isalnum():
            return CommandMessage(name=name, arg=arg.strip())
    return TextMessage(text=text)


# --- outbound ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    payload: str


@dataclass(frozen=True, slots=True)
class LinkButton:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class TextReply:
    text: str
    buttons: tuple[tuple[Button | LinkButton, ...], ...] = ()
    request_contact: str | None = None  # label of a "share my number" button
    # The reply asks for a secret (a password): the terminal reads the answer without echo.
    secret: bool = False


@dataclass(frozen=True, slots=True)
class ImageReply:
    png: bytes
    caption: str = ""
    filename: str = "image.png"


@dataclass(frozen=True, slots=True)
class FileReply:
    filename: str
    content: bytes
    mime_type: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class DeleteUserMessage:
    message_ref: str


Reply = TextReply | ImageReply | FileReply | DeleteUserMessage


def _button_to_json(button: Button | LinkButton) -> dict[str, str]:
    if isinstance(button, LinkButton):
        return {"label": button.label, "url": button.url}
    return {"label": button.label, "payload": button.payload}


def _button_from_json(raw: dict[str, str]) -> Button | LinkButton:
    if "url" in raw:
        return LinkButton(label=raw["label"], url=raw["url"])
    return Button(label=raw["label"], payload=raw["payload"])


def reply_to_json(reply: Reply) -> dict[str, Any]:
    """A JSON-serialisable form of ``reply`` (bytes as base64)."""
    match reply:
        case TextReply():
            return {
                "type": "text",
                "text": reply.text,
                "buttons": [[_button_to_json(b) for b in row] for row in reply.buttons],
                "request_contact": reply.request_contact,
                "secret": reply.secret,
            }
        case ImageReply():
            return {
                "type": "image",
                "png": base64.b64encode(reply.png).decode("ascii"),
                "caption": reply.caption,
                "filename": reply.filename,
            }
        case FileReply():
            return {
                "type": "file",
                "filename": reply.filename,
                "content": base64.b64encode(reply.content).decode("ascii"),
                "mime_type": reply.mime_type,
                "caption": reply.caption,
            }
        case DeleteUserMessage():
            return {"type": "delete", "message_ref": reply.message_ref}


def reply_from_json(raw: dict[str, Any]) -> Reply:
    """The inverse of :func:`reply_to_json`; raises ``ValueError`` on an unknown type."""
    kind: Literal["text", "image", "file", "delete"] = raw["type"]
    if kind == "text":
        return TextReply(
            text=raw["text"],
            buttons=tuple(tuple(_button_from_json(b) for b in row) for row in raw["buttons"]),
            request_contact=raw.get("request_contact"),
            secret=bool(raw.get("secret", False)),
        )
    if kind == "image":
        return ImageReply(
            png=base64.b64decode(raw["png"]), caption=raw["caption"], filename=raw["filename"]
        )
    if kind == "file":
        return FileReply(
            filename=raw["filename"],
            content=base64.b64decode(raw["content"]),
            mime_type=raw["mime_type"],
            caption=raw["caption"],
        )
    if kind == "delete":
        return DeleteUserMessage(message_ref=raw["message_ref"])
    raise ValueError(f"unknown reply type {kind!r}")


@dataclass(slots=True)
class Outgoing:
    """Replies for one chat, in order, as the outbox hands them to a channel."""

    channel: str
    chat_id: str
    replies: list[Reply] = field(default_factory=list)
