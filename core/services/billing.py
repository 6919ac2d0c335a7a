"""Bills and how to pay them: a customer's bills by service number, the PromptPay QR for
a bill, and payment links (``/pay/{token}``).

Nothing here commits: the caller (a flow, a web page) owns the unit of work. Money is
integer satang; "today" is a Bangkok calendar date.

Public API::

    numbers = await bills_by_number(uow, customer_id)  # [NumberBills], newest bill first
    due = payable(b for n in numbers for b in n.bills)  # left to pay, the one due first first
    payload = qr_payload(settings, account_no=..., bill=bill)  # for the outstanding amount
    url = await issue_pay_link(uow, settings, bill, language="th", now=now)
    page = await open_pay_link(uow, settings, token, now=now)  # PayPage | PayLinkGone
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.domain import Bill, BillStatus, PayLink, ServiceAccount
from core.errors import InvalidInput, SelfcareError
from core.i18n import BANGKOK, normalise_language
from core.integration_events import payment_link_created
from core.ports import UnitOfWork
from core.promptpay import (
    MAX_AMOUNT_SATANG,
    PromptPayError,
    bill_payment_payload,
    promptpay_payload,
)

__all__ = [
    "PAY_TOKEN_BYTES",
    "NothingToPay",
    "NumberBills",
    "PayLinkGone",
    "PayPage",
    "PaymentSettings",
    "PaymentsNotConfigured",
    "amount_to_pay",
    "bangkok_today",
    "bills_by_number",
    "hash_pay_token",
    "issue_pay_link",
    "open_pay_link",
    "pay_link_url",
    "payable",
    "qr_payload",
]

#: 256 random bits per payment link token (43 URL-safe characters).
PAY_TOKEN_BYTES = 32
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")
_DIGITS = re.compile(r"[0-9]+")


class NothingToPay(SelfcareError):
    """The bill is paid in full: there is no amount for a QR code."""


class PaymentsNotConfigured(SelfcareError):
    """Neither a biller id nor a PromptPay id is set, so no QR code can be made."""


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """How customers pay: the operator's PromptPay biller id (tag 30, with ref1 = account
    number and ref2 = bill reference) or, for operators without one, a PromptPay phone
    number / tax id (tag 29); where payment pages live and how long a link lasts."""

    public_url: str
    biller_id: str | None = None
    promptpay_id: str | None = None
    pay_link_ttl: timedelta = timedelta(minutes=60)

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("https://", "http://")):
            raise InvalidInput("public_url", "must start with https:// or http://")
        if self.biller_id is not None and (
            _DIGITS.fullmatch(self.biller_id) is None or len(self.biller_id) != 15
        ):
            raise InvalidInput("biller_id", "must be 15 digits")
        promptpay_id = self.promptpay_id
        if promptpay_id is not None and (
            _DIGITS.fullmatch(promptpay_id) is None or len(promptpay_id) not in (10, 13, 15)
        ):
            raise InvalidInput("promptpay_id", "must be a phone number (10 digits) or tax id (13)")
        if self.pay_link_ttl <= timedelta(0):
            raise InvalidInput("pay_link_ttl", "must be positive")

    @property
    def makes_qr(self) -> bool:
        return self.biller_id is not None or self.promptpay_id is not None


def bangkok_today(now: datetime) -> date:
    """The Bangkok calendar date at ``now`` (bill statuses and due dates count in it)."""
    return now.astimezone(BANGKOK).date()


# --- bills ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NumberBills:
    """One service number of a customer and its bills, newest first."""

    account: ServiceAccount
    bills: tuple[Bill, ...]

    @property
    def current(self) -> Bill | None:
        """The newest bill, the one a customer means by "my bill"."""
        return self.bills[0] if self.bills else None


async def bills_by_number(
    uow: UnitOfWork, customer_id: str, *, months: int = 12
) -> list[NumberBills]:
    """The customer's numbers (in the order they were added), each with its last
    ``months`` bills, newest first. A number without bills has an empty tuple."""
    accounts = await uow.customers.service_accounts(customer_id)
    if not accounts:
        return []
    # Enough rows for every number's months, with room for a bill issued twice in a month.
    bills = await uow.bills.for_customer(customer_id, limit=months * (len(accounts) + 1))
    by_account: dict[str, list[Bill]] = {a.id: [] for a in accounts}
    for bill in bills:
        if bill.service_account_id in by_account:
            by_account[bill.service_account_id].append(bill)
    return [
        NumberBills(
            account,
            tuple(
                sorted(
                    by_account[account.id],
                    key=lambda b: (b.period_start, b.issued_on),
                    reverse=True,
                )[:months]
            ),
        )
        for account in accounts
    ]


def payable(bills: Iterable[Bill]) -> list[Bill]:
    """The bills with money left to pay, the one due first first."""
    return sorted(
        (b for b in bills if b.outstanding_satang > 0), key=lambda b: (b.due_on, b.reference)
    )


def amount_to_pay(bill: Bill) -> int:
    """The satang a QR code for ``bill`` asks for: what is still outstanding.

    Raises :class:`NothingToPay` when the bill is paid in full, and
    :class:`~core.errors.InvalidInput` when its amounts are not whole, non-negative
    satang (a fraction of a satang is a bug upstream, never rounded here) or what is left
    is more than a Thai QR code carries."""
    for field, value in (("amount_satang", bill.amount_satang), ("paid_satang", bill.paid_satang)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(field, "must be a whole number of satang")
        if value < 0:
            raise InvalidInput(field, "must not be negative")
    outstanding = bill.amount_satang - bill.paid_satang
    if outstanding <= 0:
        raise NothingToPay(f"bill {bill.reference} is paid in full")
    if outstanding > MAX_AMOUNT_SATANG:
        raise InvalidInput("amount_satang", "is more than a Thai QR code carries")
    return outstanding


def qr_payload(settings: PaymentSettings, *, account_no: str, bill: Bill) -> str:
    """The PromptPay payload for what is left to pay on ``bill``: a bill payment to the
    biller (ref1 = ``account_no``, ref2 = the bill reference) when a biller id is set,
    else a transfer to the PromptPay id.

    Raises :class:`NothingToPay`, :class:`~core.errors.InvalidInput` (see
    :func:`amount_to_pay`), :class:`PaymentsNotConfigured`, or
    ``core.promptpay.PromptPayError`` for references a bank would not accept."""
    amount = amount_to_pay(bill)
    if settings.biller_id is not None:
        return bill_payment_payload(
            biller_id=settings.biller_id,
            ref1=account_no,
            ref2=bill.reference,
            amount_satang=amount,
        )
    if settings.promptpay_id is not None:
        return promptpay_payload(target=settings.promptpay_id, amount_satang=amount)
    raise PaymentsNotConfigured("set a PromptPay biller id or PromptPay id")


# --- payment links -------------------------------------------------------------------------


def hash_pay_token(token: str) -> bytes:
    """What is stored for a token. A token has 256 random bits, so a plain SHA-256 is
    enough: there is nothing to guess that a slow hash would protect."""
    return hashlib.sha256(token.encode("ascii")).digest()


def pay_link_url(settings: PaymentSettings, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/pay/{token}"


async def issue_pay_link(
    uow: UnitOfWork, settings: PaymentSettings, bill: Bill, *, language: str, now: datetime
) -> str:
    """A new payment page URL for ``bill``, valid for ``settings.pay_link_ttl``; subscribers
    hear of it as ``payment_link.created`` (in the same transaction)."""
    token = secrets.token_urlsafe(PAY_TOKEN_BYTES)
    token_hash = hash_pay_token(token)
    expires_at = now + settings.pay_link_ttl
    await uow.pay_links.add(
        PayLink(
            token_hash=token_hash,
            bill_id=bill.id,
            bill_reference=bill.reference,
            language=normalise_language(language),
            created_at=now,
            expires_at=expires_at,
        )
    )
    customer = await uow.customers.get(bill.customer_id)
    if customer is not None:
        await uow.events.publish(
            payment_link_created(
                account_no=customer.account_no,
                bill_reference=bill.reference,
                amount_satang=bill.outstanding_satang,
                # an id for the link that reveals nothing of the token itself
                link_id=token_hash[:16].hex(),
                expires_at=expires_at,
                created_at=now,
            ),
            occurred_at=now,
        )
    return pay_link_url(settings, token)


@dataclass(frozen=True, slots=True)
class PayPage:
    """What a valid payment link shows. ``payload`` is None when nothing is left to pay
    (or no QR code can be made); ``status`` is as of the Bangkok date of the visit."""

    bill: Bill
    account_no: str
    language: str
    status: BillStatus
    expires_at: datetime
    payload: str | None


@dataclass(frozen=True, slots=True)
class PayLinkGone:
    """The token is malformed, unknown or expired. ``language`` is the chat's when the
    link was ours (so the "not found" page speaks it), else None."""

    language: str | None


async def open_pay_link(
    uow: UnitOfWork, settings: PaymentSettings, token: str, *, now: datetime
) -> PayPage | PayLinkGone:
    """What the payment page of ``token`` shows at ``now``."""
    if _TOKEN_PATTERN.fullmatch(token) is None:
        return PayLinkGone(None)
    link = await uow.pay_links.find(hash_pay_token(token))
    if link is None:
        return PayLinkGone(None)
    if now >= link.expires_at:
        return PayLinkGone(link.language)
    bill = await uow.bills.get_by_reference(link.bill_reference)
    customer = None if bill is None else await uow.customers.get(bill.customer_id)
    if bill is None or customer is None:
        return PayLinkGone(link.language)
    payload: str | None = None
    if bill.outstanding_satang > 0 and settings.makes_qr:
        try:
            payload = qr_payload(settings, account_no=customer.account_no, bill=bill)
        except (InvalidInput, PromptPayError):
            # Data a bank would refuse (a malformed reference from billing): the page
            # still shows the bill, with the account number and reference to pay by.
            payload = None
    return PayPage(
        bill=bill,
        account_no=customer.account_no,
        language=link.language,
        status=bill.status(bangkok_today(now)),
        expires_at=link.expires_at,
        payload=payload,
    )
