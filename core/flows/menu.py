"""/menu: the main menu, and the keyboard every other flow ends with.

Each button's payload is the name of a route in the registry.
"""

from __future__ import annotations

from core.chat import Button, Reply, TextReply
from core.flows.context import FlowContext
from core.i18n import Translator

__all__ = ["handle", "keyboard", "prompt", "with_menu"]


def keyboard(t: Translator) -> tuple[tuple[Button, ...], ...]:
    """The main menu as rows of buttons. Labels stay short (LINE allows 20 characters)."""
    return (
        (Button(t._("🧾 My bill"), "bill"), Button(t._("💳 Pay"), "pay")),
        (Button(t._("👤 My profile"), "profile"), Button(t._("📣 Promotions"), "consent")),
        (Button(t._("🌐 Language / ภาษา"), "lang"), Button(t._("❓ Help"), "help")),
        (Button(t._("🔒 Privacy"), "privacy"),),
    )


def prompt(t: Translator) -> str:
    return t._("What would you like to do? Choose from the menu below.")


def with_menu(t: Translator, text: str) -> TextReply:
    """``text`` with the main menu under it."""
    return TextReply(text=text, buttons=keyboard(t))


async def handle(ctx: FlowContext) -> list[Reply]:
    return [with_menu(ctx.t, prompt(ctx.t))]
