"""The ports: what the use cases need from the outside world, as Protocols.

``storage`` implements the repositories and the unit of work; ``bot`` implements the
messenger, SMS and clock for production; the unit tests implement them with fakes.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Protocol, Self

from core.chat import Reply
from core.domain import (
    AccountLinkNonce,
    AuditEntry,
    Bill,
    Campaign,
    CampaignStatus,
    ChatLink,
    ConsentRecord,
    ContactChange,
    ContactKind,
    Conversation,
    CorrectionRequest,
    Customer,
    DeliveryStatus,
    EServiceUser,
    LinkToken,
    NotificationKind,
    OtpChallenge,
    PayLink,
    Payment,
    PaymentStatus,
    PromotionMessage,
    ServiceAccount,
    StaffMember,
    Throttle,
)
from core.integration_events import EndpointSummary, OutboundEvent, WebhookEndpoint


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class PasswordHasher(Protocol):
    """argon2id, run off the event loop by the implementation."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    async def dummy_verify(self, password: str) -> None:
        """Spend the time of a ``verify`` when there is no user (no enumeration by timing)."""
        ...


class KeyedHash(Protocol):
    """HMAC-SHA256 under a secret key per ``field`` (``storage.crypto.FieldCipher``):
    how one-time codes and the subjects of lockouts are stored without their value."""

    def blind_index(self, field: str, value: str) -> bytes: ...


class SmsSender(Protocol):
    """Sends a text message to a Thai mobile number (an SMS gateway)."""

    async def send(self, phone: str, text: str) -> None:
        """Send ``text`` to ``phone`` (domestic form, e.g. 0812345678); raises
        :class:`DeliveryError` when the gateway did not take it."""
        ...


class EmailSender(Protocol):
    """Sends a plain-text email (SMTP, or the development stand-in that prints it)."""

    async def send(self, to: str, subject: str, text: str) -> None:
        """Send ``text`` to ``to``; raises :class:`DeliveryError` when it was not taken."""
        ...


class ConversationRepository(Protocol):
    async def load_for_update(
        self, channel: str, chat_id: str, default_language: str
    ) -> Conversation:
        """The chat's state, locked until the unit of work ends (a new one if none)."""
        ...

    async def save(self, conversation: Conversation) -> None:
        """Store ``conversation``; raises ``core.errors.Conflict`` on a stale version."""
        ...

    async def delete(self, channel: str, chat_id: str) -> None: ...

    async def language(self, channel: str, chat_id: str) -> str | None:
        """The chat's language, read without a lock (None if the chat never wrote)."""
        ...


class InboxRepository(Protocol):
    async def accept(self, channel: str, event_id: str, received_at: datetime) -> bool:
        """Record the event; False if it was recorded before (a redelivery)."""
        ...


class OutboxRepository(Protocol):
    async def enqueue_replies(
        self, channel: str, chat_id: str, replies: Sequence[Reply], now: datetime
    ) -> list[int]:
        """Queue replies for a chat in order; returns their outbox ids."""
        ...


class CustomerRepository(Protocol):
    async def add(self, customer: Customer) -> None: ...

    async def get(self, customer_id: str) -> Customer | None: ...

    async def get_by_account_no(self, account_no: str) -> Customer | None: ...

    async def find_by_phone(self, phone: str) -> Customer | None: ...

    async def update(self, customer: Customer) -> None: ...

    async def add_service_account(self, account: ServiceAccount) -> None: ...

    async def service_accounts(self, customer_id: str) -> list[ServiceAccount]: ...

    async def find_service_account_by_number(self, number: str) -> ServiceAccount | None: ...

    async def customer_ids_for_number(self, number: str, *, limit: int = 2) -> list[str]:
        """Up to ``limit`` distinct customers with ``number`` as their contact phone or as a
        mobile service number (two are enough to tell that a number is shared)."""
        ...


class BillRepository(Protocol):
    async def add(self, bill: Bill) -> None: ...

    async def get_by_reference(self, reference: str) -> Bill | None: ...

    async def for_customer(
        self, customer_id: str, *, limit: int = 12, since: date | None = None
    ) -> list[Bill]:
        """Newest first."""
        ...


class EServiceUserRepository(Protocol):
    async def add(self, user: EServiceUser) -> None: ...

    async def get_by_user_id(self, user_id: str) -> EServiceUser | None: ...

    async def for_customer(self, customer_id: str) -> list[EServiceUser]: ...


class ChatLinkRepository(Protocol):
    async def get(self, channel: str, chat_id: str) -> ChatLink | None: ...

    async def link(self, link: ChatLink) -> None: ...

    async def unlink(self, channel: str, chat_id: str) -> bool: ...

    async def for_customer(self, customer_id: str) -> list[ChatLink]: ...


class ConsentLedger(Protocol):
    async def record(self, record: ConsentRecord) -> None: ...

    async def history(self, customer_id: str) -> list[ConsentRecord]:
        """Oldest first."""
        ...


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...


class PaymentRepository(Protocol):
    """Payments confirmed by banks and gateways (core/services/payments.py)."""

    async def get_for_update(self, external_id: str) -> Payment | None:
        """The payment with this external id, if any. Locks the id until the unit of work
        ends, so two recordings of one payment run one after the other."""
        ...

    async def add(self, payment: Payment) -> None: ...

    async def set_status(self, payment_id: str, status: PaymentStatus) -> None: ...

    async def add_to_bill(self, bill_id: str, delta_satang: int) -> Bill:
        """Add ``delta_satang`` (negative to take back) to the bill's paid amount in one
        atomic update; returns the bill after it."""
        ...


class BillingDirectory(Protocol):
    """Bulk reads and writes of customers, their numbers and bills, as the billing system
    sends them (one event, or a batch of import lines)."""

    async def lock(self, names: Collection[str]) -> None:
        """Serialise writers of these names (e.g. ``account:1000000001``) until the unit of
        work ends; taken in a fixed order, so batches never deadlock each other."""
        ...

    async def customer_ids(self, account_nos: Collection[str]) -> dict[str, str]:
        """Customer id by account number, for those that exist."""
        ...

    async def service_accounts_by_number(
        self, numbers: Collection[str]
    ) -> dict[str, ServiceAccount]:
        """Service accounts by number (domestic form), for those that exist."""
        ...

    async def bills(self, references: Collection[str]) -> dict[str, Bill]:
        """Bills by reference, for those that exist."""
        ...

    async def save_customers(self, added: Sequence[Customer], changed: Sequence[Customer]) -> None:
        """Insert ``added`` and overwrite ``changed`` (matched by id), encrypted."""
        ...

    async def save_service_accounts(
        self, added: Sequence[ServiceAccount], changed: Sequence[ServiceAccount]
    ) -> None: ...

    async def save_bills(self, added: Sequence[Bill], changed: Sequence[Bill]) -> None:
        """Insert ``added``; overwrite ``changed`` except their paid amount."""
        ...

    async def delete_customer(self, customer_id: str) -> None:
        """Delete the customer with their numbers, users, chat links, bills and consents."""
        ...


class EventPublisher(Protocol):
    """Integration events for subscribers (the transactional outbox of webhooks out)."""

    async def publish(self, event: OutboundEvent, *, occurred_at: datetime) -> str:
        """Queue ``event`` for every endpoint subscribed to its type, in this unit of work;
        returns its stable id (the ``webhook-id`` of every delivery and replay)."""
        ...


class WebhookSubscriptions(Protocol):
    """Subscriber endpoints and their deliveries (``selfcare integrations``, admin API)."""

    async def add_endpoint(self, endpoint: WebhookEndpoint) -> None: ...

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...

    async def list_endpoints(self) -> list[EndpointSummary]: ...

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        """Delete the endpoint and its pending deliveries; False if there was none."""
        ...

    async def replay(
        self,
        *,
        now: datetime,
        event_ids: Sequence[str] = (),
        endpoint_id: str | None = None,
        dead_only: bool = False,
        since: datetime | None = None,
    ) -> int:
        """Queue the matching deliveries again now (same event ids); with ``event_ids`` and
        ``endpoint_id`` a delivery is created for an endpoint that never had one. Returns
        how many deliveries were queued."""
        ...


class ChatReachabilityRepository(Protocol):
    """Chats that blocked the bot (Telegram 403, LINE unfollow): nothing is sent to them
    until they write again."""

    async def mark_unreachable(
        self, channel: str, chat_id: str, reason: str, now: datetime
    ) -> None: ...

    async def mark_reachable(self, channel: str, chat_id: str) -> bool:
        """True if the chat had been marked unreachable."""
        ...

    async def is_unreachable(self, channel: str, chat_id: str) -> bool: ...


class PayLinkRepository(Protocol):
    """Payment page links (``/pay/{token}``), kept by the SHA-256 of their token."""

    async def add(self, link: PayLink) -> None: ...

    async def find(self, token_hash: bytes) -> PayLink | None:
        """The link with this token hash, expired or not; None if there is none."""
        ...

    async def purge_expired(self, before: datetime) -> int:
        """Delete links that expired before ``before``; returns how many."""
        ...


class NotificationPreferenceRepository(Protocol):
    """Which service messages a customer turned off or on (absent: the default, on)."""

    async def for_customer(self, customer_id: str) -> dict[NotificationKind, bool]:
        """The choices the customer made; a kind missing here was never changed."""
        ...

    async def set(
        self, customer_id: str, kind: NotificationKind, enabled: bool, at: datetime
    ) -> None: ...


class ReminderLedger(Protocol):
    """Bill reminders: which bills may need one, and which were sent (never twice)."""

    async def open_bills(
        self, today: date, *, after: tuple[date, str] | None = None, limit: int = 200
    ) -> list[Bill]:
        """Bills not paid in full, issued on or before ``today`` and due on or after it,
        of customers with at least one linked chat; ordered by (due date, id), starting
        after the ``(due_on, id)`` key ``after``."""
        ...

    async def sent_kinds(self, bill_ids: Collection[str]) -> dict[str, set[str]]:
        """The reminder kinds already recorded, by bill id (bills with none are absent)."""
        ...

    async def claim(self, bill_id: str, kind: str, at: datetime) -> bool:
        """Record that reminder ``kind`` of the bill is sent; False when it was recorded
        before (by this or another process), in which case nothing changes."""
        ...


class LinkingRepository(Protocol):
    """One-time page links, SMS codes, LINE account-link nonces and lockout counters
    (``core/services/linking.py``). Secrets are stored as hashes only."""

    async def add_link_token(self, token: LinkToken) -> None: ...

    async def find_link_token(self, token_hash: bytes) -> LinkToken | None:
        """The token with this hash, used or expired or not; None if there is none."""
        ...

    async def use_link_token(self, token_hash: bytes, at: datetime) -> bool:
        """Mark the token used; False when it was used already (by a concurrent request)."""
        ...

    async def add_otp(self, challenge: OtpChallenge) -> None: ...

    async def open_otp(self, channel: str, chat_id: str) -> OtpChallenge | None:
        """The chat's newest code not yet used up (it may have expired)."""
        ...

    async def update_otp(
        self, challenge_id: str, *, attempts: int, used_at: datetime | None
    ) -> None: ...

    async def add_nonce(self, nonce: AccountLinkNonce) -> None: ...

    async def find_nonce(self, nonce_hash: bytes) -> AccountLinkNonce | None: ...

    async def use_nonce(self, nonce_hash: bytes, at: datetime) -> bool:
        """Mark the nonce used; False when it was used already."""
        ...

    async def close_open_secrets(self, channel: str, chat_id: str, at: datetime) -> None:
        """Use up every page link, code and nonce the chat still holds (after it links)."""
        ...

    async def throttle(self, kind: str, key: bytes) -> Throttle | None:
        """The counter, locked until the unit of work ends (None if there is none yet)."""
        ...

    async def save_throttle(self, throttle: Throttle, now: datetime) -> None: ...

    async def purge(self, before: datetime) -> int:
        """Delete secrets that expired and counters idle since before ``before``."""
        ...


class StaffRepository(Protocol):
    """Staff, their roles and API tokens (kept as SHA-256 hashes), and the support desk's
    lookups of a customer's id that decrypt nothing (core/services/staff.py)."""

    async def add(self, member: StaffMember) -> None:
        """Raises ``core.errors.Conflict`` when the handle is taken."""
        ...

    async def get_by_handle(self, handle: str) -> StaffMember | None: ...

    async def list(self) -> list[StaffMember]: ...

    async def set_active(self, staff_id: str, active: bool, at: datetime) -> None: ...

    async def add_token(
        self, staff_id: str, token_hash: bytes, created_at: datetime, expires_at: datetime | None
    ) -> str:
        """Store a token's hash; returns the token's id."""
        ...

    async def revoke_tokens(self, staff_id: str, at: datetime) -> int: ...

    async def by_token_hash(self, token_hash: bytes, now: datetime) -> StaffMember | None:
        """The active staff member holding this unexpired, unrevoked token."""
        ...

    async def customer_id_by_account_no(self, account_no: str) -> str | None: ...

    async def customer_id_by_phone(self, phone: str) -> str | None:
        """Through the phone's blind index: nothing is decrypted."""
        ...


class CampaignRepository(Protocol):
    """Campaigns and the counts of their recipient rows (core/services/campaigns.py)."""

    async def add(self, campaign: Campaign) -> None: ...

    async def get(self, campaign_id: str) -> Campaign | None: ...

    async def list(self, limit: int = 50) -> list[Campaign]:
        """Newest first."""
        ...

    async def change_status(
        self,
        campaign_id: str,
        allowed: Collection[CampaignStatus],
        status: CampaignStatus,
        at: datetime,
        *,
        scheduled_at: datetime | None = None,
    ) -> bool:
        """Move the campaign to ``status`` if it is in one of ``allowed`` (atomic);
        False when it was not."""
        ...

    async def counts(self, campaign_id: str) -> dict[DeliveryStatus, int]:
        """Recipient rows by status (previews not counted)."""
        ...

    async def queue_preview(
        self, campaign_id: str, channel: str, chat_id: str, now: datetime
    ) -> None:
        """Queue (again) a preview of the campaign to one staff chat."""
        ...


class ProfileRepository(Protocol):
    """Contact changes waiting for their code, and correction requests
    (core/services/profile.py, corrections.py). Codes are stored as keyed hashes, the new
    values and the customers' own words encrypted."""

    async def add_contact_change(self, change: ContactChange) -> None:
        """Store ``change``; any earlier open change of the same kind for the customer is
        used up (only the newest code works)."""
        ...

    async def open_contact_change(
        self, customer_id: str, kind: ContactKind, channel: str, chat_id: str
    ) -> ContactChange | None:
        """The newest change of ``kind`` not yet used up that this chat asked for."""
        ...

    async def update_contact_change(
        self, change_id: str, *, attempts: int, used_at: datetime | None
    ) -> None: ...

    async def customer_id_by_email(self, email: str) -> str | None:
        """The customer whose email this is (through its blind index: nothing decrypted)."""
        ...

    async def add_correction(self, request: CorrectionRequest) -> None: ...

    async def get_correction(self, request_id: str) -> CorrectionRequest | None: ...

    async def corrections_for(self, customer_id: str) -> list[CorrectionRequest]:
        """Oldest first."""
        ...

    async def open_corrections(self, limit: int = 50) -> list[CorrectionRequest]:
        """Open requests of every customer, oldest first."""
        ...

    async def resolve_correction(
        self, request_id: str, *, by: str, note: str, at: datetime
    ) -> bool:
        """Mark an open request resolved; False when it was not open (atomic)."""
        ...


class PersonalDataStore(Protocol):
    """Everything stored about one customer, found by following the schema's foreign keys
    from their customer row (so a new table is covered without code here)."""

    async def export(self, customer_id: str) -> dict[str, list[dict[str, object]]]:
        """Every row held about the customer, by table, values decrypted and JSON-ready
        (dates as ISO 8601); one-way values (blind indexes, hashes) are left out."""
        ...

    async def erase(
        self, customer_id: str, *, keep_conversation: tuple[str, str] | None = None
    ) -> dict[str, int]:
        """Delete the customer and every row held about them, with the conversations,
        messages and secrets of their linked chats (except the state of the chat
        ``keep_conversation``, which the caller resets), so that nothing can be recovered
        from the database files. Returns the rows deleted by table."""
        ...


class RetentionRepository(Protocol):
    """Deletes old rows of the inbox, the outbox and idle conversations."""

    async def purge_inbox(self, before: datetime, limit: int) -> int: ...

    async def purge_outbox(self, before: datetime, limit: int) -> int:
        """Sent or given-up chat messages created before ``before``."""
        ...

    async def purge_conversations(self, before: datetime, limit: int) -> int:
        """Conversations idle since before ``before``."""
        ...


class UnitOfWork(Protocol):
    """One database transaction with the repositories bound to it.

    Leaving the ``async with`` block without :meth:`commit` rolls everything back."""

    @property
    def conversations(self) -> ConversationRepository: ...

    @property
    def inbox(self) -> InboxRepository: ...

    @property
    def outbox(self) -> OutboxRepository: ...

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def bills(self) -> BillRepository: ...

    @property
    def users(self) -> EServiceUserRepository: ...

    @property
    def links(self) -> ChatLinkRepository: ...

    @property
    def consent(self) -> ConsentLedger: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def reachability(self) -> ChatReachabilityRepository: ...

    @property
    def payments(self) -> PaymentRepository: ...

    @property
    def billing(self) -> BillingDirectory: ...

    @property
    def events(self) -> EventPublisher: ...

    @property
    def webhooks(self) -> WebhookSubscriptions: ...

    @property
    def pay_links(self) -> PayLinkRepository: ...

    @property
    def notification_preferences(self) -> NotificationPreferenceRepository: ...

    @property
    def reminders(self) -> ReminderLedger: ...

    @property
    def linking(self) -> LinkingRepository: ...

    @property
    def staff(self) -> StaffRepository: ...

    @property
    def campaigns(self) -> CampaignRepository: ...

    @property
    def profile(self) -> ProfileRepository: ...

    @property
    def personal_data(self) -> PersonalDataStore: ...

    @property
    def retention(self) -> RetentionRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class DeliveryError(Exception):
    """A channel could not deliver a reply. ``retry_after`` (seconds) is set when the
    platform asked us to wait; ``permanent`` when retrying cannot help (the user blocked
    the bot, the chat is gone)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.permanent = permanent


class Messenger(Protocol):
    """Sends neutral replies to one channel's chats (Telegram, LINE, the terminal)."""

    async def send(self, chat_id: str, reply: Reply) -> None:
        """Deliver ``reply``; raises :class:`DeliveryError` when it could not."""
        ...


class SendOutcome(enum.StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"  # the chat blocked the bot or is gone
    FAILED = "failed"  # the platform refused it for good
    RETRY = "retry"  # certainly not delivered: may be sent again (after ``retry_after``)
    UNKNOWN = "unknown"  # the request may have been delivered (a timeout, a 5xx)


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    retry_after: float | None = None
    reason: str = ""


class BulkSender(Protocol):
    """Sends one promotion to chats of one channel, one platform request per call
    (Telegram: one chat; LINE multicast: up to 500). ``idempotent`` senders deliver a
    request repeated with the same ``retry_key`` only once (LINE's X-Line-Retry-Key)."""

    channel: str
    max_batch: int
    idempotent: bool

    async def send(
        self, chat_ids: Sequence[str], message: PromotionMessage, *, retry_key: str
    ) -> SendResult:
        """Never raises for a platform's answer: every outcome is a :class:`SendResult`."""
        ...
