"""Placeholders for features later issues build (/link, /bill, /pay, …).

They say plainly, in the chat's language, that the feature is not in the chat yet, and show
the menu; for a PDPA right they say how to exercise it meanwhile. No data is made up. To
build a feature, replace its ``coming_soon(...)`` row in ``core/flows/registry.py``.
"""

from __future__ import annotations

from core.chat import Reply
from core.flows.context import FlowContext
from core.flows.intents import Intent
from core.flows.menu import with_menu
from core.flows.privacy import contact_line
from core.flows.router import Route
from core.i18n import Translator

__all__ = ["coming_soon", "feature_name", "handle"]

# Rights a customer has now, whether or not the chat can serve them yet.
_RIGHTS = frozenset({"profile", "mydata", "forget"})


def feature_name(t: Translator, name: str) -> str:
    match name:
        case "link":
            return t._("linking your account")
        case "unlink":
            return t._("unlinking your account")
        case "bill":
            return t._("bill enquiries")
        case "pay":
            return t._("payments")
        case "profile":
            return t._("viewing and correcting your profile")
        case "consent":
            return t._("promotion settings")
        case "mydata":
            return t._("copies of your data")
        case "forget":
            return t._("erasing your data")
    return t._("this service")


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    text = t._("Sorry, this chat can't help with {feature} yet. We're working on it.").format(
        feature=feature_name(t, ctx.flow)
    )
    if ctx.flow in _RIGHTS:
        text += "\n" + t._("You can still ask for this now through {contact}.").format(
            contact=contact_line(t, ctx.settings)
        )
    return [with_menu(t, text)]


def coming_soon(name: str, *, intents: tuple[Intent, ...] = ()) -> Route:
    """A registry row for a feature not built yet: ``/name``, button ``name`` and
    ``intents`` all get the honest "not yet" reply."""
    return Route(name, handle, commands=(name,), intents=intents, placeholder=True)
