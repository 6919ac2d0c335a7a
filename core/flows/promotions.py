"""The one-tap opt-out button under every promotion (``optout:<campaign id>``).

One tap withdraws the customer's marketing consent the way ``/consent`` does
(:func:`core.services.consent.set_consent`: a withdrawal appended to the ledger with the
notice version in force, the channel and the time, audited, published as
``consent.changed``), and the chat is told in its language how to opt in again. From then
on the broadcast worker sends that customer nothing: it checks the ledger right before
each send. A second tap changes nothing and says so.
"""

from __future__ import annotations

import logging

from core.chat import Reply
from core.domain import ConsentPurpose
from core.flows.context import FlowContext
from core.flows.menu import with_menu
from core.services.consent import set_consent

__all__ = ["handle"]

logger = logging.getLogger(__name__)


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    conversation = ctx.conversation
    link = await ctx.uow.links.get(conversation.channel, conversation.chat_id)
    customer = await ctx.uow.customers.get(link.customer_id) if link is not None else None
    if customer is None:
        text = t._(
            "This chat is not linked to an account, so no promotions are sent to it. "
            "Nothing to stop here."
        )
        return [with_menu(t, text)]
    withdrawn = await set_consent(
        ctx.uow,
        customer,
        ConsentPurpose.MARKETING,
        False,
        channel=conversation.channel,
        notice_version=ctx.settings.privacy_notice_version,
        now=ctx.now,
    )
    if not withdrawn:
        text = t._(
            "You are not receiving promotions from us. If you change your mind, "
            "you can opt in any time with /consent."
        )
        return [with_menu(t, text)]
    campaign = ctx.arg if len(ctx.arg) == 32 and ctx.arg.isalnum() else "unknown"
    logger.info(
        "promotions opted out", extra={"channel": conversation.channel, "campaign": campaign}
    )
    text = t._(
        "Done: you will get no more promotions from us, on any chat. "
        "Messages about your own bills still come. To opt in again any time: /consent."
    )
    return [with_menu(t, text)]
