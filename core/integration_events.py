"""The integration contract: events billing and payment systems send us, events we send out.

Inbound events (``POST /integrations/events`` and ``selfcare import``) are pydantic models,
validated strictly: unknown fields, wrong types and floats where an integer is due are
refused, never coerced. Money is an integer number of satang (1 baht = 100 satang), so
``64093`` is ฿640.93; a JSON number with a fraction or an exponent is refused.

Every inbound body is a Standard Webhooks envelope::

    {"type": "bill.issued", "timestamp": "2026-11-25T03:04:05Z", "data": {...}}

``selfcare import customers|bills`` reads one ``data`` object per line, with the schema of
``customer.upserted`` or ``bill.issued``.

Outbound events are built here too (:func:`payment_recorded`, :func:`account_linked`…) so
that their payloads are defined in one place; a use case publishes one with
``await uow.events.publish(event, occurred_at=now)`` in the same unit of work as the change
it reports.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from core.domain import ServiceKind
from core.promptpay import MAX_AMOUNT_SATANG

__all__ = [
    "INBOUND_EVENT_TYPES",
    "OUTBOUND_EVENT_TYPES",
    "BillData",
    "CustomerData",
    "CustomerDeletedData",
    "EventError",
    "InboundEvent",
    "OutboundEvent",
    "PaymentReversedData",
    "PaymentSucceededData",
    "ServiceAccountData",
    "WebhookEndpoint",
    "account_linked",
    "account_unlinked",
    "consent_changed",
    "parse_bill_line",
    "parse_customer_line",
    "parse_event",
    "payment_link_created",
    "payment_recorded",
    "payment_reversed",
    "profile_correction_requested",
    "profile_updated",
]

# --- field types -------------------------------------------------------------------------

#: One line of text: no control characters, not starting with a space.
_LINE = r"^[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"
_LINE_HELP = "one line of text: no control characters, not starting with a space"
Line80 = Annotated[
    str, StringConstraints(pattern=_LINE, max_length=80), Field(description=_LINE_HELP)
]
Line200 = Annotated[
    str, StringConstraints(pattern=_LINE, max_length=200), Field(description=_LINE_HELP)
]
Line500 = Annotated[
    str, StringConstraints(pattern=_LINE, max_length=500), Field(description=_LINE_HELP)
]

AccountNo = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{4,20}$"),
    Field(description="the customer's account number (PromptPay ref1): 4-20 digits"),
]
BillReference = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z0-9]{1,20}$"),
    Field(description="the bill's reference (PromptPay ref2): 1-20 upper-case letters A-Z, digits"),
]
ThaiPhone = Annotated[
    str,
    StringConstraints(pattern=r"^0[0-9]{8,9}$"),
    Field(description="a Thai number in domestic form: 0 and 8 or 9 digits, e.g. 0812345678"),
]
Satang = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_AMOUNT_SATANG,
        description="an amount in satang (integer; 100 satang = 1 baht)",
    ),
]
PositiveSatang = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_AMOUNT_SATANG,
        description="a positive amount in satang (integer; 100 satang = 1 baht)",
    ),
]
PaymentId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$"),
    Field(description="the payment's id at the bank or gateway (the idempotency key)"),
]

_EARLIEST = date(2000, 1, 1)
_LATEST = date(2100, 12, 31)


def _date_in_range(value: date) -> date:
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("must be between 2000-01-01 and 2100-12-31")
    return value


def _moment_in_range(value: datetime) -> datetime:
    _date_in_range(value.date())
    return value


Day = Annotated[date, AfterValidator(_date_in_range), Field(description="YYYY-MM-DD")]
Moment = Annotated[
    AwareDatetime,
    AfterValidator(_moment_in_range),
    Field(description="RFC 3339 date-time with a UTC offset"),
]


class _Strict(BaseModel):
    # No coercion: "100" is not 100 and 100.0 is not 100; unknown fields are mistakes.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- inbound: data of each event -----------------------------------------------------------


class ServiceAccountData(_Strict):
    number: ThaiPhone
    kind: ServiceKind = Field(description="mobile | fixed | internet")
    plan: Line80


class CustomerData(_Strict):
    """``customer.upserted``: the full record of one customer, created or replaced.

    Service numbers listed are added or updated; numbers not listed are left alone."""

    account_no: AccountNo
    name: Line200
    address: Line500
    phone: ThaiPhone
    email: (
        Annotated[
            str,
            StringConstraints(
                pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$", max_length=254
            ),
        ]
        | None
    ) = None
    national_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{13}$")] | None = None
    language: Literal["th", "en"] = "th"
    service_accounts: Annotated[list[ServiceAccountData], Field(max_length=50)] = Field(
        default_factory=list
    )

    @field_validator("service_accounts")
    @classmethod
    def _numbers_once(cls, value: list[ServiceAccountData]) -> list[ServiceAccountData]:
        numbers = [sa.number for sa in value]
        if len(numbers) != len(set(numbers)):
            raise ValueError("a number is listed twice")
        return value


class CustomerDeletedData(_Strict):
    """``customer.deleted``: forget the customer, their numbers, bills and chat links."""

    account_no: AccountNo


class BillData(_Strict):
    """``bill.issued`` / ``bill.updated``: a bill, created or replaced by its reference.

    ``paid_satang`` is not part of it: payments are recorded from payment events."""

    reference: BillReference
    account_no: AccountNo
    service_number: ThaiPhone
    period_start: Day
    period_end: Day
    issued_on: Day
    due_on: Day
    amount_satang: Satang

    @field_validator("period_end")
    @classmethod
    def _period_ordered(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("period_start")
        if start is not None and value < start:
            raise ValueError("is before period_start")
        return value

    @field_validator("due_on")
    @classmethod
    def _due_after_issue(cls, value: date, info: ValidationInfo) -> date:
        issued = info.data.get("issued_on")
        if issued is not None and value < issued:
            raise ValueError("is before issued_on")
        return value


class PaymentSucceededData(_Strict):
    """``payment.succeeded``: money for a bill arrived (matched by ref1 and ref2)."""

    payment_id: PaymentId
    amount_satang: PositiveSatang
    paid_at: Moment
    ref1: AccountNo
    ref2: BillReference
    method: Annotated[
        str,
        StringConstraints(pattern=r"^[a-z0-9_]{1,32}$"),
        Field(description="how it was paid, e.g. promptpay, bank_transfer, counter"),
    ]


class PaymentReversedData(_Strict):
    """``payment.reversed``: a payment recorded before was taken back (a chargeback, a
    bounced transfer)."""

    payment_id: PaymentId
    reversed_at: Moment
    reason: Line200 | None = None


# --- inbound: envelopes ------------------------------------------------------------------


class _Envelope(_Strict):
    timestamp: Moment | None = Field(
        default=None, description="when the sender created the event (informational)"
    )


class CustomerUpserted(_Envelope):
    type: Literal["customer.upserted"]
    data: CustomerData


class CustomerDeleted(_Envelope):
    type: Literal["customer.deleted"]
    data: CustomerDeletedData


class BillIssued(_Envelope):
    type: Literal["bill.issued"]
    data: BillData


class BillUpdated(_Envelope):
    type: Literal["bill.updated"]
    data: BillData


class PaymentSucceeded(_Envelope):
    type: Literal["payment.succeeded"]
    data: PaymentSucceededData


class PaymentReversed(_Envelope):
    type: Literal["payment.reversed"]
    data: PaymentReversedData


InboundEvent = Annotated[
    CustomerUpserted
    | CustomerDeleted
    | BillIssued
    | BillUpdated
    | PaymentSucceeded
    | PaymentReversed,
    Field(discriminator="type"),
]
INBOUND_EVENT_TYPES: tuple[str, ...] = (
    "customer.upserted",
    "customer.deleted",
    "bill.issued",
    "bill.updated",
    "payment.succeeded",
    "payment.reversed",
)
EVENT_ADAPTER: TypeAdapter[InboundEvent] = TypeAdapter(InboundEvent)
_CUSTOMER_LINE: TypeAdapter[CustomerData] = TypeAdapter(CustomerData)
_BILL_LINE: TypeAdapter[BillData] = TypeAdapter(BillData)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a payload was refused: ``loc`` is the path to the field (pydantic's
    ``loc``, e.g. ``("data", "service_accounts", 0, "number")``)."""

    loc: tuple[str | int, ...]
    type: str
    msg: str

    def as_json(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "type": self.type, "msg": self.msg}

    def path(self) -> str:
        """``data.service_accounts[0].number``"""
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else part
        return out or "(body)"


class EventError(Exception):
    """A body that is not a valid event. ``malformed`` when it is not JSON at all."""

    def __init__(self, errors: list[FieldError], *, malformed: bool = False) -> None:
        super().__init__("; ".join(f"{e.path()}: {e.msg}" for e in errors))
        self.errors = errors
        self.malformed = malformed


def _field_errors(exc: ValidationError, *, tagged: bool) -> EventError:
    errors: list[FieldError] = []
    malformed = False
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc: tuple[str | int, ...] = tuple(err["loc"])
        kind = err["type"]
        if kind == "json_invalid":
            malformed = True
            errors.append(FieldError((), kind, "the body is not valid JSON"))
            continue
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            known = ", ".join(INBOUND_EVENT_TYPES)
            errors.append(FieldError(("type",), kind, f"type must be one of: {known}"))
            continue
        if tagged and loc:
            loc = loc[1:]  # pydantic puts the discriminator's value first
        errors.append(FieldError(loc, kind, _message(err["msg"])))
    return EventError(errors, malformed=malformed)


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def parse_event(body: bytes | str) -> InboundEvent:
    """The event in a JSON body; raises :class:`EventError` (``malformed`` for non-JSON)."""
    try:
        return EVENT_ADAPTER.validate_json(body)
    except ValidationError as exc:
        raise _field_errors(exc, tagged=True) from None


def parse_customer_line(line: bytes | str) -> CustomerData:
    """One line of a customers import file; raises :class:`EventError`."""
    try:
        return _CUSTOMER_LINE.validate_json(line)
    except ValidationError as exc:
        raise _field_errors(exc, tagged=False) from None


def parse_bill_line(line: bytes | str) -> BillData:
    """One line of a bills import file; raises :class:`EventError`."""
    try:
        return _BILL_LINE.validate_json(line)
    except ValidationError as exc:
        raise _field_errors(exc, tagged=False) from None


# --- outbound ------------------------------------------------------------------------------

OUTBOUND_EVENT_TYPES: tuple[str, ...] = (
    "account.linked",
    "account.unlinked",
    "profile.updated",
    "profile.correction_requested",
    "consent.changed",
    "payment_link.created",
    "payment.recorded",
    "payment.reversed",
)


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """An event for subscribers: ``type`` one of :data:`OUTBOUND_EVENT_TYPES`, ``data``
    JSON-serialisable. Delivered as ``{"type", "timestamp", "data"}``."""

    type: str
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.type not in OUTBOUND_EVENT_TYPES:
            raise ValueError(f"unknown outbound event type {self.type!r}")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def account_linked(*, account_no: str, channel: str, linked_at: datetime) -> OutboundEvent:
    """A chat was linked to the customer's e-service account."""
    return OutboundEvent(
        "account.linked",
        {"account_no": account_no, "channel": channel, "linked_at": _iso(linked_at)},
    )


def account_unlinked(
    *, account_no: str, channel: str, unlinked_at: datetime, reason: str
) -> OutboundEvent:
    """A chat's link ended; ``reason``: ``customer`` (they unlinked), ``forget`` (erasure),
    ``staff`` or ``customer_deleted`` (the billing system deleted the customer)."""
    return OutboundEvent(
        "account.unlinked",
        {
            "account_no": account_no,
            "channel": channel,
            "unlinked_at": _iso(unlinked_at),
            "reason": reason,
        },
    )


def profile_updated(
    *, account_no: str, changes: Mapping[str, str | None], updated_at: datetime
) -> OutboundEvent:
    """The customer changed profile fields in the chat; ``changes`` maps each changed
    field (``address``, ``email``…) to its new value."""
    return OutboundEvent(
        "profile.updated",
        {"account_no": account_no, "changes": dict(changes), "updated_at": _iso(updated_at)},
    )


def profile_correction_requested(
    *, account_no: str, request_id: str, field_name: str, proposed: str, requested_at: datetime
) -> OutboundEvent:
    """The customer reported a wrong value that staff must check (e.g. the name)."""
    return OutboundEvent(
        "profile.correction_requested",
        {
            "account_no": account_no,
            "request_id": request_id,
            "field": field_name,
            "proposed": proposed,
            "requested_at": _iso(requested_at),
        },
    )


def consent_changed(
    *,
    account_no: str,
    purpose: str,
    granted: bool,
    notice_version: str,
    channel: str,
    recorded_at: datetime,
) -> OutboundEvent:
    """A consent was granted or withdrawn."""
    return OutboundEvent(
        "consent.changed",
        {
            "account_no": account_no,
            "purpose": purpose,
            "granted": granted,
            "notice_version": notice_version,
            "channel": channel,
            "recorded_at": _iso(recorded_at),
        },
    )


def payment_link_created(
    *,
    account_no: str,
    bill_reference: str,
    amount_satang: int,
    link_id: str,
    expires_at: datetime,
    created_at: datetime,
) -> OutboundEvent:
    """A payment link (or PromptPay QR) was made for a bill."""
    return OutboundEvent(
        "payment_link.created",
        {
            "account_no": account_no,
            "bill_reference": bill_reference,
            "amount_satang": amount_satang,
            "link_id": link_id,
            "expires_at": _iso(expires_at),
            "created_at": _iso(created_at),
        },
    )


def payment_recorded(
    *,
    payment_id: str,
    account_no: str,
    bill_reference: str,
    matched: bool,
    amount_satang: int,
    applied_satang: int,
    excess_satang: int,
    bill_amount_satang: int | None,
    bill_paid_satang: int | None,
    outstanding_satang: int | None,
    bill_status: str | None,
    method: str,
    paid_at: datetime,
) -> OutboundEvent:
    """A payment was recorded. ``matched`` is false when ref1/ref2 named no bill of ours
    (the money is recorded, staff must place it); ``excess_satang`` is what this payment
    paid beyond the bill's amount."""
    return OutboundEvent(
        "payment.recorded",
        {
            "payment_id": payment_id,
            "account_no": account_no,
            "bill_reference": bill_reference,
            "matched": matched,
            "amount_satang": amount_satang,
            "applied_satang": applied_satang,
            "excess_satang": excess_satang,
            "bill_amount_satang": bill_amount_satang,
            "bill_paid_satang": bill_paid_satang,
            "outstanding_satang": outstanding_satang,
            "bill_status": bill_status,
            "method": method,
            "paid_at": _iso(paid_at),
        },
    )


def payment_reversed(
    *,
    payment_id: str,
    amount_satang: int,
    bill_reference: str | None,
    outstanding_satang: int | None,
    bill_status: str | None,
    reversed_at: datetime,
) -> OutboundEvent:
    """A recorded payment was reversed; the bill's outstanding amount is back."""
    return OutboundEvent(
        "payment.reversed",
        {
            "payment_id": payment_id,
            "amount_satang": amount_satang,
            "bill_reference": bill_reference,
            "outstanding_satang": outstanding_satang,
            "bill_status": bill_status,
            "reversed_at": _iso(reversed_at),
        },
    )


# --- subscribers ------------------------------------------------------------------------


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A subscriber: where events go, which ones, and the ``whsec_`` secret they are
    signed with (decrypted only to sign, and shown once when the endpoint is added)."""

    id: str
    url: str
    events: tuple[str, ...]
    secret: str = field(repr=False)
    description: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    """An endpoint as listed: no secret, delivery counts by status."""

    id: str
    url: str
    events: tuple[str, ...]
    description: str
    created_at: datetime
    pending: int
    delivered: int
    dead: int
