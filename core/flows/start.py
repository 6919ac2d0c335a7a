"""/start: a greeting (by name when the chat is linked) and the menu.

``/start <payload>`` is a deep link: ``<command>`` or ``<command>-<arg>`` /
``<command>_<arg>`` runs that command after the greeting (``/start bill``,
``/start lang-en``, later ``/start link-<token>``); an unknown payload is ignored.
Saying hello ("สวัสดี", "hi") comes here too. The privacy notice a first contact sees is
added by the conversation service, whatever the first message is.
"""

from __future__ import annotations

import re

from core.chat import CommandMessage, Reply, TextReply
from core.flows.context import FlowContext
from core.flows.menu import prompt, with_menu

__all__ = ["handle"]

# Telegram allows A-Z a-z 0-9 _ - in a start payload, up to 64 characters.
_DEEP_LINK = re.compile(r"([a-z]+)(?:[-_]([a-z0-9_-]{1,60}))?", re.IGNORECASE)


async def _linked_customer_name(ctx: FlowContext) -> str | None:
    conversation = ctx.conversation
    link = await ctx.uow.links.get(conversation.channel, conversation.chat_id)
    if link is None:
        return None
    customer = await ctx.uow.customers.get(link.customer_id)
    return customer.name if customer is not None and customer.name.strip() else None


async def _follow_deep_link(ctx: FlowContext) -> list[Reply] | None:
    if not isinstance(ctx.event, CommandMessage):
        return None
    found = _DEEP_LINK.fullmatch(ctx.arg.strip())
    if found is None:
        return None
    command, arg = found.group(1).lower(), found.group(2) or ""
    if command == ctx.flow:
        return None
    return await ctx.router.run_command(ctx, command, arg)


async def handle(ctx: FlowContext) -> list[Reply]:
    # The deep link runs first: it may switch the language the greeting is written in.
    followed = await _follow_deep_link(ctx)
    t = ctx.t
    name = await _linked_customer_name(ctx)
    if name is not None:
        greeting = t._("Hello {name}, welcome back!").format(name=name)
    else:
        greeting = t._("Hello! Welcome to the {operator} self-service chat.").format(
            operator=ctx.settings.operator_name
        )
    if followed is not None:
        return [TextReply(greeting), *followed]
    return [with_menu(t, f"{greeting}\n{prompt(t)}")]
