"""Test data for bills and payments: a linked customer with numbers and monthly bills.

The frozen clock of the unit tests stands at 25 Nov 2026, 14:05 in Bangkok.
"""

from __future__ import annotations

import calendar
import itertools
from dataclasses import dataclass, replace
from datetime import date, timedelta

from factories import OPERATOR, chat_link, customer
from fakes import FakeDatabase

from core.domain import Bill, Customer, ServiceAccount, ServiceKind, new_id
from core.flows.context import ConversationSettings
from core.services.billing import PaymentSettings

TODAY = date(2026, 11, 25)
BILLER_ID = "010555999999901"
PUBLIC_URL = "https://selfcare.example.co.th"
PAYMENTS = PaymentSettings(public_url=PUBLIC_URL, biller_id=BILLER_ID)

_serial = itertools.count(1)


def month_start(back: int, today: date = TODAY) -> date:
    index = today.year * 12 + today.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def monthly_bill(account: ServiceAccount, back: int, **changes: object) -> Bill:
    """The bill of the month ``back`` months before this one: issued the day after the
    month ends, due 30 days later, paid in full unless ``changes`` say otherwise."""
    start = month_start(back)
    end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
    amount = 50_000 + 1_000 * back + 7
    values: dict[str, object] = {
        "id": new_id(),
        "customer_id": account.customer_id,
        "service_account_id": account.id,
        "reference": f"B{next(_serial):09d}{back:02d}",
        "period_start": start,
        "period_end": end,
        "issued_on": end + timedelta(days=1),
        "due_on": end + timedelta(days=31),
        "amount_satang": amount,
        "paid_satang": amount,
    }
    values.update(changes)
    return Bill(**values)  # type: ignore[arg-type]


@dataclass
class Household:
    """A customer linked to the chat under test, their numbers and bills."""

    customer: Customer
    accounts: list[ServiceAccount]
    bills: list[Bill]

    def bills_of(self, account: ServiceAccount) -> list[Bill]:
        return sorted(
            (b for b in self.bills if b.service_account_id == account.id),
            key=lambda b: b.period_start,
            reverse=True,
        )

    def newest(self, account: ServiceAccount | None = None) -> Bill:
        return self.bills_of(account or self.accounts[0])[0]


def number(
    owner: Customer, kind: ServiceKind = ServiceKind.MOBILE, digits: str = ""
) -> ServiceAccount:
    return ServiceAccount(
        id=new_id(),
        customer_id=owner.id,
        number=digits or owner.phone,
        kind=kind,
        plan="เน็ตไม่อั้น 599",
    )


def add_household(
    db: FakeDatabase,
    *,
    numbers: int = 1,
    months: int = 12,
    newest: dict[str, object] | None = None,
    link: tuple[str, str] | None = ("terminal", "chat-1"),
    account_no: str = "1000000001",
    language: str = "th",
) -> Household:
    """A customer with ``numbers`` service numbers (mobile, home phone, internet), each with
    ``months`` monthly bills; every bill is paid except the newest, which is unpaid (or as
    ``newest`` says). Linked to ``link`` unless it is None."""
    owner = customer(account_no=account_no, language=language, phone=f"08{next(_serial):08d}")
    kinds = [ServiceKind.MOBILE, ServiceKind.FIXED, ServiceKind.INTERNET]
    accounts = [
        number(owner, kinds[i], "" if i == 0 else f"02{next(_serial):07d}") for i in range(numbers)
    ]
    bills: list[Bill] = []
    for account in accounts:
        for back in range(months, 0, -1):
            bill = monthly_bill(account, back)
            if back == 1:
                bill = replace(bill, paid_satang=0)
                if newest:
                    bill = replace(bill, **newest)  # type: ignore[arg-type]
            bills.append(bill)
    state = db.state
    state.customers[owner.id] = owner
    for account in accounts:
        state.service_accounts[account.id] = account
    for bill in bills:
        state.bills[bill.id] = bill
    if link is not None:
        channel, chat_id = link
        state.links[(channel, chat_id)] = chat_link(owner, channel=channel, chat_id=chat_id)
    return Household(owner, accounts, bills)


def settings_with(payments: PaymentSettings | None = PAYMENTS) -> ConversationSettings:
    return ConversationSettings(
        operator_name=OPERATOR, privacy_contact="privacy@example.co.th", payments=payments
    )
