"""/forget: erase what this chat service keeps about the customer, after they confirm.

``/forget`` (or "ลบข้อมูล", "delete my data") says what will be erased and what is kept,
and asks for confirmation (``forget:yes``, or typing "ยืนยัน" / "confirm" in the dialogue).
Only then are every chat unlinked and the data deleted
(``core/services/privacy_rights.py``). A confirmation button pressed outside the
dialogue (stale, or from another chat) only asks again.
"""

from __future__ import annotations

from core.chat import Button, InboundEvent, Reply, TextMessage, TextReply
from core.flows.bill import linked_customer
from core.flows.context import FlowContext
from core.flows.intents import Intent, detect_intent, normalise
from core.flows.menu import with_menu
from core.flows.privacy import contact_line
from core.services.privacy_rights import erase_customer

__all__ = ["answer", "handle"]

STEP_CONFIRM = "confirm"
_YES = frozenset(normalise(w) for w in ("ยืนยัน", "ยืนยันลบ", "ใช่", "confirm", "yes", "yes erase"))
_NO = frozenset(normalise(w) for w in ("ไม่", "ไม่ลบ", "no", "keep", "ไม่ใช่"))


def _ask(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    ctx.enter(STEP_CONFIRM)
    lines = [
        t._("🗑 Erase your data from this chat service?"),
        "",
        t._("If you confirm, I will:"),
        t._("• unlink every chat connected to your account (Telegram, LINE…);"),
        t._("• delete our conversations and the messages I keep copies of;"),
        t._(
            "• delete this service's copy of your details, e-service User ID, bills, "
            "payments, consents and reports, so that they cannot be recovered."
        ),
        "",
        t._(
            "Kept: only a record that an erasure happened, with no personal data. Your "
            "contract and billing records at {operator} stay in its own systems as the law "
            "requires; for those, contact {contact}."
        ).format(operator=ctx.settings.operator_name, contact=contact_line(t, ctx.settings)),
        "",
        t._("This cannot be undone. Are you sure?"),
    ]
    buttons = (
        (Button(t._("🗑 Yes, erase my data"), "forget:yes"),),
        (Button(t._("↩️ No, keep it"), "cancel"),),
    )
    return [TextReply("\n".join(lines), buttons=buttons)]


async def _erase(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    ctx.leave()
    customer = await linked_customer(ctx)
    if customer is None:
        return [with_menu(t, t._("This chat is no longer linked to an account: nothing to erase."))]
    erasure = await erase_customer(
        ctx.uow,
        customer,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        now=ctx.now,
    )
    text = t.ngettext(
        "✅ Done. I have erased the data this chat service kept about you and unlinked "
        "your {n} chat.",
        "✅ Done. I have erased the data this chat service kept about you and unlinked "
        "your {n} chats.",
        erasure.chats_unlinked,
    ).format(n=erasure.chats_unlinked)
    text += "\n" + t._("To use your account here again, link this chat: /link")
    return [with_menu(t, text)]


async def handle(ctx: FlowContext) -> list[Reply]:
    """``/forget``, the FORGET intent, and the ``forget:yes`` button."""
    t = ctx.t
    conversation = ctx.conversation
    confirming = conversation.flow == "forget" and conversation.step == STEP_CONFIRM
    if await linked_customer(ctx) is None:
        ctx.leave()
        return [
            with_menu(
                t,
                t._(
                    "This chat isn't linked to an account, so this service keeps no personal "
                    "data of yours here. For data held elsewhere, contact {contact}."
                ).format(contact=contact_line(t, ctx.settings)),
            )
        ]
    if ctx.arg.strip() == "yes" and confirming:
        return await _erase(ctx)
    return _ask(ctx)


async def answer(ctx: FlowContext, event: InboundEvent) -> list[Reply] | None:
    """A typed answer to "are you sure?"."""
    if not isinstance(event, TextMessage):
        return None
    said = normalise(event.text)
    if said in _YES:
        return await _erase(ctx)
    if said in _NO or detect_intent(event.text) is Intent.CANCEL:
        ctx.leave()
        return [with_menu(ctx.t, ctx.t._("OK, nothing was erased."))]
    return None
