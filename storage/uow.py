"""The database: an engine, the field cipher, and units of work over one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from storage.billing import (
    SqlNotificationPreferenceRepository,
    SqlPayLinkRepository,
    SqlReminderLedger,
)
from storage.channels import SqlCallbackPayloads, SqlChatReachability, SqlMediaStore
from storage.conversations import (
    SqlConversationRepository,
    SqlInboxRepository,
    SqlOutboxRepository,
)
from storage.crypto import FieldCipher
from storage.db import create_engine
from storage.directory import SqlBillingDirectory
from storage.integrations import (
    SqlEventPublisher,
    SqlImportCheckpoints,
    SqlIntegrationInbox,
    SqlWebhookDeliveries,
    SqlWebhookSubscriptions,
)
from storage.linking import SqlLinkingRepository
from storage.payments import SqlPaymentRepository
from storage.privacy import SqlPersonalDataStore, SqlRetention
from storage.profile import SqlProfileRepository
from storage.repositories import (
    SqlAuditLog,
    SqlBillRepository,
    SqlChatLinkRepository,
    SqlConsentLedger,
    SqlCustomerRepository,
    SqlEServiceUserRepository,
)
from storage.staff import SqlBroadcastQueue, SqlCampaignRepository, SqlStaffRepository


class SqlUnitOfWork:
    """One transaction; implements ``core.ports.UnitOfWork``.

    ``async with db.uow() as uow: …; await uow.commit()`` — leaving the block without
    commit (or by an exception) rolls back."""

    conversations: SqlConversationRepository
    inbox: SqlInboxRepository
    outbox: SqlOutboxRepository
    customers: SqlCustomerRepository
    bills: SqlBillRepository
    users: SqlEServiceUserRepository
    links: SqlChatLinkRepository
    consent: SqlConsentLedger
    audit: SqlAuditLog
    pay_links: SqlPayLinkRepository
    notification_preferences: SqlNotificationPreferenceRepository
    reminders: SqlReminderLedger
    reachability: SqlChatReachability
    media: SqlMediaStore
    callback_payloads: SqlCallbackPayloads
    payments: SqlPaymentRepository
    billing: SqlBillingDirectory
    events: SqlEventPublisher
    webhooks: SqlWebhookSubscriptions
    webhook_deliveries: SqlWebhookDeliveries
    integration_inbox: SqlIntegrationInbox
    import_checkpoints: SqlImportCheckpoints
    linking: SqlLinkingRepository
    staff: SqlStaffRepository
    campaigns: SqlCampaignRepository
    broadcast: SqlBroadcastQueue
    profile: SqlProfileRepository
    personal_data: SqlPersonalDataStore
    retention: SqlRetention

    def __init__(self, engine: AsyncEngine, cipher: FieldCipher) -> None:
        self._engine = engine
        self._cipher = cipher
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        # Work that must follow a successful commit, outside the transaction (e.g. cutting
        # SQLite's write-ahead log after an erasure); best effort, see storage/privacy.py.
        self._after_commit: list[Callable[[], Awaitable[object]]] = []

    @property
    def connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._conn

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        try:
            self._tx = await self._conn.begin()
        except BaseException:
            await self._conn.close()
            raise
        conn, cipher = self._conn, self._cipher
        self.conversations = SqlConversationRepository(conn, cipher)
        self.inbox = SqlInboxRepository(conn)
        self.outbox = SqlOutboxRepository(conn, cipher)
        self.customers = SqlCustomerRepository(conn, cipher)
        self.bills = SqlBillRepository(conn)
        self.users = SqlEServiceUserRepository(conn, cipher)
        self.links = SqlChatLinkRepository(conn)
        self.consent = SqlConsentLedger(conn)
        self.audit = SqlAuditLog(conn)
        self.pay_links = SqlPayLinkRepository(conn)
        self.notification_preferences = SqlNotificationPreferenceRepository(conn)
        self.reminders = SqlReminderLedger(conn)
        self.reachability = SqlChatReachability(conn)
        self.media = SqlMediaStore(conn, cipher)
        self.callback_payloads = SqlCallbackPayloads(conn, cipher)
        self.payments = SqlPaymentRepository(conn)
        self.billing = SqlBillingDirectory(conn, cipher)
        self.events = SqlEventPublisher(conn, cipher)
        self.webhooks = SqlWebhookSubscriptions(conn, cipher)
        self.webhook_deliveries = SqlWebhookDeliveries(conn, cipher)
        self.integration_inbox = SqlIntegrationInbox(conn)
        self.import_checkpoints = SqlImportCheckpoints(conn)
        self.linking = SqlLinkingRepository(conn)
        self.staff = SqlStaffRepository(conn, cipher)
        self.campaigns = SqlCampaignRepository(conn)
        self.broadcast = SqlBroadcastQueue(conn)
        self.profile = SqlProfileRepository(conn, cipher)
        self._after_commit = []
        self.personal_data = SqlPersonalDataStore(conn, cipher, self._after_commit.append)
        self.retention = SqlRetention(conn)
        return self

    async def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("unit of work used outside `async with`")
        await self._tx.commit()
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            await hook()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
            self._conn = self._tx = None


class Database:
    """What the composition root holds: ``db.uow()`` makes a unit of work."""

    def __init__(self, engine: AsyncEngine, cipher: FieldCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    @classmethod
    def connect(cls, url: str, cipher: FieldCipher, *, pool_size: int = 10) -> Database:
        """``pool_size``: PostgreSQL connections kept open (as many more under load)."""
        return cls(create_engine(url, pool_size=pool_size), cipher)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.cipher)

    async def dispose(self) -> None:
        await self.engine.dispose()
