"""/pay: a PromptPay QR code and a payment page link for a bill that is not paid in full.

- One bill to pay: its QR code (for what is still outstanding) and a link to its
  payment page (``/pay/{token}``, expiring) come at once.
- Several: they are listed, due first first, each with a button ``pay:<reference>``;
  typing the position ("2") works too.
- Nothing to pay, a bill already paid, a chat that is not linked, an operator without a
  PromptPay id: each gets a plain answer and the menu.

The QR image is rendered in a thread (it is CPU-bound).
"""

from __future__ import annotations

import asyncio

from core.chat import Button, ImageReply, InboundEvent, LinkButton, Reply, TextMessage, TextReply
from core.domain import Bill, Customer, ServiceAccount
from core.errors import InvalidInput
from core.flows.bill import (
    linked_customer,
    number_label,
    period_text,
    please_link_first,
    status_name,
)
from core.flows.context import FlowContext
from core.flows.intents import normalise
from core.flows.menu import keyboard, with_menu
from core.i18n import Translator
from core.promptpay import PromptPayError, render_png
from core.services.billing import (
    PaymentSettings,
    bangkok_today,
    bills_by_number,
    issue_pay_link,
    payable,
    qr_payload,
)

__all__ = ["answer", "handle"]

_STEP_CHOOSE = "choose"
# Big enough for a phone camera at arm's length, small enough for any chat's image limit.
_QR_SCALE = 10


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    customer = await linked_customer(ctx)
    if customer is None:
        return [please_link_first(t)]
    settings = ctx.settings.payments
    if settings is None or not settings.makes_qr:
        return [_no_qr(t)]
    reference = ctx.arg.strip()
    if reference:
        bill = await ctx.uow.bills.get_by_reference(reference)
        if bill is None or bill.customer_id != customer.id:
            return [with_menu(t, t._("Sorry, I couldn't find that bill on your account."))]
        return await _pay(ctx, settings, customer, bill)
    return await _choose(ctx, settings, customer)


async def answer(ctx: FlowContext, event: InboundEvent) -> list[Reply] | None:
    """The position of a bill in the list just shown ("2"); anything else is no answer."""
    if not isinstance(event, TextMessage):
        return None
    typed = normalise(event.text)
    references = ctx.conversation.data.get("bills")
    if not typed.isdigit() or not isinstance(references, list):
        return None
    position = int(typed) if len(typed) <= 2 else 0
    if not 1 <= position <= len(references):
        return None
    ctx.leave()
    customer = await linked_customer(ctx)
    settings = ctx.settings.payments
    if customer is None or settings is None or not settings.makes_qr:
        return None
    bill = await ctx.uow.bills.get_by_reference(str(references[position - 1]))
    if bill is None or bill.customer_id != customer.id:
        return None
    return await _pay(ctx, settings, customer, bill)


async def _choose(ctx: FlowContext, settings: PaymentSettings, customer: Customer) -> list[Reply]:
    t = ctx.t
    numbers = await bills_by_number(ctx.uow, customer.id)
    accounts = {n.account.id: n.account for n in numbers}
    due = payable(b for n in numbers for b in n.bills)
    if not due:
        return [with_menu(t, t._("You have nothing to pay right now. Thank you! 🙏"))]
    if len(due) == 1:
        return await _pay(ctx, settings, customer, due[0])
    today = bangkok_today(ctx.now)
    lines = [t._("💳 Which bill would you like to pay?")]
    buttons: list[tuple[Button, ...]] = []
    for position, bill in enumerate(due, start=1):
        account = accounts[bill.service_account_id]
        lines.append(
            t._("{n}) {number}, {month}: {amount} – {status}").format(
                n=position,
                number=number_label(t, account),
                month=t.month_year(bill.period_start),
                amount=t.money(bill.outstanding_satang),
                status=status_name(t, bill.status(today)),
            )
        )
        label = f"{position}) {t.money(bill.outstanding_satang)}"
        buttons.append((Button(label, f"pay:{bill.reference}"),))
    buttons.append((Button(t._("🏠 Menu"), "menu"),))
    ctx.enter(_STEP_CHOOSE, {"bills": [b.reference for b in due]})
    return [TextReply(text="\n".join(lines), buttons=tuple(buttons))]


async def _pay(
    ctx: FlowContext, settings: PaymentSettings, customer: Customer, bill: Bill
) -> list[Reply]:
    t = ctx.t
    if bill.outstanding_satang <= 0:
        return [
            with_menu(
                t,
                t._("Bill {reference} is already paid in full. Thank you! 🙏").format(
                    reference=bill.reference
                ),
            )
        ]
    accounts = await ctx.uow.customers.service_accounts(customer.id)
    account = next((a for a in accounts if a.id == bill.service_account_id), None)
    try:
        payload = qr_payload(settings, account_no=customer.account_no, bill=bill)
    except (InvalidInput, PromptPayError):
        # Bill data a bank would refuse (e.g. a malformed reference from billing).
        return [_no_qr(t)]
    png = await asyncio.to_thread(render_png, payload, scale=_QR_SCALE)
    url = await issue_pay_link(
        ctx.uow, settings, bill, language=ctx.conversation.language, now=ctx.now
    )
    expires = ctx.now + settings.pay_link_ttl
    caption = _caption(t, settings, customer, account, bill)
    link_text = t._(
        "Or open the payment page, where you can also save the QR code. "
        "The link works until {time}."
    ).format(time=t.datetime(expires))
    link_row: tuple[Button | LinkButton, ...] = (LinkButton(t._("🔗 Open payment page"), url),)
    buttons: tuple[tuple[Button | LinkButton, ...], ...] = (link_row, *keyboard(t))
    return [
        ImageReply(png=png, caption=caption, filename=f"promptpay-{bill.reference}.png"),
        TextReply(text=f"{link_text}\n{url}", buttons=buttons),
    ]


def _no_qr(t: Translator) -> TextReply:
    return with_menu(
        t,
        t._(
            "Sorry, paying by QR code isn't available in this chat right now. "
            "You can still pay at our service counters or in your banking app."
        ),
    )


def _caption(
    t: Translator,
    settings: PaymentSettings,
    customer: Customer,
    account: ServiceAccount | None,
    bill: Bill,
) -> str:
    number = number_label(t, account) if account is not None else bill.reference
    lines = [
        t._(
            "Scan this QR code with your banking app to pay {amount} for {number}, "
            "billing period {period} (due {due})."
        ).format(
            amount=t.money(bill.outstanding_satang),
            number=number,
            period=period_text(t, bill),
            due=t.date(bill.due_on),
        )
    ]
    if settings.biller_id is not None:
        # What a teller or a banking app's "pay a bill" form asks for.
        lines.append(
            t._("Account no. {account} · Bill ref. {reference}").format(
                account=customer.account_no, reference=bill.reference
            )
        )
    return "\n".join(lines)
