"""/bill: a linked customer's bills — the current bill of each number, the last 6, a chart.

- One number: its current bill (billing period, amount, due date in the chat's calendar,
  status: unpaid, overdue, paid or partly paid), with buttons to pay, to see the last 6
  bills and a chart of the last 12 months.
- Several numbers: a summary (each number's current bill and what is left to pay in all)
  and a button per number; typing the number's position or its last four digits works too.
- Buttons: ``bill:n:<id>`` one number, ``bill:history:<id>`` its last 6 bills,
  ``bill:chart:<id>`` its chart, ``bill:all`` the summary. ``/bill history``,
  ``/bill chart`` and text such as "บิลย้อนหลัง" or "bill chart" ask for those views.
- A chat that is not linked is asked to link first (a button to ``link``).

The helpers that describe a bill are shared with ``/pay`` and the bill reminders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date

from core.charts import MonthAmount, render_monthly_bars
from core.chat import Button, ImageReply, InboundEvent, Reply, TextMessage, TextReply
from core.domain import Bill, BillStatus, Customer, ServiceAccount, ServiceKind
from core.flows.context import FlowContext
from core.flows.fallback import stale_button
from core.flows.intents import normalise
from core.flows.menu import keyboard, prompt, with_menu
from core.i18n import Translator
from core.masking import mask_phone
from core.services.billing import NumberBills, bangkok_today, bills_by_number, payable

__all__ = [
    "answer",
    "bill_details",
    "handle",
    "kind_name",
    "linked_customer",
    "number_label",
    "period_text",
    "please_link_first",
    "status_name",
]

HISTORY_COUNT = 6
CHART_MONTHS = 12
_STEP_CHOOSE = "choose"
_VIEWS = ("bill", "history", "chart")
_HISTORY_WORDS = ("ย้อนหลัง", "ประวัติ", "history", "previous", "past", "last 6", "earlier")
_CHART_WORDS = ("กราฟ", "แผนภูมิ", "chart", "graph")


# --- shared with /pay and the reminders ------------------------------------------------------


async def linked_customer(ctx: FlowContext) -> Customer | None:
    """The customer this chat is linked to, or None."""
    conversation = ctx.conversation
    link = await ctx.uow.links.get(conversation.channel, conversation.chat_id)
    if link is None:
        return None
    return await ctx.uow.customers.get(link.customer_id)


def please_link_first(t: Translator) -> TextReply:
    """The answer to a bill or payment request from a chat that is not linked: a button
    to link first, then the main menu."""
    return TextReply(
        text=t._(
            "To show your bills and help you pay them, I need to know who you are. "
            "Please link this chat to your e-service account first (it takes a minute)."
        ),
        buttons=((Button(t._("🔗 Link my account"), "link"),), *keyboard(t)),
    )


def kind_name(t: Translator, kind: ServiceKind) -> str:
    match kind:
        case ServiceKind.MOBILE:
            return t._("mobile")
        case ServiceKind.FIXED:
            return t._("home phone")
        case ServiceKind.INTERNET:
            return t._("internet")
    return str(kind)


def number_label(t: Translator, account: ServiceAccount) -> str:
    """``08x-xxx-5678 (mobile)``: the number masked, as everywhere in the chat."""
    return f"{mask_phone(account.number)} ({kind_name(t, account.kind)})"


def status_name(t: Translator, status: BillStatus) -> str:
    match status:
        case BillStatus.UNPAID:
            return t._("unpaid")
        case BillStatus.OVERDUE:
            return t._("overdue")
        case BillStatus.PAID:
            return t._("paid ✅")
        case BillStatus.PARTLY_PAID:
            return t._("partly paid")
    return str(status)


def period_text(t: Translator, bill: Bill) -> str:
    return f"{t.date(bill.period_start)} – {t.date(bill.period_end)}"


def bill_details(t: Translator, account: ServiceAccount, bill: Bill, today: date) -> str:
    """Every line a customer needs about one bill, in the chat's language and calendar
    (``today``: the Bangkok date the status is for)."""
    status = bill.status(today)
    lines = [
        t._("🧾 Bill for {number}").format(number=number_label(t, account)),
        t._("Billing period: {period}").format(period=period_text(t, bill)),
        t._("Amount: {amount}").format(amount=t.money(bill.amount_satang)),
        t._("Due date: {date}").format(date=t.date(bill.due_on)),
        t._("Status: {status}").format(status=status_name(t, status)),
    ]
    if 0 < bill.paid_satang < bill.amount_satang:
        lines.append(
            t._("Paid so far: {paid}. Still to pay: {left}.").format(
                paid=t.money(bill.paid_satang), left=t.money(bill.outstanding_satang)
            )
        )
    if status is BillStatus.OVERDUE:
        lines.append(t._("⚠️ This bill is past its due date. Please pay as soon as you can."))
    return "\n".join(lines)


# --- the flow ----------------------------------------------------------------------------------


def _menu_row(t: Translator) -> tuple[Button, ...]:
    return (Button(t._("🏠 Menu"), "menu"),)


def _pay_button(t: Translator, bills: Sequence[Bill]) -> Button | None:
    due = payable(bills)
    if not due:
        return None
    return Button(t._("💳 Pay"), f"pay:{due[0].reference}" if len(due) == 1 else "pay")


def _no_bills(t: Translator) -> TextReply:
    return with_menu(
        t,
        t._("There are no bills on your account yet. They show here as soon as they are issued."),
    )


def _requested_view(ctx: FlowContext) -> str:
    """The view asked for: ``/bill history``, ``/bill chart``, or words in the text
    ("บิลย้อนหลัง", "bill chart"); "bill" (the current bill) otherwise."""
    words = ctx.arg.strip().lower()
    if isinstance(ctx.event, TextMessage):
        words = normalise(ctx.event.text)
    compact = words.replace(" ", "")
    if any(normalise(w).replace(" ", "") in compact for w in _CHART_WORDS):
        return "chart"
    if any(normalise(w).replace(" ", "") in compact for w in _HISTORY_WORDS):
        return "history"
    return "bill"


async def handle(ctx: FlowContext) -> list[Reply]:
    t = ctx.t
    customer = await linked_customer(ctx)
    if customer is None:
        return [please_link_first(t)]
    numbers = await bills_by_number(ctx.uow, customer.id, months=CHART_MONTHS)
    if not any(n.bills for n in numbers):
        return [_no_bills(t)]
    action, _, account_id = ctx.arg.partition(":")
    action = action.strip().lower()
    if account_id:
        chosen = next((n for n in numbers if n.account.id == account_id), None)
        if chosen is None or action not in ("n", "history", "chart"):
            return [stale_button(t)]
        return await _show(ctx, chosen, "bill" if action == "n" else action)
    if action == "all":
        return _summary(ctx, numbers, "bill")
    view = _requested_view(ctx)
    with_bills = [n for n in numbers if n.bills]
    if len(with_bills) == 1:
        return await _show(ctx, with_bills[0], view)
    return _summary(ctx, numbers, view)


async def answer(ctx: FlowContext, event: InboundEvent) -> list[Reply] | None:
    """A typed choice of number after the summary: its position ("2") or its last four
    digits ("5678"). Anything else is no answer (None)."""
    if not isinstance(event, TextMessage):
        return None
    typed = "".join(ch for ch in normalise(event.text) if ch.isdigit())
    ids = [str(i) for i in _as_list(ctx.conversation.data.get("accounts"))]
    view = str(ctx.conversation.data.get("view", "bill"))
    if not typed or not ids:
        return None
    customer = await linked_customer(ctx)
    if customer is None:
        return None
    numbers = {n.account.id: n for n in await bills_by_number(ctx.uow, customer.id)}
    listed = [numbers[i] for i in ids if i in numbers]
    chosen: NumberBills | None = None
    if len(typed) <= 2 and 1 <= int(typed) <= len(listed):
        chosen = listed[int(typed) - 1]
    elif len(typed) >= 4:
        matches = [n for n in listed if n.account.number.endswith(typed)]
        chosen = matches[0] if len(matches) == 1 else None
    if chosen is None:
        return None
    ctx.leave()
    return await _show(ctx, chosen, view if view in _VIEWS else "bill")


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _summary(ctx: FlowContext, numbers: Sequence[NumberBills], view: str) -> list[Reply]:
    t = ctx.t
    today = bangkok_today(ctx.now)
    lines = [t._("🧾 Your current bills, number by number:")]
    for position, number in enumerate(numbers, start=1):
        bill = number.current
        if bill is None:
            lines.append(
                t._("{n}) {number}: no bill yet").format(
                    n=position, number=number_label(t, number.account)
                )
            )
            continue
        lines.append(
            t._("{n}) {number}: {amount}, due {date} – {status}").format(
                n=position,
                number=number_label(t, number.account),
                amount=t.money(bill.amount_satang),
                date=t.date(bill.due_on),
                status=status_name(t, bill.status(today)),
            )
        )
    all_bills = [b for n in numbers for b in n.bills]
    left = sum(b.outstanding_satang for b in payable(all_bills))
    lines.append("")
    if left:
        lines.append(t._("Still to pay in all: {amount}").format(amount=t.money(left)))
    else:
        lines.append(t._("Everything is paid. Thank you! 🙏"))
    lines.append(t._("Choose a number to see its bill, its last 6 bills or a chart."))
    ctx.enter(_STEP_CHOOSE, {"accounts": [n.account.id for n in numbers], "view": view})
    action = {"bill": "n"}.get(view, view)
    rows: list[tuple[Button, ...]] = [
        (Button(mask_phone(n.account.number), f"bill:{action}:{n.account.id}"),)
        for n in numbers
        if n.bills
    ]
    pay = _pay_button(t, all_bills)
    if pay is not None:
        rows.append((pay,))
    rows.append(_menu_row(t))
    return [TextReply(text="\n".join(lines), buttons=tuple(rows))]


async def _show(ctx: FlowContext, number: NumberBills, view: str) -> list[Reply]:
    if not number.bills:
        return [_no_bills(ctx.t)]
    if view == "history":
        return [_history(ctx, number)]
    if view == "chart":
        return await _chart(ctx, number)
    return [_current(ctx, number)]


def _buttons_for(t: Translator, number: NumberBills, *, but: str) -> tuple[tuple[Button, ...], ...]:
    rows: list[tuple[Button, ...]] = []
    pay = _pay_button(t, number.bills)
    if pay is not None:
        rows.append((pay,))
    views: list[Button] = []
    if but != "bill":
        views.append(Button(t._("🧾 Current bill"), f"bill:n:{number.account.id}"))
    if but != "history":
        views.append(Button(t._("📋 Last 6 bills"), f"bill:history:{number.account.id}"))
    if but != "chart":
        views.append(Button(t._("📊 12-month chart"), f"bill:chart:{number.account.id}"))
    rows.append(tuple(views))
    rows.append(_menu_row(t))
    return tuple(rows)


def _current(ctx: FlowContext, number: NumberBills) -> TextReply:
    t = ctx.t
    bill = number.current
    assert bill is not None
    text = bill_details(t, number.account, bill, bangkok_today(ctx.now))
    earlier = [b for b in payable(number.bills) if b.id != bill.id]
    if earlier:
        text += "\n\n" + t.ngettext(
            "You also have {count} earlier bill not paid in full ({amount} in all).",
            "You also have {count} earlier bills not paid in full ({amount} in all).",
            len(earlier),
        ).format(count=len(earlier), amount=t.money(sum(b.outstanding_satang for b in earlier)))
    return TextReply(text=text, buttons=_buttons_for(t, number, but="bill"))


def _history(ctx: FlowContext, number: NumberBills) -> TextReply:
    t = ctx.t
    today = bangkok_today(ctx.now)
    recent = number.bills[:HISTORY_COUNT]
    label = number_label(t, number.account)
    if len(recent) == 1:
        heading = t._("📋 The only bill for {number} so far:").format(number=label)
    else:
        heading = t.ngettext(
            "📋 The last {count} bill for {number}:",
            "📋 The last {count} bills for {number}:",
            len(recent),
        ).format(count=len(recent), number=label)
    lines = [heading]
    for bill in recent:
        lines.append(
            t._("{month}: {amount}, due {date} – {status}").format(
                month=t.month_year(bill.period_start),
                amount=t.money(bill.amount_satang),
                date=t.date(bill.due_on),
                status=status_name(t, bill.status(today)),
            )
        )
    return TextReply(text="\n".join(lines), buttons=_buttons_for(t, number, but="history"))


async def _chart(ctx: FlowContext, number: NumberBills) -> list[Reply]:
    t = ctx.t
    bills = number.bills[:CHART_MONTHS]
    months = [
        MonthAmount(b.period_start, b.amount_satang, highlight=b.outstanding_satang > 0)
        for b in bills
    ]
    png = await asyncio.to_thread(render_monthly_bars, months, lang=t.lang)
    caption = t.ngettext(
        "📊 Your bills for {number} over the last {count} month, in baht.",
        "📊 Your bills for {number} over the last {count} months, in baht.",
        len(months),
    ).format(count=len(months), number=number_label(t, number.account))
    note = prompt(t)
    if any(m.highlight for m in months):
        note = t._("Orange bars are bills with money still to pay.")
    return [
        ImageReply(png=png, caption=caption, filename="bills-chart.png"),
        TextReply(text=note, buttons=_buttons_for(t, number, but="chart")),
    ]
