"""The one-tap opt-out button under every promotion (``optout:<campaign id>``).

One tap withdraws the customer's marketing consent: a withdrawal is appended to the
consent ledger (purpose ``marketing``, the notice version in force, the channel, now), a
``consent.changed`` event goes to subscribers, and the chat is told in its language how
to opt in again. From then on the broadcast worker sends that customer nothing: it checks
the ledger right before each send. A second tap changes nothing and says so.
"""

from __future__ import annotations

import logging

from core.chat import Reply
from core.domain import ConsentPurpose, ConsentRecord
from core.flows.context import FlowContext
from core.flows.menu import with_menu
from core.integration_events import consent_changed

__all__ = ["handle"]

logger = logging.getLogger(__name__)


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    conversation = ctx.conversation
    link = await ctx.uow.links.get(conversation.channel, conversation.chat_id)
    if link is None:
        text = t._(
            "This chat is not linked to an account, so no promotions are sent to it. "
            "Nothing to stop here."
        )
        return [with_menu(t, text)]
    history = await ctx.uow.consent.history(link.customer_id)
    marketing = [r for r in history if r.purpose is ConsentPurpose.MARKETING]
    if not marketing or not marketing[-1].granted:
        text = t._(
            "You are not receiving promotions from us. If you change your mind, "
            "you can opt in any time with /consent."
        )
        return [with_menu(t, text)]
    withdrawal = ConsentRecord(
        customer_id=link.customer_id,
        purpose=ConsentPurpose.MARKETING,
        granted=False,
        notice_version=ctx.settings.privacy_notice_version,
        channel=conversation.channel,
        recorded_at=ctx.now,
    )
    await ctx.uow.consent.record(withdrawal)
    customer = await ctx.uow.customers.get(link.customer_id)
    if customer is not None:
        await ctx.uow.events.publish(
            consent_changed(
                account_no=customer.account_no,
                purpose=withdrawal.purpose.value,
                granted=False,
                notice_version=withdrawal.notice_version,
                channel=withdrawal.channel,
                recorded_at=withdrawal.recorded_at,
            ),
            occurred_at=ctx.now,
        )
    campaign = ctx.arg if len(ctx.arg) == 32 and ctx.arg.isalnum() else "unknown"
    logger.info(
        "promotions opted out", extra={"channel": conversation.channel, "campaign": campaign}
    )
    text = t._(
        "Done: you will get no more promotions from us, on any chat. "
        "Messages about your own bills still come. To opt in again any time: /consent."
    )
    return [with_menu(t, text)]
