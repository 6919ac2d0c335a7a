"""In-memory fakes of the ports in ``core.ports`` and a frozen clock.

``FakeDatabase`` holds committed state. A ``FakeUnitOfWork`` works on a private copy taken
when it is entered and writes it back only on ``commit``, so changes are visible to later
units of work only after commit (and not at all after a rollback). Units of work run one
at a time (like SQLite's single writer); opening one inside another in the same task is a
bug in the caller and raises instead of deadlocking.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from fakes_billing import FakeNotificationPreferences, FakePayLinks, FakeReminderLedger
from fakes_integrations import FakeBillingDirectory, FakeEvents, FakePayments, FakeWebhooks
from fakes_linking import FakeLinking, LinkingState
from fakes_profile import FakePersonalData, FakeProfile, ProfileState

from core.chat import Reply, reply_from_json, reply_to_json
from core.domain import (
    AuditEntry,
    Bill,
    ChatLink,
    ConsentRecord,
    Conversation,
    Customer,
    EServiceUser,
    ServiceAccount,
    ServiceKind,
)
from core.errors import Conflict


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 11, 25, 7, 5, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, now: datetime) -> None:
        self._now = now


@dataclass
class OutboxRow:
    id: int
    channel: str
    chat_id: str
    reply: dict[str, Any]  # as stored: JSON, so replies must round-trip
    created_at: datetime

    def decoded(self) -> Reply:
        return reply_from_json(self.reply)


@dataclass
class State:
    """Everything a unit of work can change; copied on enter, swapped in on commit."""

    conversations: dict[tuple[str, str], Conversation] = field(default_factory=dict)
    inbox: dict[tuple[str, str], datetime] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)
    customers: dict[str, Customer] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    bills: dict[str, Bill] = field(default_factory=dict)
    users: dict[str, EServiceUser] = field(default_factory=dict)
    links: dict[tuple[str, str], ChatLink] = field(default_factory=dict)
    consent: list[ConsentRecord] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    unreachable: dict[tuple[str, str], str] = field(default_factory=dict)
    payments: dict[str, Any] = field(default_factory=dict)  # by external id
    published: list[Any] = field(default_factory=list)  # (event id, OutboundEvent, at)
    endpoints: dict[str, Any] = field(default_factory=dict)
    pay_links: dict[bytes, Any] = field(default_factory=dict)  # PayLink by token hash
    notification_preferences: dict[tuple[str, Any], bool] = field(default_factory=dict)
    sent_reminders: dict[tuple[str, str], datetime] = field(default_factory=dict)
    linking: LinkingState = field(default_factory=LinkingState)
    profile: ProfileState = field(default_factory=ProfileState)
    next_outbox_id: int = 1


class FakeDatabase:
    def __init__(self) -> None:
        self.state = State()
        self.commits = 0
        self.rollbacks = 0
        self.fail_next_save: Exception | None = None
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    def unit_of_work(self) -> FakeUnitOfWork:
        """A ``core.ports.UnitOfWorkFactory``."""
        return FakeUnitOfWork(self)

    # --- committed state, for assertions ------------------------------------------
    def conversation(self, channel: str, chat_id: str) -> Conversation | None:
        return self.state.conversations.get((channel, chat_id))

    def outbox_for(self, channel: str, chat_id: str) -> list[Reply]:
        rows = self.state.outbox
        return [row.decoded() for row in rows if (row.channel, row.chat_id) == (channel, chat_id)]


class FakeConversations:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def load_for_update(
        self, channel: str, chat_id: str, default_language: str
    ) -> Conversation:
        stored = self._uow.state.conversations.get((channel, chat_id))
        if stored is None:
            return Conversation(channel=channel, chat_id=chat_id, language=default_language)
        return copy.deepcopy(stored)

    async def save(self, conversation: Conversation) -> None:
        failure, self._uow.db.fail_next_save = self._uow.db.fail_next_save, None
        if failure is not None:
            raise failure
        key = (conversation.channel, conversation.chat_id)
        stored = self._uow.state.conversations.get(key)
        if (stored.version if stored else 0) != conversation.version:
            raise Conflict("conversation version is stale")
        conversation.version += 1
        self._uow.state.conversations[key] = copy.deepcopy(conversation)

    async def delete(self, channel: str, chat_id: str) -> None:
        self._uow.state.conversations.pop((channel, chat_id), None)

    async def language(self, channel: str, chat_id: str) -> str | None:
        stored = self._uow.state.conversations.get((channel, chat_id))
        return None if stored is None else stored.language


class FakeInbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def accept(self, channel: str, event_id: str, received_at: datetime) -> bool:
        key = (channel, event_id)
        if key in self._uow.state.inbox:
            return False
        self._uow.state.inbox[key] = received_at
        return True


class FakeOutbox:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def enqueue_replies(
        self, channel: str, chat_id: str, replies: Sequence[Reply], now: datetime
    ) -> list[int]:
        state = self._uow.state
        ids = []
        for reply in replies:
            row = OutboxRow(state.next_outbox_id, channel, chat_id, reply_to_json(reply), now)
            state.outbox.append(row)
            ids.append(row.id)
            state.next_outbox_id += 1
        return ids


class FakeCustomers:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, customer: Customer) -> None:
        if customer.id in self._uow.state.customers:
            raise Conflict("customer exists")
        self._uow.state.customers[customer.id] = customer

    async def get(self, customer_id: str) -> Customer | None:
        return self._uow.state.customers.get(customer_id)

    async def get_by_account_no(self, account_no: str) -> Customer | None:
        found = (c for c in self._uow.state.customers.values() if c.account_no == account_no)
        return next(found, None)

    async def find_by_phone(self, phone: str) -> Customer | None:
        return next((c for c in self._uow.state.customers.values() if c.phone == phone), None)

    async def update(self, customer: Customer) -> None:
        self._uow.state.customers[customer.id] = customer

    async def add_service_account(self, account: ServiceAccount) -> None:
        self._uow.state.service_accounts[account.id] = account

    async def service_accounts(self, customer_id: str) -> list[ServiceAccount]:
        accounts = self._uow.state.service_accounts.values()
        return [a for a in accounts if a.customer_id == customer_id]

    async def find_service_account_by_number(self, number: str) -> ServiceAccount | None:
        accounts = self._uow.state.service_accounts.values()
        return next((a for a in accounts if a.number == number), None)

    async def customer_ids_for_number(self, number: str, *, limit: int = 2) -> list[str]:
        contacts = {c.id for c in self._uow.state.customers.values() if c.phone == number}
        mobiles = {
            a.customer_id
            for a in self._uow.state.service_accounts.values()
            if a.number == number and a.kind is ServiceKind.MOBILE
        }
        return sorted(contacts | mobiles)[:limit]


class FakeBills:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, bill: Bill) -> None:
        self._uow.state.bills[bill.id] = bill

    async def get_by_reference(self, reference: str) -> Bill | None:
        return next((b for b in self._uow.state.bills.values() if b.reference == reference), None)

    async def for_customer(
        self, customer_id: str, *, limit: int = 12, since: date | None = None
    ) -> list[Bill]:
        bills = [
            b
            for b in self._uow.state.bills.values()
            if b.customer_id == customer_id and (since is None or b.issued_on >= since)
        ]
        return sorted(bills, key=lambda b: b.issued_on, reverse=True)[:limit]


class FakeUsers:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def add(self, user: EServiceUser) -> None:
        if await self.get_by_user_id(user.user_id) is not None:
            raise Conflict("user id taken")
        self._uow.state.users[user.id] = user

    async def get_by_user_id(self, user_id: str) -> EServiceUser | None:
        return next((u for u in self._uow.state.users.values() if u.user_id == user_id), None)

    async def for_customer(self, customer_id: str) -> list[EServiceUser]:
        return [u for u in self._uow.state.users.values() if u.customer_id == customer_id]


class FakeLinks:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def get(self, channel: str, chat_id: str) -> ChatLink | None:
        return self._uow.state.links.get((channel, chat_id))

    async def link(self, link: ChatLink) -> None:
        self._uow.state.links[(str(link.channel), link.chat_id)] = link

    async def unlink(self, channel: str, chat_id: str) -> bool:
        return self._uow.state.links.pop((channel, chat_id), None) is not None

    async def for_customer(self, customer_id: str) -> list[ChatLink]:
        return [lk for lk in self._uow.state.links.values() if lk.customer_id == customer_id]


class FakeConsent:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def record(self, record: ConsentRecord) -> None:
        self._uow.state.consent.append(record)

    async def history(self, customer_id: str) -> list[ConsentRecord]:
        return [r for r in self._uow.state.consent if r.customer_id == customer_id]


class FakeAudit:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def append(self, entry: AuditEntry) -> None:
        self._uow.state.audit.append(entry)


class FakeReachability:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    async def mark_unreachable(
        self, channel: str, chat_id: str, reason: str, now: datetime
    ) -> None:
        self.uow.state.unreachable.setdefault((channel, chat_id), reason)

    async def mark_reachable(self, channel: str, chat_id: str) -> bool:
        return self.uow.state.unreachable.pop((channel, chat_id), None) is not None

    async def is_unreachable(self, channel: str, chat_id: str) -> bool:
        return (channel, chat_id) in self.uow.state.unreachable


class FakeUnitOfWork:
    """``core.ports.UnitOfWork`` in memory."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.state = State()
        self.committed = False
        self.conversations = FakeConversations(self)
        self.inbox = FakeInbox(self)
        self.outbox = FakeOutbox(self)
        self.customers = FakeCustomers(self)
        self.bills = FakeBills(self)
        self.users = FakeUsers(self)
        self.links = FakeLinks(self)
        self.consent = FakeConsent(self)
        self.audit = FakeAudit(self)
        self.reachability = FakeReachability(self)
        self.payments = FakePayments(self)
        self.billing = FakeBillingDirectory(self)
        self.events = FakeEvents(self)
        self.webhooks = FakeWebhooks(self)
        self.pay_links = FakePayLinks(self)
        self.notification_preferences = FakeNotificationPreferences(self)
        self.reminders = FakeReminderLedger(self)
        self.linking = FakeLinking(self)
        self.profile = FakeProfile(self)
        self.personal_data = FakePersonalData(self)

    async def __aenter__(self) -> Self:
        task = asyncio.current_task()
        if task is not None and self.db._owner is task:
            raise RuntimeError("a unit of work was opened inside another one")
        await self.db._lock.acquire()
        self.db._owner = task
        self.state = copy.deepcopy(self.db.state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.db.rollbacks += 1
        self.db._owner = None
        self.db._lock.release()

    async def commit(self) -> None:
        self.db.state = copy.deepcopy(self.state)
        self.db.commits += 1
        self.committed = True
