""" "Report wrong data" (button ``correction``, or text like "ข้อมูลผิด", "my name is wrong").

The customer picks what is wrong (``correction:<field>``), then says in their own words
what it should be. The report is stored encrypted and sent to staff
(``core/services/corrections.py``); the customer gets a reference and is told here when
staff have dealt with it.
"""

from __future__ import annotations

from core.chat import Button, InboundEvent, Reply, TextMessage, TextReply
from core.domain import ProfileField
from core.flows.bill import linked_customer
from core.flows.context import FlowContext
from core.flows.menu import with_menu
from core.flows.profile import needs_link
from core.services.corrections import MAX_TEXT, clean_text, field_name, request_correction

__all__ = ["answer", "handle", "reference"]

STEP_FIELD = "field"
STEP_TEXT = "text"


def reference(request_id: str) -> str:
    """The short reference a customer quotes: the first 8 characters of the id."""
    return request_id[:8].upper()


def _ask_field(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    ctx.enter(STEP_FIELD)
    rows = tuple(
        (Button(field_name(t, field).capitalize(), f"correction:{field.value}"),)
        for field in ProfileField
    )
    text = t._(
        "Which of your details is wrong? (You can change your address, email and mobile "
        "number yourself in /profile; for your name and anything else, we check and fix it.)"
    )
    return [TextReply(text, buttons=(*rows, (Button(t._("↩️ Cancel"), "cancel"),)))]


def _ask_text(ctx: FlowContext, field: ProfileField, note: str | None = None) -> list[Reply]:
    t = ctx.t
    ctx.enter(STEP_TEXT, {"field": field.value})
    question = t._(
        "Please tell me in one message what is wrong with your {field} and what it should "
        "be (up to {limit} characters)."
    ).format(field=field_name(t, field), limit=MAX_TEXT)
    return [TextReply(question if note is None else f"{note}\n{question}")]


async def handle(ctx: FlowContext) -> list[Reply]:
    """The ``correction`` and ``correction:<field>`` buttons and the CORRECTION intent."""
    t = ctx.t
    if await linked_customer(ctx) is None:
        ctx.leave()
        return [needs_link(t, t._("I can take a report about your data once I know who you are."))]
    try:
        field = ProfileField(ctx.arg.strip())
    except ValueError:
        return _ask_field(ctx)
    return _ask_text(ctx, field)


async def answer(ctx: FlowContext, event: InboundEvent) -> list[Reply] | None:
    t = ctx.t
    if ctx.conversation.step != STEP_TEXT or not isinstance(event, TextMessage):
        return None
    customer = await linked_customer(ctx)
    raw_field = ctx.conversation.data.get("field")
    if customer is None or not isinstance(raw_field, str):
        return None
    field = ProfileField(raw_field)
    text = clean_text(event.text, limit=MAX_TEXT)
    if text is None:
        return _ask_text(
            ctx,
            field,
            t._("Please write a few words, {limit} characters at most.").format(limit=MAX_TEXT),
        )
    request = await request_correction(
        ctx.uow, customer, field, text, channel=ctx.incoming.channel, now=ctx.now
    )
    ctx.leave()
    return [
        with_menu(
            t,
            t._(
                "Thank you. Your report about your {field} is with our team "
                "(reference {reference}). I'll tell you here when it has been dealt with."
            ).format(field=field_name(t, field), reference=reference(request.id)),
        )
    ]
