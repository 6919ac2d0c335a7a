"""What the linking dialogues (``link``, ``link_sms``) and the sign-in page share: the
dialogue's steps, the channel's abilities, the choice of ways to sign in and the
"you're linked" replies."""

from __future__ import annotations

from datetime import datetime

from core.chat import Button, DeleteUserMessage, Reply, TextReply
from core.domain import Channel, Customer
from core.flows.context import FlowContext
from core.flows.menu import prompt, with_menu
from core.i18n import Translator
from core.services.linking import LinkingService

__all__ = [
    "METHODS",
    "STEP_ACCEPT",
    "STEP_CODE",
    "STEP_METHOD",
    "STEP_NEW_PASSWORD",
    "STEP_NEW_USER_ID",
    "STEP_PASSWORD",
    "STEP_PHONE",
    "STEP_USER_ID",
    "accepted_notice",
    "can_delete_messages",
    "delete_secret",
    "linked_replies",
    "linking",
    "method_choice",
    "paused_reply",
]

STEP_ACCEPT = "accept"
STEP_METHOD = "method"
STEP_USER_ID = "user_id"
STEP_PASSWORD = "password"  # noqa: S105 - the name of a step, not a password
STEP_PHONE = "phone"
STEP_CODE = "code"
STEP_NEW_USER_ID = "new_user_id"
STEP_NEW_PASSWORD = "new_password"  # noqa: S105 - the name of a step
#: Ways to sign in, as ``link:<method>`` buttons and ``/link <method>``.
METHODS = ("password", "web", "otp", "register")


def linking(ctx: FlowContext) -> LinkingService:
    return ctx.service(LinkingService)


def can_delete_messages(channel: str) -> bool:
    """Whether the bot can take a password message back at once (Telegram deletes it, the
    terminal never shows it). LINE cannot delete a user's message."""
    return channel != Channel.LINE.value


def accepted_notice(ctx: FlowContext) -> str | None:
    """The privacy-notice version this link dialogue's customer accepted, if any."""
    conversation = ctx.conversation
    if conversation.flow != "link":
        return None
    notice = conversation.data.get("notice")
    return notice if isinstance(notice, str) and notice else None


def delete_secret(ctx: FlowContext) -> list[Reply]:
    """Take the customer's message (a password) back, where the platform can."""
    ref = ctx.incoming.message_ref
    if ref is None or not can_delete_messages(ctx.incoming.channel):
        return []
    return [DeleteUserMessage(message_ref=ref)]


def method_choice(ctx: FlowContext, notice: str, lead: str) -> list[Reply]:
    """Ask how to sign in, with the ways this channel and this deployment offer."""
    t = ctx.t
    service = linking(ctx)
    ctx.enter(STEP_METHOD, {"notice": notice})
    lines = [lead]
    rows: list[tuple[Button, ...]] = []
    if can_delete_messages(ctx.incoming.channel):
        lines.append(t._("🔑 type your User ID and password here (I delete the password at once)"))
        rows.append((Button(t._("🔑 Password in chat"), "link:password"),))
    else:
        lines.append(
            t._(
                "For your safety, please don't type your password in this chat: LINE can't "
                "delete messages. Use the sign-in page instead."
            )
        )
    lines.append(t._("🌐 sign in on a secure one-time page"))
    rows.append((Button(t._("🌐 Sign-in page"), "link:web"),))
    if service.sms_available:
        lines.append(t._("📱 get a code by SMS to the mobile number we have on file"))
        lines.append(t._("📝 no User ID yet? Register with an SMS code"))
        rows.append(
            (Button(t._("📱 SMS code"), "link:otp"), Button(t._("📝 Register"), "link:register"))
        )
    return [TextReply(text="\n".join(lines), buttons=tuple(rows))]


def paused_reply(
    ctx: FlowContext, until: datetime, *, lead: str | None = None, secret: bool = False
) -> TextReply:
    """Sign-in is paused: say until when (Bangkok time) and what else works meanwhile.
    ``secret``: the chat is still asked for a password (the next message gets deleted)."""
    t = ctx.t
    text = t._(
        "For your safety, sign-in with a password is paused. Please try again after {time}."
    ).format(time=t.datetime(until))
    if linking(ctx).sms_available:
        text += "\n" + t._("You can still link with a code by SMS.")
    rows: tuple[tuple[Button, ...], ...] = ()
    if linking(ctx).sms_available:
        rows = ((Button(t._("📱 SMS code"), "link:otp"),),)
    return TextReply(text=text if lead is None else f"{lead}\n{text}", buttons=rows, secret=secret)


def linked_replies(
    t: Translator, customer: Customer | None, lead: str | None = None
) -> list[Reply]:
    """The confirmation a chat gets when it has just been linked, greeting by name."""
    done = lead or t._("Done! This chat is now linked to your e-service account.")
    if customer is not None and customer.name.strip():
        greeting = t._("Hello {name}, welcome back!").format(name=customer.name)
        return [TextReply("✅ " + done), with_menu(t, f"{greeting}\n{prompt(t)}")]
    return [TextReply("✅ " + done), with_menu(t, prompt(t))]
