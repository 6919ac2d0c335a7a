"""``selfcare payments record``: an operator records a payment the bank confirmed by other
means (a counter payment, a statement line), exactly as the ``payment.succeeded`` event
does (``core.services.payments.record_payment``): matched by ref1/ref2, idempotent by
the payment id, partial and over-payments handled, the customer told in their chats.

What it prints names the payment, the bill reference and amounts, never a customer's
personal data; the action is audited.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from bot.cli_common import CliError, with_container
from bot.settings import Settings
from core.domain import AuditEntry
from core.errors import Conflict
from core.i18n import BANGKOK, translator
from core.promptpay import PromptPayError, amount_from_baht
from core.services.payments import (
    PaymentConfirmation,
    PaymentOutcome,
    PaymentResult,
    record_payment,
)

if TYPE_CHECKING:
    from bot.bootstrap import Container

Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]
Add = Callable[..., argparse.ArgumentParser]

PAYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
REFERENCE = re.compile(r"[A-Z0-9]{1,20}")
METHOD = re.compile(r"[a-z0-9_-]{1,32}")


def _paid_at(text: str | None, now: datetime) -> datetime:
    """ISO 8601; without a zone it is Bangkok time, as an operator reads a slip."""
    if text is None:
        return now
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError("--paid-at: an ISO date and time, like 2026-11-25T14:05") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BANGKOK)
    if moment > now:
        raise CliError("--paid-at: must not be in the future")
    return moment


def _checked(args: argparse.Namespace) -> tuple[str, int, str, str, str]:
    payment_id = args.payment_id.strip()
    if PAYMENT_ID.fullmatch(payment_id) is None:
        raise CliError("--payment-id: 1 to 64 letters, digits, dots, colons, dashes or underscores")
    try:
        amount = amount_from_baht(args.amount)
    except PromptPayError as exc:
        raise CliError(f"--amount: {exc}") from None
    ref1, ref2 = args.ref1.strip().upper(), args.ref2.strip().upper()
    for name, value in (("--ref1", ref1), ("--ref2", ref2)):
        if REFERENCE.fullmatch(value) is None:
            raise CliError(f"{name}: 1 to 20 letters A-Z and digits")
    method = args.method.strip().lower()
    if METHOD.fullmatch(method) is None:
        raise CliError("--method: 1 to 32 lower-case letters, digits, _ or -")
    return payment_id, amount, ref1, ref2, method


async def cmd_record(args: argparse.Namespace, settings: Settings) -> int:
    payment_id, amount, ref1, ref2, method = _checked(args)

    async def body(c: Container) -> int:
        now = c.clock.now()
        confirmation = PaymentConfirmation(
            external_id=payment_id,
            amount_satang=amount,
            paid_at=_paid_at(args.paid_at, now),
            ref1=ref1,
            ref2=ref2,
            method=method,
        )
        async with c.db.uow() as uow:
            try:
                result = await record_payment(uow, confirmation, now=now)
            except Conflict:
                raise CliError(
                    f"payment {payment_id} was recorded before with another amount or "
                    "references; nothing changed"
                ) from None
            if result.outcome is not PaymentOutcome.DUPLICATE:
                await uow.audit.append(
                    AuditEntry(
                        actor="cli:operator",
                        action="payment.record",
                        subject=payment_id,
                        details={"outcome": result.outcome.value, "amount_satang": amount},
                        at=now,
                    )
                )
            await uow.commit()
        print(_summary(result, amount))
        return 0

    return await with_container(settings, body)


def _summary(result: PaymentResult, amount: int) -> str:
    money = translator("en").money
    name = f"payment {result.payment_id}"
    if result.outcome is PaymentOutcome.DUPLICATE:
        return f"{name} was recorded before: nothing changed (counted once)"
    if result.outcome is PaymentOutcome.UNMATCHED:
        return (
            f"{name} of {money(amount)} recorded, but ref1/ref2 match no bill of that account: "
            "kept unmatched for staff to place"
        )
    status = result.bill_status.value.replace("_", " ") if result.bill_status else "?"
    line = (
        f"{name} of {money(amount)} recorded for bill {result.bill_reference}: "
        f"{money(result.outstanding_satang or 0)} left to pay ({status})"
    )
    if result.excess_satang:
        line += f"; {money(result.excess_satang)} paid over the amount due"
    if result.notified_chats:
        line += f"; the customer is told in {result.notified_chats} chat(s) by `selfcare worker`"
    return line


def register(group: Group, add: Add) -> None:
    payments = group("payments", "payments confirmed outside the integrations API")
    record = add(
        payments,
        "record",
        cmd_record,
        "record a confirmed payment against a bill (matched by ref1/ref2; running it again "
        "with the same --payment-id changes nothing)",
    )
    record.add_argument("--payment-id", required=True, help="the bank's id of the payment")
    record.add_argument(
        "--amount", required=True, help="baht with up to two decimals, e.g. 640.93 or 1,200"
    )
    record.add_argument("--ref1", required=True, help="the account number")
    record.add_argument("--ref2", required=True, help="the bill reference")
    record.add_argument(
        "--paid-at", help="when it was paid (ISO 8601; Bangkok time unless a zone is given)"
    )
    record.add_argument("--method", default="counter", help="how it was paid (default: counter)")
