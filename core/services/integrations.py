"""Use cases of the integration events: what each inbound event does, in bulk or one at a time,
and the management of subscriber endpoints.

The billing system's events (``customer.upserted``, ``customer.deleted``, ``bill.issued``,
``bill.updated``) and ``selfcare import`` share :func:`upsert_customers` and
:func:`upsert_bills`: an event is a batch of one. Each line of a batch is checked against
the stored data *before* anything is written, so a refused line leaves no trace and the
rest of the batch goes on. Payment events go to :mod:`core.services.payments`.
Nothing here commits: the caller owns the unit of work.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from core.domain import AuditEntry, Bill, Customer, ServiceAccount, new_id
from core.errors import InvalidInput, NotFound
from core.i18n import BANGKOK
from core.integration_events import (
    OUTBOUND_EVENT_TYPES,
    BillData,
    BillIssued,
    BillUpdated,
    CustomerData,
    CustomerDeleted,
    CustomerUpserted,
    InboundEvent,
    PaymentReversed,
    PaymentSucceeded,
    WebhookEndpoint,
    account_unlinked,
)
from core.ports import UnitOfWork
from core.services.payments import PaymentConfirmation, record_payment, reverse_payment

__all__ = [
    "Applied",
    "EventRejected",
    "Outcome",
    "Rejected",
    "add_endpoint",
    "apply_event",
    "check_event_types",
    "delete_customer",
    "new_webhook_secret",
    "remove_endpoint",
    "replay_deliveries",
    "upsert_bills",
    "upsert_customers",
]


@dataclass(frozen=True, slots=True)
class Applied:
    """A line or event that was applied; ``result`` is what the caller reports back."""

    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line or event refused because of the stored data; ``loc`` is the field's path
    inside ``data``. Nothing of it was written."""

    loc: tuple[str | int, ...]
    message: str


Outcome = Applied | Rejected


class EventRejected(Exception):
    """An event that cannot be applied as it stands (HTTP 422); ``loc`` is the field's
    path in the body, e.g. ``("data", "account_no")``."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


# --- one event ----------------------------------------------------------------------------


async def apply_event(uow: UnitOfWork, event: InboundEvent, *, now: datetime) -> dict[str, Any]:
    """Apply one inbound event; returns the result reported to the sender.

    Raises :class:`EventRejected` when the stored data refuses it (an unknown account,
    a number of another customer…) and ``core.errors.Conflict`` when a payment id was
    recorded before with other details."""
    match event:
        case CustomerUpserted():
            return _single(await upsert_customers(uow, [event.data], now=now))
        case CustomerDeleted():
            return await delete_customer(uow, event.data.account_no, now=now)
        case BillIssued() | BillUpdated():
            return _single(await upsert_bills(uow, [event.data], now=now))
        case PaymentSucceeded():
            d = event.data
            paid = await record_payment(
                uow,
                PaymentConfirmation(
                    external_id=d.payment_id,
                    amount_satang=d.amount_satang,
                    paid_at=d.paid_at,
                    ref1=d.ref1,
                    ref2=d.ref2,
                    method=d.method,
                ),
                now=now,
            )
            return paid.as_json()
        case PaymentReversed():
            try:
                reversed_ = await reverse_payment(
                    uow, event.data.payment_id, reversed_at=event.data.reversed_at, now=now
                )
            except NotFound:
                raise EventRejected(
                    ("data", "payment_id"),
                    "no payment with this payment_id has been recorded (yet)",
                ) from None
            return reversed_.as_json()
    raise AssertionError(f"unhandled event {type(event).__name__}")  # pragma: no cover


def _single(outcomes: list[Outcome]) -> dict[str, Any]:
    (outcome,) = outcomes
    if isinstance(outcome, Rejected):
        raise EventRejected(("data", *outcome.loc), outcome.message)
    return outcome.result


# --- customers ---------------------------------------------------------------------------


def _customer(item: CustomerData, customer_id: str) -> Customer:
    return Customer(
        id=customer_id,
        account_no=item.account_no,
        name=item.name,
        address=item.address,
        phone=item.phone,
        email=item.email,
        national_id=item.national_id,
        language=item.language,
    )


async def upsert_customers(
    uow: UnitOfWork, items: Sequence[CustomerData], *, now: datetime
) -> list[Outcome]:
    """Create or replace customers (and add or update their service numbers), one
    outcome per item in order. A later item for the same account wins."""
    directory = uow.billing
    accounts = {item.account_no for item in items}
    numbers = {sa.number for item in items for sa in item.service_accounts}
    await directory.lock([*(f"account:{a}" for a in accounts), *(f"number:{n}" for n in numbers)])
    ids = await directory.customer_ids(accounts)
    owners = await directory.service_accounts_by_number(numbers)
    stored_accounts = set(ids)
    stored_numbers = set(owners)

    customers: dict[str, Customer] = {}
    accounts_touched: dict[str, ServiceAccount] = {}
    outcomes: list[Outcome] = []
    for item in items:
        customer_id = ids.get(item.account_no) or new_id()
        taken = next(
            (
                i
                for i, sa in enumerate(item.service_accounts)
                if sa.number in owners and owners[sa.number].customer_id != customer_id
            ),
            None,
        )
        if taken is not None:
            outcomes.append(
                Rejected(("service_accounts", taken, "number"), "this number is another account's")
            )
            continue
        created = item.account_no not in ids
        ids[item.account_no] = customer_id
        customers[item.account_no] = _customer(item, customer_id)
        added = updated = 0
        for sa in item.service_accounts:
            owned = owners.get(sa.number)
            if owned is None:
                owned = ServiceAccount(new_id(), customer_id, sa.number, sa.kind, sa.plan)
                added += 1
            elif (owned.kind, owned.plan) != (sa.kind, sa.plan):
                owned = replace(owned, kind=sa.kind, plan=sa.plan)
                updated += 1
            else:
                continue
            owners[sa.number] = accounts_touched[sa.number] = owned
        outcomes.append(
            Applied(
                {
                    "customer": "created" if created else "updated",
                    "account_no": item.account_no,
                    "service_accounts_added": added,
                    "service_accounts_updated": updated,
                }
            )
        )

    await directory.save_customers(
        [c for a, c in customers.items() if a not in stored_accounts],
        [c for a, c in customers.items() if a in stored_accounts],
    )
    await directory.save_service_accounts(
        [sa for n, sa in accounts_touched.items() if n not in stored_numbers],
        [sa for n, sa in accounts_touched.items() if n in stored_numbers],
    )
    return outcomes


async def delete_customer(uow: UnitOfWork, account_no: str, *, now: datetime) -> dict[str, Any]:
    """Delete a customer and everything of theirs; each linked chat is reported to
    subscribers as ``account.unlinked`` (reason ``customer_deleted``). Deleting an
    unknown account is not an error (``"customer": "absent"``)."""
    directory = uow.billing
    await directory.lock([f"account:{account_no}"])
    customer_id = (await directory.customer_ids([account_no])).get(account_no)
    if customer_id is None:
        return {"customer": "absent", "account_no": account_no}
    links = await uow.links.for_customer(customer_id)
    for link in links:
        await uow.events.publish(
            account_unlinked(
                account_no=account_no,
                channel=str(link.channel),
                unlinked_at=now,
                reason="customer_deleted",
            ),
            occurred_at=now,
        )
    await directory.delete_customer(customer_id)
    return {"customer": "deleted", "account_no": account_no, "unlinked_chats": len(links)}


# --- bills ---------------------------------------------------------------------------------


async def upsert_bills(
    uow: UnitOfWork, items: Sequence[BillData], *, now: datetime
) -> list[Outcome]:
    """Create or replace bills by reference (their paid amount is kept), one outcome per
    item in order. The account and the service number must exist and belong together."""
    directory = uow.billing
    today = now.astimezone(BANGKOK).date()
    await directory.lock([f"bill:{r}" for r in {item.reference for item in items}])
    ids = await directory.customer_ids({item.account_no for item in items})
    numbers = await directory.service_accounts_by_number({item.service_number for item in items})
    bills = await directory.bills({item.reference for item in items})
    stored = set(bills)

    touched: dict[str, Bill] = {}
    outcomes: list[Outcome] = []
    for item in items:
        customer_id = ids.get(item.account_no)
        if customer_id is None:
            outcomes.append(
                Rejected(
                    ("account_no",),
                    "no customer has this account number: send customer.upserted first",
                )
            )
            continue
        service = numbers.get(item.service_number)
        if service is None or service.customer_id != customer_id:
            outcomes.append(
                Rejected(("service_number",), "this number is not one of the account's numbers")
            )
            continue
        existing = bills.get(item.reference)
        if existing is not None and existing.customer_id != customer_id:
            outcomes.append(Rejected(("reference",), "this reference is a bill of another account"))
            continue
        bill = Bill(
            id=existing.id if existing else new_id(),
            customer_id=customer_id,
            service_account_id=service.id,
            reference=item.reference,
            period_start=item.period_start,
            period_end=item.period_end,
            issued_on=item.issued_on,
            due_on=item.due_on,
            amount_satang=item.amount_satang,
            paid_satang=existing.paid_satang if existing else 0,
        )
        verdict = "created" if existing is None else "unchanged" if existing == bill else "updated"
        if verdict != "unchanged":
            bills[item.reference] = touched[item.reference] = bill
        outcomes.append(
            Applied(
                {
                    "bill": verdict,
                    "reference": item.reference,
                    "status": bill.status(today).value,
                    "outstanding_satang": bill.outstanding_satang,
                }
            )
        )

    await directory.save_bills(
        [b for r, b in touched.items() if r not in stored],
        [b for r, b in touched.items() if r in stored],
    )
    return outcomes


# --- subscriber endpoints ------------------------------------------------------------------

_SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_MAX_URL = 2000
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def new_webhook_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return _SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_webhook_secret(secret: str) -> str:
    """``secret`` if it is ``whsec_`` and base64 of 24 to 64 bytes; else InvalidInput."""
    if not secret.startswith(_SECRET_PREFIX):
        raise InvalidInput("secret", "must start with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("secret", "must be whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidInput("secret", "must hold 24 to 64 random bytes")
    return secret


def check_endpoint_url(url: str, *, allow_http: bool = False) -> str:
    """An https URL (http only for loopback or with ``allow_http``); else InvalidInput."""
    url = url.strip()
    if not url or len(url) > _MAX_URL or any(ch.isspace() for ch in url):
        raise InvalidInput("url", f"must be an absolute URL of at most {_MAX_URL} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("url", "is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidInput("url", "must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidInput("url", "must not carry credentials; the signature authenticates us")
    if parts.scheme == "http" and not allow_http and host not in _LOOPBACK:
        raise InvalidInput("url", "must be https (or pass allow_http for a private network)")
    return url


def check_event_types(types: Iterable[str]) -> tuple[str, ...]:
    """The event types asked for, in the contract's order; ``*`` means all of them."""
    wanted = {t.strip() for t in types if t.strip()}
    if "*" in wanted:
        return OUTBOUND_EVENT_TYPES
    unknown = sorted(wanted - set(OUTBOUND_EVENT_TYPES))
    if unknown:
        known = ", ".join(OUTBOUND_EVENT_TYPES)
        raise InvalidInput("events", f"unknown {', '.join(unknown)}; known: {known} (or *)")
    if not wanted:
        raise InvalidInput("events", "name at least one event type (or *)")
    return tuple(t for t in OUTBOUND_EVENT_TYPES if t in wanted)


async def add_endpoint(
    uow: UnitOfWork,
    url: str,
    events: Iterable[str],
    *,
    now: datetime,
    description: str = "",
    secret: str | None = None,
    allow_http: bool = False,
    actor: str = "system",
) -> WebhookEndpoint:
    """Register a subscriber; a secret is generated unless one is given. The returned
    endpoint holds the secret: show it once, it is stored encrypted. Audited as ``actor``.
    Raises InvalidInput."""
    endpoint = WebhookEndpoint(
        id=new_id(),
        url=check_endpoint_url(url, allow_http=allow_http),
        events=check_event_types(events),
        secret=new_webhook_secret() if secret is None else check_webhook_secret(secret),
        description=description.strip()[:200],
        created_at=now,
    )
    await uow.webhooks.add_endpoint(endpoint)
    await uow.audit.append(
        AuditEntry(
            actor=actor,
            action="webhook_endpoint.add",
            subject=endpoint.id,
            details={"url": endpoint.url, "events": list(endpoint.events)},
            at=now,
        )
    )
    return endpoint


async def remove_endpoint(
    uow: UnitOfWork, endpoint_id: str, *, now: datetime, actor: str = "system"
) -> None:
    """Delete a subscriber and its pending deliveries (audited). Raises NotFound."""
    if not await uow.webhooks.remove_endpoint(endpoint_id):
        raise NotFound(f"no endpoint {endpoint_id}")
    await uow.audit.append(
        AuditEntry(
            actor=actor, action="webhook_endpoint.remove", subject=endpoint_id, details={}, at=now
        )
    )


async def replay_deliveries(
    uow: UnitOfWork,
    *,
    now: datetime,
    event_ids: Sequence[str] = (),
    endpoint_id: str | None = None,
    dead_only: bool = False,
    since: datetime | None = None,
    actor: str = "system",
) -> int:
    """Queue deliveries again with their event ids (see ``WebhookSubscriptions.replay``);
    audited. Raises InvalidInput without a selection, NotFound for an unknown endpoint."""
    if not (event_ids or endpoint_id or dead_only or since):
        raise InvalidInput("selection", "name event ids, an endpoint, dead, or since")
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since", "needs a UTC offset, like +07:00")
    if endpoint_id and await uow.webhooks.get_endpoint(endpoint_id) is None:
        raise NotFound(f"no endpoint {endpoint_id}")
    queued = await uow.webhooks.replay(
        now=now, event_ids=event_ids, endpoint_id=endpoint_id, dead_only=dead_only, since=since
    )
    await uow.audit.append(
        AuditEntry(
            actor=actor,
            action="webhook_deliveries.replay",
            subject=endpoint_id or "*",
            details={
                "event_ids": list(event_ids)[:50],
                "dead_only": dead_only,
                "since": None if since is None else since.isoformat(),
                "queued": queued,
            },
            at=now,
        )
    )
    return queued
