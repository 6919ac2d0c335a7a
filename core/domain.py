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
class PayLink:
    """A payment page link (``/pay/{token}``) bound to one bill. Only the SHA-256 of the
    token is stored; ``language`` is the asking chat's, for the page."""

    token_hash: bytes
    bill_id: str
    bill_reference: str
    language: str
    created_at: datetime
    expires_at: datetime


class NotificationKind(enum.StrEnum):
    """Service messages about a customer's own bills. They are not marketing (no consent
    needed), are on unless the customer turns them off, and each can be turned off."""

    BILL_ISSUED = "bill_issued"
    BILL_DUE = "bill_due"


class PaymentStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"  # applied to a bill
    UNMATCHED = "unmatched"  # ref1/ref2 named no bill of ours: recorded, staff place it
    REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    external_id: str
    bill_id: str | None
    amount_satang: int
    paid_at: datetime
    method: str
    ref1: str | None = None  # PromptPay ref1: the account number
    ref2: str | None = None  # PromptPay ref2: the bill reference
    status: PaymentStatus = PaymentStatus.SUCCEEDED


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


# --- linking a chat to an e-service user (core/services/linking.py) ------------------------


@dataclass(frozen=True, slots=True)
class LinkToken:
    """A one-time page link (``/link/{token}``) for one chat. Only the SHA-256 of the token
    is stored. ``purpose`` is ``signin`` (User ID and password) or ``register`` (choose
    them; ``customer_id`` is the customer whose number the chat proved by SMS code)."""

    token_hash: bytes
    channel: str
    chat_id: str
    language: str
    notice_version: str
    purpose: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class OtpChallenge:
    """A one-time SMS code asked for by one chat; only its keyed hash is stored.
    ``customer_id`` is None when the number is not on file: no code was sent, and no
    answer matches (the chat is told the same either way)."""

    id: str
    channel: str
    chat_id: str
    code_digest: bytes
    customer_id: str | None
    created_at: datetime
    expires_at: datetime
    attempts: int = 0
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountLinkNonce:
    """LINE account linking: the nonce we handed LINE (SHA-256 stored) for the e-service
    user who signed in on the page; LINE's ``accountLink`` event brings it back."""

    nonce_hash: bytes
    channel: str
    chat_id: str
    eservice_user_id: str
    customer_id: str
    notice_version: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Throttle:
    """A counter of events (failed sign-ins, codes sent) for one subject, keyed by a keyed
    hash of it. ``strikes`` counts the blocks so far: each makes the next one longer."""

    kind: str
    key: bytes
    count: int = 0
    window_started_at: datetime | None = None
    blocked_until: datetime | None = None
    strikes: int = 0


# --- staff, campaigns and their deliveries (core/services/staff.py, campaigns.py) ---------


class StaffRole(enum.StrEnum):
    """What a staff member may do; a route or command states the one role it needs."""

    SUPPORT = "support"  # look a customer up (with a stated reason), handle corrections
    MARKETER = "marketer"  # campaigns
    ADMIN = "admin"  # staff, integrations, keys, the audit trail


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A member of staff. ``handle`` is an operator-chosen login name; ``chat_channel`` and
    ``chat_id`` name their own chat, where campaign previews go."""

    id: str
    handle: str
    roles: frozenset[StaffRole]
    active: bool
    created_at: datetime
    chat_channel: str | None = None
    chat_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this person."""
        return f"staff:{self.handle}"


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class DeliveryStatus(enum.StrEnum):
    """One recipient chat of one campaign. ``claimed`` and ``sending`` are leased to one
    worker: ``claimed`` is not yet handed to the platform (safe to hand to another worker),
    ``sending`` may have been delivered."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"  # the chat blocked the bot
    SKIPPED_NO_CONSENT = "skipped_no_consent"  # marketing consent withdrawn before the send
    SKIPPED_CAPPED = "skipped_capped"  # the customer had their promotions for the day
    SKIPPED_UNLINKED = "skipped_unlinked"  # the chat was unlinked before the send


@dataclass(frozen=True, slots=True)
class Campaign:
    """A promotion in Thai and English with an optional image and link button (https)."""

    id: str
    title: str
    text_th: str
    text_en: str
    status: CampaignStatus
    created_by: str
    created_at: datetime
    image_url: str | None = None
    link_url: str | None = None
    link_label_th: str | None = None
    link_label_en: str | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PromotionMessage:
    """A campaign as one language's recipients see it: the text (opt-out note included),
    the image, the link button and the one-tap opt-out button."""

    campaign_id: str
    language: str
    text: str
    optout_label: str
    optout_payload: str
    image_url: str | None = None
    link_label: str | None = None
    link_url: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryCandidate:
    """A recipient row claimed for sending, with what is true of it *now*: whether the
    customer's latest marketing consent is granted, how many other promotions they got
    today, whether the chat is still linked to them and still reachable."""

    id: int
    campaign_id: str
    customer_id: str | None  # None for a staff preview
    channel: str
    chat_id: str
    language: str
    preview: bool
    attempt: int
    consent_granted: bool
    promotions_today: int
    linked: bool
    reachable: bool


# --- profile, corrections and PDPA rights (core/services/profile.py, corrections.py) ------


class ProfileField(enum.StrEnum):
    """A field of the profile a customer sees, changes or reports as wrong."""

    NAME = "name"
    ADDRESS = "address"
    PHONE = "phone"
    EMAIL = "email"
    OTHER = "other"  # anything else (a service number, a bill detail…)


class ContactKind(enum.StrEnum):
    """A contact detail that is changed only after a code sent to the new value."""

    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class ContactChange:
    """A new email address or mobile number waiting for its confirmation code. The code is
    stored as a keyed hash; the new value encrypted. It works in the chat that asked only."""

    id: str
    customer_id: str
    kind: ContactKind
    value: str
    channel: str
    chat_id: str
    code_digest: bytes
    created_at: datetime
    expires_at: datetime
    attempts: int = 0
    used_at: datetime | None = None


class CorrectionStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class CorrectionRequest:
    """A customer's report that stored data is wrong, in their own words (stored
    encrypted); staff resolve it with a note the customer is shown."""

    id: str
    customer_id: str
    field: ProfileField
    text: str
    channel: str
    created_at: datetime
    status: CorrectionStatus = CorrectionStatus.OPEN
    resolved_at: datetime | None = None
    resolved_by: str | None = None  # the staff member's audit name (staff:handle)
    resolution_note: str | None = None
