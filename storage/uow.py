"""The database: an engine, the field cipher, and units of work over one transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from storage.conversations import (
    SqlConversationRepository,
    SqlInboxRepository,
    SqlOutboxRepository,
)
from storage.crypto import FieldCipher
from storage.db import create_engine
from storage.repositories import (
    SqlAuditLog,
    SqlBillRepository,
    SqlChatLinkRepository,
    SqlConsentLedger,
    SqlCustomerRepository,
    SqlEServiceUserRepository,
)


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

    def __init__(self, engine: AsyncEngine, cipher: FieldCipher) -> None:
        self._engine = engine
        self._cipher = cipher
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None

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
        return self

    async def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("unit of work used outside `async with`")
        await self._tx.commit()

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
    def connect(cls, url: str, cipher: FieldCipher) -> Database:
        return cls(create_engine(url), cipher)

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.cipher)

    async def dispose(self) -> None:
        await self.engine.dispose()
