"""Bill reminders: a message when a bill arrives, and N days before it is due.

These are service messages about the customer's own bills, not marketing: they do not
depend on marketing consent, only on the customer's notification preferences (on unless
turned off, per kind: :class:`~core.domain.NotificationKind`). Each goes to every chat
linked to the customer, in that chat's language, through the outbox.

Never twice: before a message is queued, its (bill, kind) row is claimed in the ledger
under a unique key, in the same transaction as the outbox rows; a second worker (or a
second run) finds the claim and sends nothing. Quiet hours: nothing is sent outside
``send_from``-``send_until`` Bangkok time; the next run in the window catches up.

``queue_bill_reminders(uow_factory, now=..., settings=...)`` is the worker's job body.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from core.chat import Button, TextReply
from core.domain import Bill, Customer, NotificationKind, ServiceAccount
from core.errors import InvalidInput
from core.flows.bill import number_label, period_text
from core.i18n import BANGKOK, Translator, translator
from core.ports import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "ISSUED",
    "Reminder",
    "ReminderSettings",
    "due_kind",
    "notification_enabled",
    "queue_bill_reminders",
    "reminder_due",
    "set_notification",
]

#: The ledger kind of the "your bill has arrived" message.
ISSUED = "issued"


def due_kind(days_before: int) -> str:
    """The ledger kind of the reminder sent ``days_before`` days before the due date."""
    return f"due:{days_before}"


@dataclass(frozen=True, slots=True)
class ReminderSettings:
    """``days_before_due``: when to remind (``(3, 1)``: three days and one day before;
    0 is the due date itself). ``issued_within_days``: a bill that arrived longer ago
    than this gets no "new bill" message (e.g. bills already there when reminders were
    switched on), only its due reminders."""

    days_before_due: tuple[int, ...] = (3, 1)
    issued_within_days: int = 7
    send_from: time = time(8, 0)
    send_until: time = time(20, 0)
    batch_size: int = 200

    def __post_init__(self) -> None:
        if any(not 0 <= days <= 60 for days in self.days_before_due):
            raise InvalidInput("days_before_due", "each must be 0 to 60 days")
        if self.issued_within_days < 0:
            raise InvalidInput("issued_within_days", "must not be negative")
        if not self.send_from < self.send_until:
            raise InvalidInput("send_from", "must be before send_until")
        if self.batch_size < 1:
            raise InvalidInput("batch_size", "must be positive")


@dataclass(frozen=True, slots=True)
class Reminder:
    """The one message a bill needs now: its ledger ``kind``, the other kinds it makes
    unnecessary (``covers``), and the preference that can turn it off."""

    kind: str
    covers: tuple[str, ...]
    notification: NotificationKind
    days_left: int


def reminder_due(
    bill: Bill,
    today: date,
    *,
    sent: Collection[str],
    enabled: Collection[NotificationKind],
    settings: ReminderSettings,
) -> Reminder | None:
    """Which reminder ``bill`` needs on ``today`` (a Bangkok date), if any.

    Only a bill with money left to pay, issued by today and not yet past due, gets one.
    A "new bill" message comes first (if the customer keeps it on and the bill is
    recent); it states the due date, so it also covers the due reminders whose day has
    come. After that, on the day of each ``days_before_due`` the reminder of the
    nearest such day is sent, once: a worker that was down for a while sends one
    message, not a backlog."""
    if bill.outstanding_satang <= 0 or not bill.issued_on <= today <= bill.due_on:
        return None
    days_left = (bill.due_on - today).days
    windows = sorted(n for n in set(settings.days_before_due) if days_left <= n)
    if (
        ISSUED not in sent
        and NotificationKind.BILL_ISSUED in enabled
        and (today - bill.issued_on).days <= settings.issued_within_days
    ):
        return Reminder(
            ISSUED,
            tuple(due_kind(n) for n in windows),
            NotificationKind.BILL_ISSUED,
            days_left,
        )
    if not windows or NotificationKind.BILL_DUE not in enabled:
        return None
    nearest = windows[0]
    if due_kind(nearest) in sent:
        return None
    return Reminder(
        due_kind(nearest),
        tuple(due_kind(n) for n in windows[1:]),
        NotificationKind.BILL_DUE,
        days_left,
    )


# --- preferences ------------------------------------------------------------------------------


async def notification_enabled(uow: UnitOfWork, customer_id: str) -> set[NotificationKind]:
    """The service messages the customer gets: every kind they have not turned off."""
    chosen = await uow.notification_preferences.for_customer(customer_id)
    return {kind for kind in NotificationKind if chosen.get(kind, True)}


async def set_notification(
    uow: UnitOfWork, customer_id: str, kind: NotificationKind, enabled: bool, *, now: datetime
) -> None:
    """Turn one kind of service message on or off for the customer (the caller commits)."""
    await uow.notification_preferences.set(customer_id, kind, enabled, now)


# --- the job ------------------------------------------------------------------------------------


async def queue_bill_reminders(
    uow_factory: UnitOfWorkFactory, *, now: datetime, settings: ReminderSettings
) -> int:
    """Queue in the outbox every reminder due at ``now``; returns how many messages
    were queued (one per linked chat). Safe to run often and from several processes."""
    local = now.astimezone(BANGKOK)
    if not settings.send_from <= local.time() < settings.send_until:
        return 0
    today = local.date()
    queued = 0
    after: tuple[date, str] | None = None
    while True:
        async with uow_factory() as uow:
            bills = await uow.reminders.open_bills(today, after=after, limit=settings.batch_size)
            if not bills:
                break
            queued += await _remind(uow, bills, today, now, settings)
            await uow.commit()
        if len(bills) < settings.batch_size:
            break
        after = (bills[-1].due_on, bills[-1].id)
    return queued


async def _remind(
    uow: UnitOfWork,
    bills: Sequence[Bill],
    today: date,
    now: datetime,
    settings: ReminderSettings,
) -> int:
    sent = await uow.reminders.sent_kinds([b.id for b in bills])
    enabled_by_customer: dict[str, set[NotificationKind]] = {}
    queued = 0
    for bill in bills:
        if bill.customer_id not in enabled_by_customer:
            enabled_by_customer[bill.customer_id] = await notification_enabled(
                uow, bill.customer_id
            )
        reminder = reminder_due(
            bill,
            today,
            sent=sent.get(bill.id, set()),
            enabled=enabled_by_customer[bill.customer_id],
            settings=settings,
        )
        if reminder is None or not await uow.reminders.claim(bill.id, reminder.kind, now):
            continue
        for covered in reminder.covers:
            await uow.reminders.claim(bill.id, covered, now)
        queued += await _tell(uow, bill, reminder, now)
    return queued


async def _tell(uow: UnitOfWork, bill: Bill, reminder: Reminder, now: datetime) -> int:
    customer = await uow.customers.get(bill.customer_id)
    if customer is None:
        return 0
    accounts = await uow.customers.service_accounts(customer.id)
    account = next((a for a in accounts if a.id == bill.service_account_id), None)
    links = await uow.links.for_customer(customer.id)
    for link in links:
        channel = str(link.channel)
        language = await uow.conversations.language(channel, link.chat_id) or customer.language
        message = _message(translator(language), customer, account, bill, reminder)
        await uow.outbox.enqueue_replies(channel, link.chat_id, [message], now)
    return len(links)


def _message(
    t: Translator,
    customer: Customer,
    account: ServiceAccount | None,
    bill: Bill,
    reminder: Reminder,
) -> TextReply:
    number = number_label(t, account) if account is not None else bill.reference
    amount = t.money(bill.outstanding_satang)
    due = t.date(bill.due_on)
    if reminder.kind == ISSUED:
        text = t._(
            "🧾 Your new bill for {number} is here: {amount} for {period}, due {due}."
        ).format(number=number, amount=amount, period=period_text(t, bill), due=due)
    elif reminder.days_left == 0:
        text = t._("⏰ A reminder: your bill for {number}, {amount}, is due today ({due}).").format(
            number=number, amount=amount, due=due
        )
    elif reminder.days_left == 1:
        text = t._(
            "⏰ A reminder: your bill for {number}, {amount}, is due tomorrow ({due})."
        ).format(number=number, amount=amount, due=due)
    else:
        text = t.ngettext(
            "⏰ A reminder: your bill for {number}, {amount}, is due in {days} day ({due}).",
            "⏰ A reminder: your bill for {number}, {amount}, is due in {days} days ({due}).",
            reminder.days_left,
        ).format(number=number, amount=amount, due=due, days=reminder.days_left)
    buttons = ((Button(t._("💳 Pay"), f"pay:{bill.reference}"), Button(t._("🧾 My bill"), "bill")),)
    return TextReply(text=text, buttons=buttons)
