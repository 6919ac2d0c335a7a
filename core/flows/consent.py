"""/consent: what the customer agreed to, and one tap to give or withdraw each.

- ``/consent`` (or "โปรโมชัน", "marketing", the menu's promotions button): each purpose
  (promotions, personalised offers, sharing with partners) with what it means, whether it
  is given and since when, and one button: give it, or withdraw it. Withdrawing is the
  same single tap as giving.
- ``consent:<purpose>:on|off``: record the choice (append-only ledger: notice version,
  time, channel) and show the new state. A repeated tap records nothing.
- ``consent:history`` or ``/consent history``: every record, newest first.
"""

from __future__ import annotations

from core.chat import Button, Reply, TextReply
from core.domain import ConsentPurpose, ConsentRecord, Customer
from core.flows.bill import linked_customer
from core.flows.context import FlowContext
from core.flows.profile import needs_link
from core.i18n import Translator
from core.services.consent import PURPOSES, ConsentState, consent_state, set_consent

__all__ = ["handle", "purpose_name"]

HISTORY_SHOWN = 20
_CHANNEL_NAMES = {"telegram": "Telegram", "line": "LINE"}


def purpose_name(t: Translator, purpose: ConsentPurpose) -> str:
    match purpose:
        case ConsentPurpose.MARKETING:
            return t._("Promotions")
        case ConsentPurpose.PERSONALISATION:
            return t._("Personalised offers")
        case ConsentPurpose.PARTNER_DISCLOSURE:
            return t._("Sharing with partners")
        case ConsentPurpose.PRIVACY_NOTICE:
            return t._("Privacy notice")
    return str(purpose)


def _meaning(t: Translator, purpose: ConsentPurpose, operator: str) -> str:
    match purpose:
        case ConsentPurpose.MARKETING:
            return t._("offers and news from {operator} in this chat").format(operator=operator)
        case ConsentPurpose.PERSONALISATION:
            return t._("using your plans and bills to choose offers that suit you")
        case ConsentPurpose.PARTNER_DISCLOSURE:
            return t._("giving your name and contact details to our partners for their offers")
    return ""


def _short(t: Translator, purpose: ConsentPurpose) -> str:
    """A button-sized name (LINE labels hold 20 characters)."""
    match purpose:
        case ConsentPurpose.MARKETING:
            return t._("Promotions")
        case ConsentPurpose.PERSONALISATION:
            return t._("Tailored offers")
        case ConsentPurpose.PARTNER_DISCLOSURE:
            return t._("Partner sharing")
    return str(purpose)


def _state_line(t: Translator, record: ConsentRecord | None) -> str:
    if record is None:
        return t._("not given")
    when = t.date(record.recorded_at.date())
    if record.granted:
        return t._("given ✅ (since {date})").format(date=when)
    return t._("not given ❌ (withdrawn {date})").format(date=when)


def _channel(t: Translator, channel: str) -> str:
    if channel == "terminal":
        return t._("terminal")
    return _CHANNEL_NAMES.get(channel, channel)


def _screen(ctx: FlowContext, state: ConsentState, lead: str | None = None) -> list[Reply]:
    t = ctx.t
    lines = [lead, ""] if lead else []
    lines.append(t._("📣 Your choices"))
    for number, purpose in enumerate(PURPOSES, start=1):
        lines.append(
            f"{number}. {purpose_name(t, purpose)}: "
            f"{_state_line(t, state.latest[purpose])}\n   "
            f"({_meaning(t, purpose, ctx.settings.operator_name)})"
        )
    lines.append("")
    lines.append(
        t._(
            "Tap a button to give (✅) or withdraw (🚫) a consent. Messages about your own "
            "bills don't depend on these."
        )
    )
    rows: list[tuple[Button, ...]] = []
    for purpose in PURPOSES:
        if state.granted(purpose):
            label = "🚫 " + _short(t, purpose)
            rows.append((Button(label, f"consent:{purpose.value}:off"),))
        else:
            label = "✅ " + _short(t, purpose)
            rows.append((Button(label, f"consent:{purpose.value}:on"),))
    rows.append((Button(t._("📜 History"), "consent:history"), Button(t._("🏠 Menu"), "menu")))
    return [TextReply("\n".join(lines), buttons=tuple(rows))]


def _history(ctx: FlowContext, state: ConsentState) -> list[Reply]:
    t = ctx.t
    lines = [t._("📜 Your consent history (newest first)")]
    records = list(reversed(state.history))[:HISTORY_SHOWN]
    if not records:
        lines.append(t._("Nothing recorded yet."))
    for record in records:
        if record.purpose is ConsentPurpose.PRIVACY_NOTICE:
            what = t._("accepted the privacy notice")
        elif record.granted:
            what = t._("gave: {purpose}").format(purpose=purpose_name(t, record.purpose))
        else:
            what = t._("withdrew: {purpose}").format(purpose=purpose_name(t, record.purpose))
        lines.append(
            t._("• {time}: {what} (via {channel}, notice version {version})").format(
                time=t.datetime(record.recorded_at),
                what=what,
                channel=_channel(t, record.channel),
                version=record.notice_version,
            )
        )
    rows = ((Button(t._("📣 My choices"), "consent"), Button(t._("🏠 Menu"), "menu")),)
    return [TextReply("\n".join(lines), buttons=rows)]


async def _toggle(ctx: FlowContext, customer: Customer, arg: str) -> list[Reply]:
    t = ctx.t
    name, _, wanted = arg.partition(":")
    try:
        purpose = ConsentPurpose(name)
    except ValueError:
        purpose = None
    if purpose not in PURPOSES or wanted not in ("on", "off"):
        return _screen(ctx, await consent_state(ctx.uow, customer.id))
    assert purpose is not None
    granted = wanted == "on"
    changed = await set_consent(
        ctx.uow,
        customer,
        purpose,
        granted,
        channel=ctx.incoming.channel,
        notice_version=ctx.settings.privacy_notice_version,
        now=ctx.now,
    )
    name_shown = purpose_name(t, purpose)
    if not changed:
        lead = t._("No change: {purpose} was already as you chose.").format(purpose=name_shown)
    elif granted:
        lead = t._("✅ Thank you. Consent given: {purpose}.").format(purpose=name_shown)
    else:
        lead = t._("✅ Done. Consent withdrawn: {purpose}. This applies on every chat.").format(
            purpose=name_shown
        )
    return _screen(ctx, await consent_state(ctx.uow, customer.id), lead)


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    ctx.leave()
    customer = await linked_customer(ctx)
    if customer is None:
        return [
            needs_link(
                t, t._("Your choices belong to your account, so I need to know who you are.")
            )
        ]
    arg = ctx.arg.strip()
    if arg == "history":
        return _history(ctx, await consent_state(ctx.uow, customer.id))
    if arg:
        return await _toggle(ctx, customer, arg)
    return _screen(ctx, await consent_state(ctx.uow, customer.id))
