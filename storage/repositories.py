"""Repositories for customers, bills, e-service users, chat links, consent and audit.

Each hands ``core`` plain domain objects: personal values are encrypted on the way in
and decrypted on the way out with the :class:`~storage.crypto.FieldCipher`; lookups by
a personal value go through its blind index.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

from sqlalchemy import func, insert, select, union, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import (
    AuditEntry,
    Bill,
    Channel,
    ChatLink,
    ConsentPurpose,
    ConsentRecord,
    Customer,
    EServiceUser,
    ServiceAccount,
    ServiceKind,
)
from storage import tables as t
from storage.crypto import FieldCipher, normalise_phone, normalise_user_id
from storage.locks import advisory_xact_lock


class _Encrypted:
    """Shared by repositories that encrypt: binds table name and row id into the AAD."""

    table: str

    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    def _enc(self, value: str, column: str, row_id: str, table: str | None = None) -> bytes:
        return self._cipher.encrypt(value, table=table or self.table, column=column, row_id=row_id)

    def _dec(self, token: bytes, column: str, row_id: str, table: str | None = None) -> str:
        return self._cipher.decrypt(token, table=table or self.table, column=column, row_id=row_id)

    def _enc_opt(self, value: str | None, column: str, row_id: str) -> bytes | None:
        return None if value is None else self._enc(value, column, row_id)

    def _dec_opt(self, token: bytes | None, column: str, row_id: str) -> str | None:
        return None if token is None else self._dec(token, column, row_id)


def _now() -> datetime:
    return datetime.now(UTC)


class SqlCustomerRepository(_Encrypted):
    table = "customers"

    def _values(self, c: Customer) -> dict[str, object]:
        email = c.email.strip().casefold() if c.email else None
        return {
            "account_no": c.account_no,
            "name_enc": self._enc(c.name, "name", c.id),
            "address_enc": self._enc(c.address, "address", c.id),
            "phone_enc": self._enc(c.phone, "phone", c.id),
            "phone_bidx": self._cipher.blind_index("phone", normalise_phone(c.phone)),
            "email_enc": self._enc_opt(c.email, "email", c.id),
            "email_bidx": None if email is None else self._cipher.blind_index("email", email),
            "national_id_enc": self._enc_opt(c.national_id, "national_id", c.id),
            "national_id_bidx": None
            if c.national_id is None
            else self._cipher.blind_index("national_id", c.national_id.replace("-", "")),
            "language": c.language,
        }

    def _customer(self, row: RowMapping) -> Customer:
        cid = row["id"]
        return Customer(
            id=cid,
            account_no=row["account_no"],
            name=self._dec(row["name_enc"], "name", cid),
            address=self._dec(row["address_enc"], "address", cid),
            phone=self._dec(row["phone_enc"], "phone", cid),
            email=self._dec_opt(row["email_enc"], "email", cid),
            national_id=self._dec_opt(row["national_id_enc"], "national_id", cid),
            language=row["language"],
            created_at=row["created_at"],
        )

    async def add(self, customer: Customer) -> None:
        now = customer.created_at or _now()
        await self._conn.execute(
            insert(t.customers).values(
                id=customer.id, created_at=now, updated_at=now, **self._values(customer)
            )
        )

    async def update(self, customer: Customer) -> None:
        await self._conn.execute(
            update(t.customers)
            .where(t.customers.c.id == customer.id)
            .values(updated_at=_now(), **self._values(customer))
        )

    async def _one(self, where: object) -> Customer | None:
        row = (await self._conn.execute(select(t.customers).where(where))).mappings().first()  # type: ignore[arg-type]
        return None if row is None else self._customer(row)

    async def get(self, customer_id: str) -> Customer | None:
        return await self._one(t.customers.c.id == customer_id)

    async def get_by_account_no(self, account_no: str) -> Customer | None:
        return await self._one(t.customers.c.account_no == account_no)

    async def find_by_phone(self, phone: str) -> Customer | None:
        try:
            bidx = self._cipher.blind_index("phone", normalise_phone(phone))
        except ValueError:
            return None
        return await self._one(t.customers.c.phone_bidx == bidx)

    async def add_service_account(self, account: ServiceAccount) -> None:
        await self._conn.execute(
            insert(t.service_accounts).values(
                id=account.id,
                customer_id=account.customer_id,
                number_enc=self._enc(account.number, "number", account.id, "service_accounts"),
                number_bidx=self._cipher.blind_index("phone", normalise_phone(account.number)),
                kind=account.kind.value,
                plan=account.plan,
                created_at=_now(),
            )
        )

    def _service_account(self, row: RowMapping) -> ServiceAccount:
        return ServiceAccount(
            id=row["id"],
            customer_id=row["customer_id"],
            number=self._dec(row["number_enc"], "number", row["id"], "service_accounts"),
            kind=ServiceKind(row["kind"]),
            plan=row["plan"],
        )

    async def service_accounts(self, customer_id: str) -> list[ServiceAccount]:
        rows = await self._conn.execute(
            select(t.service_accounts)
            .where(t.service_accounts.c.customer_id == customer_id)
            .order_by(t.service_accounts.c.created_at, t.service_accounts.c.id)
        )
        return [self._service_account(r) for r in rows.mappings()]

    async def find_service_account_by_number(self, number: str) -> ServiceAccount | None:
        try:
            bidx = self._cipher.blind_index("phone", normalise_phone(number))
        except ValueError:
            return None
        row = (
            (
                await self._conn.execute(
                    select(t.service_accounts).where(t.service_accounts.c.number_bidx == bidx)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else self._service_account(row)

    async def customer_ids_for_number(self, number: str, *, limit: int = 2) -> list[str]:
        try:
            bidx = self._cipher.blind_index("phone", normalise_phone(number))
        except ValueError:
            return []
        contacts = select(t.customers.c.id.label("customer_id")).where(
            t.customers.c.phone_bidx == bidx
        )
        mobiles = select(t.service_accounts.c.customer_id).where(
            t.service_accounts.c.number_bidx == bidx,
            t.service_accounts.c.kind == ServiceKind.MOBILE.value,
        )
        found = union(contacts, mobiles).subquery()
        query = select(found.c.customer_id).order_by(found.c.customer_id).limit(limit)
        return list((await self._conn.execute(query)).scalars())

    async def count(self) -> int:
        return int(
            (await self._conn.execute(select(func.count()).select_from(t.customers))).scalar_one()
        )


def _bill(row: RowMapping) -> Bill:
    return Bill(
        id=row["id"],
        customer_id=row["customer_id"],
        service_account_id=row["service_account_id"],
        reference=row["reference"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        issued_on=row["issued_on"],
        due_on=row["due_on"],
        amount_satang=row["amount_satang"],
        paid_satang=row["paid_satang"],
    )


class SqlBillRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, bill: Bill) -> None:
        now = _now()
        await self._conn.execute(
            insert(t.bills).values(
                id=bill.id,
                customer_id=bill.customer_id,
                service_account_id=bill.service_account_id,
                reference=bill.reference,
                period_start=bill.period_start,
                period_end=bill.period_end,
                issued_on=bill.issued_on,
                due_on=bill.due_on,
                amount_satang=bill.amount_satang,
                paid_satang=bill.paid_satang,
                created_at=now,
                updated_at=now,
            )
        )

    async def get_by_reference(self, reference: str) -> Bill | None:
        row = (
            (await self._conn.execute(select(t.bills).where(t.bills.c.reference == reference)))
            .mappings()
            .first()
        )
        return None if row is None else _bill(row)

    async def for_customer(
        self, customer_id: str, *, limit: int = 12, since: date | None = None
    ) -> list[Bill]:
        query = select(t.bills).where(t.bills.c.customer_id == customer_id)
        if since is not None:
            query = query.where(t.bills.c.period_start >= since)
        query = query.order_by(t.bills.c.period_start.desc(), t.bills.c.id).limit(limit)
        return [_bill(r) for r in (await self._conn.execute(query)).mappings()]


class SqlEServiceUserRepository(_Encrypted):
    table = "eservice_users"

    def _user(self, row: RowMapping) -> EServiceUser:
        return EServiceUser(
            id=row["id"],
            user_id=self._dec(row["user_id_enc"], "user_id", row["id"]),
            customer_id=row["customer_id"],
            password_hash=row["password_hash"],
            created_at=row["created_at"],
        )

    async def add(self, user: EServiceUser) -> None:
        await self._conn.execute(
            insert(t.eservice_users).values(
                id=user.id,
                customer_id=user.customer_id,
                user_id_enc=self._enc(user.user_id, "user_id", user.id),
                user_id_bidx=self._cipher.blind_index("user_id", normalise_user_id(user.user_id)),
                password_hash=user.password_hash,
                created_at=user.created_at or _now(),
            )
        )

    async def get_by_user_id(self, user_id: str) -> EServiceUser | None:
        bidx = self._cipher.blind_index("user_id", normalise_user_id(user_id))
        row = (
            (
                await self._conn.execute(
                    select(t.eservice_users).where(t.eservice_users.c.user_id_bidx == bidx)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else self._user(row)

    async def for_customer(self, customer_id: str) -> list[EServiceUser]:
        rows = await self._conn.execute(
            select(t.eservice_users).where(t.eservice_users.c.customer_id == customer_id)
        )
        return [self._user(r) for r in rows.mappings()]

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        bidx = self._cipher.blind_index("user_id", normalise_user_id(user_id))
        await self._conn.execute(
            update(t.eservice_users)
            .where(t.eservice_users.c.user_id_bidx == bidx)
            .values(password_hash=password_hash)
        )


def _link(row: RowMapping) -> ChatLink:
    return ChatLink(
        channel=Channel(row["channel"]),
        chat_id=row["chat_id"],
        eservice_user_id=row["eservice_user_id"],
        customer_id=row["customer_id"],
        linked_at=row["linked_at"],
    )


class SqlChatLinkRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, channel: str, chat_id: str) -> ChatLink | None:
        row = (
            (
                await self._conn.execute(
                    select(t.chat_links).where(
                        t.chat_links.c.channel == channel, t.chat_links.c.chat_id == chat_id
                    )
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else _link(row)

    async def link(self, link: ChatLink) -> None:
        await self.unlink(link.channel, link.chat_id)
        await self._conn.execute(
            insert(t.chat_links).values(
                channel=link.channel.value,
                chat_id=link.chat_id,
                eservice_user_id=link.eservice_user_id,
                customer_id=link.customer_id,
                linked_at=link.linked_at,
            )
        )

    async def unlink(self, channel: str, chat_id: str) -> bool:
        result = await self._conn.execute(
            t.chat_links.delete().where(
                t.chat_links.c.channel == channel, t.chat_links.c.chat_id == chat_id
            )
        )
        return bool(result.rowcount)

    async def for_customer(self, customer_id: str) -> list[ChatLink]:
        rows = await self._conn.execute(
            select(t.chat_links)
            .where(t.chat_links.c.customer_id == customer_id)
            .order_by(t.chat_links.c.id)
        )
        return [_link(r) for r in rows.mappings()]


class SqlConsentLedger:
    """Append-only: there is no update or delete here."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record(self, record: ConsentRecord) -> None:
        await self._conn.execute(
            insert(t.consent_ledger).values(
                customer_id=record.customer_id,
                purpose=record.purpose.value,
                granted=record.granted,
                notice_version=record.notice_version,
                channel=record.channel,
                recorded_at=record.recorded_at,
            )
        )

    async def history(self, customer_id: str) -> list[ConsentRecord]:
        rows = await self._conn.execute(
            select(t.consent_ledger)
            .where(t.consent_ledger.c.customer_id == customer_id)
            .order_by(t.consent_ledger.c.id)
        )
        return [
            ConsentRecord(
                customer_id=r["customer_id"],
                purpose=ConsentPurpose(r["purpose"]),
                granted=r["granted"],
                notice_version=r["notice_version"],
                channel=r["channel"],
                recorded_at=r["recorded_at"],
            )
            for r in rows.mappings()
        ]


AUDIT_GENESIS = "0" * 64
_AUDIT_LOCK = "audit_log"


def audit_hash(prev_hash: str, entry: AuditEntry) -> str:
    """SHA-256 over the previous row's hash and this entry's canonical JSON."""
    body = json.dumps(
        {
            "at": entry.at.astimezone(UTC).isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "subject": entry.subject,
            "details": entry.details,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


class SqlAuditLog:
    """Each row is chained to the previous one by hash; appends are serialised."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def append(self, entry: AuditEntry) -> None:
        await advisory_xact_lock(self._conn, _AUDIT_LOCK)
        prev = (
            await self._conn.execute(
                select(t.audit_log.c.hash).order_by(t.audit_log.c.id.desc()).limit(1)
            )
        ).scalar_one_or_none() or AUDIT_GENESIS
        await self._conn.execute(
            insert(t.audit_log).values(
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                details=json.dumps(entry.details, sort_keys=True, ensure_ascii=False),
                prev_hash=prev,
                hash=audit_hash(prev, entry),
            )
        )
