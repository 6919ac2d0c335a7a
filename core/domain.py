"""Domain objects: plain dataclasses handed between storage and the use cases.

Money is integer satang (1 baht = 100 satang); times are timezone-aware UTC.
Personal values (names, addresses, phone numbers…) are clear text here only because
storage decrypted them for a use case that asked; they never reach a log.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime


def new_id() -> str:
    """A random 128-bit identifier (hex), used as the primary key of rows that hold
    encrypted values so the id is known before the insert (it is part of the
    associated data of every ciphertext in the row)."""
    return secrets.token_hex(16)


class Channel(enum.StrEnum):
    TELEGRAM = "telegram"
    LINE = "line"
    TERMINAL = "terminal"


class BillStatus(enum.StrEnum):
    UNPAID = "unpaid"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"
    OVERDUE = "overdue"


class ServiceKind(enum.StrEnum):
    MOBILE = "mobile"
    FIXED = "fixed"
    INTERNET = "internet"


class ConsentPurpose(enum.StrEnum):
    PRIVACY_NOTICE = "privacy_notice"
    MARKETING = "marketing"
    PERSONALISATION = "personalisation"
    PARTNER_DISCLOSURE = "partner_disclosure"


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    account_no: str
    name: str
    address: str
    phone: str
    email: str | None
    national_id: str | None
    language: str = "th"
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    id: str
    customer_id: str
    number: str
    kind: ServiceKind
    plan: str


@dataclass(frozen=True, slots=True)
class Bill:
    id: str
    customer_id: str
    service_account_id: str
    reference: str
    period_start: date
    period_end: date
    issued_on: date
    due_on: date
    amount_satang: int
    paid_satang: int = 0

    def status(self, today: date) -> BillStatus:
        """The status a customer sees on ``today`` (a Bangkok calendar date)."""
        if self.paid_satang >= self.amount_satang:
            return BillStatus.PAID
        if today > self.due_on:
            return BillStatus.OVERDUE
        if self.paid_satang > 0:
            return BillStatus.PARTLY_PAID
        return BillStatus.UNPAID

    @property
    def outstanding_satang(self) -> int:
        return max(self.amount_satang - self.paid_satang, 0)


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    external_id: str
    bill_id: str | None
    amount_satang: int
    paid_at: datetime
    method: str


@dataclass(frozen=True, slots=True)
class EServiceUser:
    id: str
    user_id: str
    customer_id: str
    password_hash: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChatLink:
    channel: Channel
    chat_id: str
    eservice_user_id: str
    customer_id: str
    linked_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    customer_id: str
    purpose: ConsentPurpose
    granted: bool
    notice_version: str
    channel: str
    recorded_at: datetime


@dataclass(slots=True)
class Conversation:
    """The state of one chat, read and written on every event under a lock.

    ``data`` is the current dialogue's own state (JSON-serialisable); ``deadline`` is
    when a multi-step dialogue expires (timeouts are data, not timers)."""

    channel: str
    chat_id: str
    language: str
    flow: str | None = None
    step: str | None = None
    data: dict[str, object] = field(default_factory=dict)
    deadline: datetime | None = None
    version: int = 0
    seen_privacy_notice: bool = False


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str
    action: str
    subject: str
    details: dict[str, object]
    at: datetime
