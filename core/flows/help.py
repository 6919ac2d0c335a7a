"""/help: what the bot can do and the commands that do it.

Features that are not built yet are listed as "coming soon" (the registry says which).
"""

from __future__ import annotations

from core.chat import Reply
from core.flows.context import FlowContext
from core.flows.menu import with_menu
from core.i18n import Translator

__all__ = ["handle", "help_text"]


def _summaries(t: Translator) -> tuple[tuple[str, str], ...]:
    return (
        ("bill", t._("see your latest bill and how much is due")),
        ("pay", t._("pay a bill by PromptPay QR code or a payment link")),
        ("profile", t._("see your details and correct anything that is wrong")),
        ("consent", t._("choose whether you get promotions")),
        ("link", t._("connect this chat to your e-service User ID")),
        ("unlink", t._("disconnect this chat from your account")),
        ("mydata", t._("get a copy of your data")),
        ("forget", t._("erase the data this chat service keeps about you")),
        ("lang", t._("switch between Thai and English")),
        ("privacy", t._("how we look after your data")),
        ("cancel", t._("stop what you are doing")),
        ("menu", t._("show the menu")),
    )


def help_text(ctx: FlowContext) -> str:
    t = ctx.t
    lines = [t._("Here is what I can help with:")]
    for command, summary in _summaries(t):
        if ctx.router.for_command(command) is None:
            continue
        soon = "" if ctx.router.is_available(command) else " " + t._("(coming soon)")
        lines.append(f"/{command} – {summary}{soon}")
    lines.append("")
    lines.append(t._('You can also just type what you need, for example "bill" or "pay".'))
    return "\n".join(lines)


async def handle(ctx: FlowContext) -> list[Reply]:
    return [with_menu(ctx.t, help_text(ctx))]
