"""In-memory fakes of the integration ports: payments, the billing directory, events out
and subscriber endpoints. ``FakeUnitOfWork`` (fakes.py) carries one of each."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from core.domain import Bill, Customer, Payment, PaymentStatus, ServiceAccount
from core.errors import Conflict
from core.integration_events import EndpointSummary, OutboundEvent, WebhookEndpoint

if TYPE_CHECKING:
    from fakes import FakeUnitOfWork

_event_ids = itertools.count(1)


class FakePayments:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get_for_update(self, external_id: str) -> Payment | None:
        return self._uow.state.payments.get(external_id)

    async def add(self, payment: Payment) -> None:
        if payment.external_id in self._uow.state.payments:
            raise Conflict("payment exists")
        self._uow.state.payments[payment.external_id] = payment

    async def set_status(self, payment_id: str, status: PaymentStatus) -> None:
        payments = self._uow.state.payments
        for key, payment in payments.items():
            if payment.id == payment_id:
                payments[key] = replace(payment, status=status)

    async def add_to_bill(self, bill_id: str, delta_satang: int) -> Bill:
        bill = self._uow.state.bills[bill_id]
        after = replace(bill, paid_satang=max(bill.paid_satang + delta_satang, 0))
        self._uow.state.bills[bill_id] = after
        return after


class FakeBillingDirectory:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def lock(self, names: Collection[str]) -> None:
        pass  # units of work already run one at a time

    async def customer_ids(self, account_nos: Collection[str]) -> dict[str, str]:
        customers = self._uow.state.customers.values()
        return {c.account_no: c.id for c in customers if c.account_no in account_nos}

    async def service_accounts_by_number(
        self, numbers: Collection[str]
    ) -> dict[str, ServiceAccount]:
        accounts = self._uow.state.service_accounts.values()
        return {a.number: a for a in accounts if a.number in numbers}

    async def bills(self, references: Collection[str]) -> dict[str, Bill]:
        return {b.reference: b for b in self._uow.state.bills.values() if b.reference in references}

    async def save_customers(self, added: Sequence[Customer], changed: Sequence[Customer]) -> None:
        for customer in [*added, *changed]:
            self._uow.state.customers[customer.id] = customer

    async def save_service_accounts(
        self, added: Sequence[ServiceAccount], changed: Sequence[ServiceAccount]
    ) -> None:
        for account in [*added, *changed]:
            self._uow.state.service_accounts[account.id] = account

    async def save_bills(self, added: Sequence[Bill], changed: Sequence[Bill]) -> None:
        bills = self._uow.state.bills
        for bill in added:
            bills[bill.id] = bill
        for bill in changed:
            bills[bill.id] = replace(bill, paid_satang=bills[bill.id].paid_satang)

    async def delete_customer(self, customer_id: str) -> None:
        state = self._uow.state
        state.customers.pop(customer_id, None)
        for table in (state.service_accounts, state.bills):
            for key in [k for k, v in table.items() if v.customer_id == customer_id]:
                del table[key]
        for key in [k for k, v in state.links.items() if v.customer_id == customer_id]:
            del state.links[key]


class FakeEvents:
    """Published events land in ``state.published`` as (event id, event, occurred_at)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def publish(self, event: OutboundEvent, *, occurred_at: datetime) -> str:
        event_id = f"msg_fake{next(_event_ids)}"
        self._uow.state.published.append((event_id, event, occurred_at))
        return event_id


class FakeWebhooks:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self._uow.state.endpoints[endpoint.id] = endpoint

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return self._uow.state.endpoints.get(endpoint_id)

    async def list_endpoints(self) -> list[EndpointSummary]:
        return [
            EndpointSummary(e.id, e.url, e.events, e.description, e.created_at, 0, 0, 0)  # type: ignore[arg-type]
            for e in self._uow.state.endpoints.values()
        ]

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        return self._uow.state.endpoints.pop(endpoint_id, None) is not None

    async def replay(self, **_: object) -> int:
        return 0
