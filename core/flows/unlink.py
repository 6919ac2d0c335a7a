"""/unlink: the chats linked to the customer's account, and removing them.

``/unlink`` (or "my linked chats", or /link in a linked chat) lists every chat linked to
the account, this one marked, with a button to unlink this chat and one to remove each
of the others. A button names another chat by a short hash, never by its id.
"""

from __future__ import annotations

import hashlib

from core.chat import Button, Reply, TextReply
from core.domain import ChatLink
from core.flows.context import FlowContext
from core.flows.link_common import linking
from core.flows.menu import with_menu
from core.i18n import BANGKOK, Translator

__all__ = ["chat_label", "chat_ref", "handle", "overview"]

_CHANNEL_NAMES = {"telegram": "Telegram", "line": "LINE"}


def chat_ref(link: ChatLink) -> str:
    """A short stable name of a linked chat for a button payload (not its id)."""
    return hashlib.sha256(f"{link.channel}:{link.chat_id}".encode()).hexdigest()[:16]


def chat_label(t: Translator, link: ChatLink) -> str:
    """``Telegram …5678``: the channel and the end of the chat id (a terminal chat's id is
    the name its user gave it)."""
    name = _CHANNEL_NAMES.get(str(link.channel))
    if name is None:
        return t._("Terminal {name}").format(name=link.chat_id[:16])
    return f"{name} …{link.chat_id[-4:]}"


async def overview(ctx: FlowContext, current: ChatLink, lead: str) -> list[Reply]:
    """The chats linked to the account of ``current`` (this chat's link)."""
    t = ctx.t
    ctx.leave()
    chats = await ctx.uow.links.for_customer(current.customer_id)
    lines = [lead, "", t._("Chats linked to your account:")]
    rows: list[tuple[Button, ...]] = [(Button(t._("🔓 Unlink this chat"), "unlink:this"),)]
    for number, chat in enumerate(chats, start=1):
        since = t.date(chat.linked_at.astimezone(BANGKOK).date())
        line = f"{number}. {chat_label(t, chat)}, " + t._("linked {date}").format(date=since)
        if (str(chat.channel), chat.chat_id) == (current.channel.value, current.chat_id):
            line += " " + t._("(this chat)")
        else:
            rows.append(
                (
                    Button(
                        t._("🗑 Remove {number}").format(number=number), f"unlink:{chat_ref(chat)}"
                    ),
                )
            )
        lines.append(line)
    rows.append((Button(t._("🏠 Menu"), "menu"),))
    return [TextReply("\n".join(lines), buttons=tuple(rows))]


async def handle(ctx: FlowContext) -> list[Reply]:
    """``/unlink``, the UNLINK intent and the ``unlink:this`` / ``unlink:<ref>`` buttons."""
    t = ctx.t
    channel, chat_id = ctx.incoming.channel, ctx.incoming.chat_id
    current = await ctx.uow.links.get(channel, chat_id)
    if current is None:
        ctx.leave()
        return [
            with_menu(
                t,
                t._("This chat isn't linked to an account, so there's nothing to unlink.")
                + "\n"
                + t._("To link it: /link"),
            )
        ]
    arg = ctx.arg.strip()
    if not arg:
        return await overview(ctx, current, t._("This chat is linked to your account."))
    service = linking(ctx)
    if arg == "this":
        ctx.leave()
        await service.unlink(
            ctx.uow, channel=channel, chat_id=chat_id, by_customer=current.customer_id, now=ctx.now
        )
        return [
            with_menu(
                t,
                t._(
                    "Done. This chat is no longer linked to your account, so your bills and "
                    "details won't be shown here. To link it again: /link"
                ),
            )
        ]
    others = await ctx.uow.links.for_customer(current.customer_id)
    target = next((chat for chat in others if chat_ref(chat) == arg), None)
    if target is None:
        return await overview(ctx, current, t._("That chat is no longer linked."))
    await service.unlink(
        ctx.uow,
        channel=str(target.channel),
        chat_id=target.chat_id,
        by_customer=current.customer_id,
        now=ctx.now,
    )
    return await overview(
        ctx,
        current,
        t._("Done. {chat} is no longer linked to your account.").format(chat=chat_label(t, target)),
    )
