"""/cancel: leave whatever multi-step dialogue the chat is in, say so, show the menu."""

from __future__ import annotations

from core.chat import Reply
from core.flows.context import FlowContext
from core.flows.menu import with_menu

__all__ = ["handle"]


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    if ctx.conversation.flow is None:
        return [with_menu(t, t._("There's nothing to cancel right now."))]
    ctx.leave()
    return [with_menu(t, t._("OK, I've cancelled that."))]
