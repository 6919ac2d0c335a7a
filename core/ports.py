"""The ports: what the use cases need from the outside world, as Protocols.

``storage`` implements the repositories and the unit of work; ``bot`` implements the
messenger, SMS and clock for production; the unit tests implement them with fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Protocol, Self

from core.chat import Reply
from core.domain import (
    AuditEntry,
    Bill,
    ChatLink,
    ConsentRecord,
    Conversation,
    Customer,
    EServiceUser,
    ServiceAccount,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class PasswordHasher(Protocol):
    """argon2id, run off the event loop by the implementation."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...


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
