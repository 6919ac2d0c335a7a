"""The one table of flows: which commands, buttons and intents reach which flow.

To add a dialogue, write ``core/flows/<name>.py`` with ``async def handle(ctx)`` (and
``async def answer(ctx, event)`` if it asks follow-up questions) and add or replace its
row here. A button whose payload is ``<name>`` or ``<name>:<arg>`` reaches the row named
``<name>``. :class:`~core.flows.router.Router` checks that nothing is claimed twice.
"""

from __future__ import annotations

from core.flows import cancel, lang, menu, privacy, start
from core.flows import help as help_flow
from core.flows.intents import Intent
from core.flows.router import Route, Router
from core.flows.unavailable import coming_soon

__all__ = ["ROUTES", "default_router"]

ROUTES: tuple[Route, ...] = (
    Route("start", start.handle, commands=("start",), intents=(Intent.GREETING,)),
    Route("menu", menu.handle, commands=("menu",), intents=(Intent.MENU,)),
    Route("help", help_flow.handle, commands=("help",), intents=(Intent.HELP,)),
    Route(
        "lang",
        lang.handle,
        commands=("lang",),
        intents=(Intent.LANGUAGE, Intent.LANG_TH, Intent.LANG_EN),
        step=lang.answer,
    ),
    Route(
        "cancel", cancel.handle, commands=("cancel",), intents=(Intent.CANCEL,), keeps_dialogue=True
    ),
    Route("privacy", privacy.handle, commands=("privacy",), intents=(Intent.PRIVACY,)),
    # Not built yet: each answers honestly "not in the chat yet". Replace the row to build it.
    coming_soon("link", intents=(Intent.LINK,)),
    coming_soon("unlink", intents=(Intent.UNLINK,)),
    coming_soon("bill", intents=(Intent.BILL,)),
    coming_soon("pay", intents=(Intent.PAY,)),
    coming_soon("profile", intents=(Intent.PROFILE,)),
    coming_soon("consent", intents=(Intent.CONSENT,)),
    coming_soon("mydata", intents=(Intent.MYDATA,)),
    coming_soon("forget", intents=(Intent.FORGET,)),
)


def default_router() -> Router:
    """The router of the bot, built from :data:`ROUTES`."""
    return Router(ROUTES)
