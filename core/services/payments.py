"""Payment confirmations from banks and gateways: record them against bills, tell the customer.

Public API (the caller opens the unit of work and commits it; nothing here commits)::

    result = await record_payment(uow, PaymentConfirmation(
        external_id="KBANK-20261125-000123",  # the bank's id: recording twice has no effect
        amount_satang=64_093,                  # integer satang
        paid_at=datetime(2026, 11, 25, 3, 4, tzinfo=UTC),
        ref1="1000000001",                     # PromptPay ref1: the account number
        ref2="B100000000125111",               # PromptPay ref2: the bill reference
        method="promptpay",
    ), now=clock.now())
    await uow.commit()

    result = await reverse_payment(uow, "KBANK-20261125-000123",
                                   reversed_at=..., now=clock.now())

``record_payment`` matches the bill by ref2 and checks that it belongs to the account in
ref1. Then, in the caller's unit of work:

- a matched payment is added to the bill's paid amount (one atomic update, so concurrent
  payments of one bill add up). A partial payment leaves the rest outstanding; an
  over-payment is recorded whole, the bill is paid and ``excess_satang`` says by how much;
- an unmatched payment (unknown bill, or a bill of another account) is recorded with no
  bill, for staff to place: the money is never dropped;
- every chat linked to the customer gets a message in that chat's language (the outbox;
  the worker sends it);
- ``payment.recorded`` is published to subscribers.

Recording the same ``external_id`` again returns outcome ``duplicate`` with no effect;
with a different amount or references it raises :class:`core.errors.Conflict`.
``reverse_payment`` takes a payment back (``payment.reversed``): raises
:class:`core.errors.NotFound` for an unknown id; reversing twice is a ``duplicate``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from core.chat import TextReply
from core.domain import Bill, BillStatus, Customer, Payment, PaymentStatus, new_id
from core.errors import Conflict, NotFound
from core.i18n import BANGKOK, Translator, translator
from core.integration_events import payment_recorded, payment_reversed
from core.ports import UnitOfWork

__all__ = [
    "PaymentConfirmation",
    "PaymentOutcome",
    "PaymentResult",
    "ReversalResult",
    "record_payment",
    "reverse_payment",
]


@dataclass(frozen=True, slots=True)
class PaymentConfirmation:
    """What a bank or gateway tells us about one payment."""

    external_id: str
    amount_satang: int
    paid_at: datetime
    ref1: str
    ref2: str
    method: str


class PaymentOutcome(enum.StrEnum):
    RECORDED = "recorded"
    UNMATCHED = "unmatched"
    REVERSED = "reversed"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What became of a confirmation. For ``duplicate`` the bill figures are today's and
    ``applied_satang``/``excess_satang`` are 0 (this call changed nothing)."""

    outcome: PaymentOutcome
    payment_id: str
    bill_reference: str
    amount_satang: int
    applied_satang: int
    excess_satang: int
    outstanding_satang: int | None
    bill_status: BillStatus | None
    event_id: str | None
    notified_chats: int

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "payment_id": self.payment_id,
            "bill_reference": self.bill_reference,
            "amount_satang": self.amount_satang,
            "applied_satang": self.applied_satang,
            "excess_satang": self.excess_satang,
            "outstanding_satang": self.outstanding_satang,
            "bill_status": None if self.bill_status is None else self.bill_status.value,
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class ReversalResult:
    outcome: PaymentOutcome  # REVERSED or DUPLICATE
    payment_id: str
    amount_satang: int
    bill_reference: str | None
    outstanding_satang: int | None
    bill_status: BillStatus | None
    event_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "payment_id": self.payment_id,
            "amount_satang": self.amount_satang,
            "bill_reference": self.bill_reference,
            "outstanding_satang": self.outstanding_satang,
            "bill_status": None if self.bill_status is None else self.bill_status.value,
            "event_id": self.event_id,
        }


def _today(now: datetime) -> date:
    return now.astimezone(BANGKOK).date()


async def record_payment(
    uow: UnitOfWork, confirmation: PaymentConfirmation, *, now: datetime
) -> PaymentResult:
    """Record one confirmed payment (see the module docstring). Raises ``Conflict`` when
    the external id was recorded before with other details, ``ValueError`` for a
    non-positive amount."""
    c = confirmation
    if c.amount_satang <= 0:
        raise ValueError("amount_satang must be positive")
    existing = await uow.payments.get_for_update(c.external_id)
    if existing is not None:
        return await _duplicate(uow, existing, c, now)

    bill = await uow.bills.get_by_reference(c.ref2)
    customer = await uow.customers.get_by_account_no(c.ref1)
    matched = bill is not None and customer is not None and bill.customer_id == customer.id
    payment = Payment(
        id=new_id(),
        external_id=c.external_id,
        bill_id=bill.id if matched and bill is not None else None,
        amount_satang=c.amount_satang,
        paid_at=c.paid_at,
        method=c.method,
        ref1=c.ref1,
        ref2=c.ref2,
        status=PaymentStatus.SUCCEEDED if matched else PaymentStatus.UNMATCHED,
    )
    await uow.payments.add(payment)
    if not matched or bill is None or customer is None:
        event_id = await uow.events.publish(
            payment_recorded(
                payment_id=c.external_id,
                account_no=c.ref1,
                bill_reference=c.ref2,
                matched=False,
                amount_satang=c.amount_satang,
                applied_satang=0,
                excess_satang=0,
                bill_amount_satang=None,
                bill_paid_satang=None,
                outstanding_satang=None,
                bill_status=None,
                method=c.method,
                paid_at=c.paid_at,
            ),
            occurred_at=now,
        )
        return PaymentResult(
            outcome=PaymentOutcome.UNMATCHED,
            payment_id=c.external_id,
            bill_reference=c.ref2,
            amount_satang=c.amount_satang,
            applied_satang=0,
            excess_satang=0,
            outstanding_satang=None,
            bill_status=None,
            event_id=event_id,
            notified_chats=0,
        )

    after = await uow.payments.add_to_bill(bill.id, c.amount_satang)
    before_paid = after.paid_satang - c.amount_satang
    # Only what this payment paid beyond the amount is its excess (a bill paid twice over
    # by two payments reports each one's share).
    excess = max(0, after.paid_satang - after.amount_satang) - max(
        0, before_paid - after.amount_satang
    )
    status = after.status(_today(now))
    event_id = await uow.events.publish(
        payment_recorded(
            payment_id=c.external_id,
            account_no=c.ref1,
            bill_reference=c.ref2,
            matched=True,
            amount_satang=c.amount_satang,
            applied_satang=c.amount_satang - excess,
            excess_satang=excess,
            bill_amount_satang=after.amount_satang,
            bill_paid_satang=after.paid_satang,
            outstanding_satang=after.outstanding_satang,
            bill_status=status.value,
            method=c.method,
            paid_at=c.paid_at,
        ),
        occurred_at=now,
    )
    notified = await _tell_customer(
        uow,
        customer,
        now,
        lambda t: _received_text(t, c.amount_satang, c.paid_at, after, excess),
    )
    return PaymentResult(
        outcome=PaymentOutcome.RECORDED,
        payment_id=c.external_id,
        bill_reference=c.ref2,
        amount_satang=c.amount_satang,
        applied_satang=c.amount_satang - excess,
        excess_satang=excess,
        outstanding_satang=after.outstanding_satang,
        bill_status=status,
        event_id=event_id,
        notified_chats=notified,
    )


async def _duplicate(
    uow: UnitOfWork, existing: Payment, c: PaymentConfirmation, now: datetime
) -> PaymentResult:
    if (existing.amount_satang, existing.ref1, existing.ref2) != (
        c.amount_satang,
        c.ref1,
        c.ref2,
    ):
        raise Conflict("payment_id was recorded before with another amount or references")
    bill = await uow.bills.get_by_reference(c.ref2) if existing.bill_id is not None else None
    return PaymentResult(
        outcome=PaymentOutcome.DUPLICATE,
        payment_id=c.external_id,
        bill_reference=c.ref2,
        amount_satang=c.amount_satang,
        applied_satang=0,
        excess_satang=0,
        outstanding_satang=None if bill is None else bill.outstanding_satang,
        bill_status=None if bill is None else bill.status(_today(now)),
        event_id=None,
        notified_chats=0,
    )


async def reverse_payment(
    uow: UnitOfWork,
    external_id: str,
    *,
    reversed_at: datetime,
    now: datetime,
) -> ReversalResult:
    """Take back a recorded payment: its amount leaves the bill's paid amount, the
    customer is told, ``payment.reversed`` is published. Raises ``NotFound`` if no
    payment has this external id (the sender may retry once the payment is recorded)."""
    payment = await uow.payments.get_for_update(external_id)
    if payment is None:
        raise NotFound("no payment with this payment_id")
    if payment.status is PaymentStatus.REVERSED:
        return ReversalResult(
            outcome=PaymentOutcome.DUPLICATE,
            payment_id=external_id,
            amount_satang=payment.amount_satang,
            bill_reference=payment.ref2 if payment.bill_id else None,
            outstanding_satang=None,
            bill_status=None,
            event_id=None,
        )
    await uow.payments.set_status(payment.id, PaymentStatus.REVERSED)
    after: Bill | None = None
    if payment.bill_id is not None:
        after = await uow.payments.add_to_bill(payment.bill_id, -payment.amount_satang)
    status = None if after is None else after.status(_today(now))
    outstanding = None if after is None else after.outstanding_satang
    event_id = await uow.events.publish(
        payment_reversed(
            payment_id=external_id,
            amount_satang=payment.amount_satang,
            bill_reference=None if after is None else after.reference,
            outstanding_satang=outstanding,
            bill_status=None if status is None else status.value,
            reversed_at=reversed_at,
        ),
        occurred_at=now,
    )
    if after is not None:
        customer = await uow.customers.get(after.customer_id)
        if customer is not None:
            bill = after
            await _tell_customer(
                uow, customer, now, lambda t: _reversed_text(t, payment.amount_satang, bill)
            )
    return ReversalResult(
        outcome=PaymentOutcome.REVERSED,
        payment_id=external_id,
        amount_satang=payment.amount_satang,
        bill_reference=None if after is None else after.reference,
        outstanding_satang=outstanding,
        bill_status=status,
        event_id=event_id,
    )


# --- telling the customer ----------------------------------------------------------------


async def _tell_customer(
    uow: UnitOfWork, customer: Customer, now: datetime, text: Callable[[Translator], str]
) -> int:
    """Queue a message to every chat linked to ``customer``, each in its own language."""
    links = await uow.links.for_customer(customer.id)
    for link in links:
        channel = str(link.channel)
        language = await uow.conversations.language(channel, link.chat_id) or customer.language
        await uow.outbox.enqueue_replies(
            channel, link.chat_id, [TextReply(text(translator(language)))], now
        )
    return len(links)


def _received_text(t: Translator, amount: int, paid_at: datetime, bill: Bill, excess: int) -> str:
    head = t._("We have received your payment of {amount} for bill {reference} ({when}).").format(
        amount=t.money(amount), reference=bill.reference, when=t.datetime(paid_at)
    )
    if excess > 0:
        tail = t._(
            "The bill is paid in full, and you paid {excess} more than was due: "
            "our staff will contact you about the extra amount."
        ).format(excess=t.money(excess))
    elif bill.outstanding_satang == 0:
        tail = t._("The bill is paid in full. Thank you!")
    else:
        tail = t._("{outstanding} is still to pay, due {due}.").format(
            outstanding=t.money(bill.outstanding_satang), due=t.date(bill.due_on)
        )
    return f"{head} {tail}"


def _reversed_text(t: Translator, amount: int, bill: Bill) -> str:
    return t._(
        "Your payment of {amount} for bill {reference} was reversed by the bank. "
        "{outstanding} is now to pay on this bill."
    ).format(
        amount=t.money(amount),
        reference=bill.reference,
        outstanding=t.money(bill.outstanding_satang),
    )
