"""The one table of flows: which commands, buttons and intents reach which flow.

To add a dialogue, write ``core/flows/<name>.py`` with ``async def handle(ctx)`` (and
``async def answer(ctx, event)`` if it asks follow-up questions) and add or replace its
row here. A button whose payload is ``<name>`` or ``<name>:<arg>`` reaches the row named
``<name>``. :class:`~core.flows.router.Router` checks that nothing is claimed twice.
"""

from __future__ import annotations

from core.chat import AccountLinkResult
from core.flows import (
    bill,
    cancel,
    consent,
    correction,
    forget,
    lang,
    link,
    menu,
    mydata,
    pay,
    privacy,
    profile,
    promotions,
    start,
    unlink,
)
from core.flows import help as help_flow
from core.flows.intents import Intent
from core.flows.router import Route, Router

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
    Route(
        "link",
        link.handle,
        commands=("link",),
        intents=(Intent.LINK,),
        step=link.answer,
        events=(AccountLinkResult,),
        secret_steps=link.SECRET_STEPS,
    ),
    Route("unlink", unlink.handle, commands=("unlink",), intents=(Intent.UNLINK,)),
    Route("bill", bill.handle, commands=("bill",), intents=(Intent.BILL,), step=bill.answer),
    Route("pay", pay.handle, commands=("pay",), intents=(Intent.PAY,), step=pay.answer),
    # the one-tap opt-out button under every promotion (button payload optout:<campaign>)
    Route("optout", promotions.handle),
    Route(
        "profile",
        profile.handle,
        commands=("profile",),
        intents=(Intent.PROFILE,),
        step=profile.answer,
    ),
    # "Report wrong data" (a button of /profile, or text such as "ข้อมูลผิด")
    Route("correction", correction.handle, intents=(Intent.CORRECTION,), step=correction.answer),
    Route("consent", consent.handle, commands=("consent",), intents=(Intent.CONSENT,)),
    Route("mydata", mydata.handle, commands=("mydata",), intents=(Intent.MYDATA,)),
    Route(
        "forget", forget.handle, commands=("forget",), intents=(Intent.FORGET,), step=forget.answer
    ),
)


def default_router() -> Router:
    """The router of the bot, built from :data:`ROUTES`."""
    return Router(ROUTES)
