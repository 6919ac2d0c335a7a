"""Factories for storage test data: every call makes a fresh, valid object.

Phone numbers and account numbers come from a counter, so objects made in one test never
collide on a unique column; override any field by keyword.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from core.chat import TextReply
from core.domain import (
    AuditEntry,
    Bill,
    Channel,
    ChatLink,
    Customer,
    EServiceUser,
    ServiceAccount,
    ServiceKind,
    new_id,
)
from storage.uow import Database

_serial = itertools.count(1)

# A password hash in argon2's format; storage never checks it, so no need to pay for one.
FAKE_PASSWORD_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
T0 = datetime(2026, 11, 25, 3, 4, 5, 123456, tzinfo=UTC)


def customer(**overrides: Any) -> Customer:
    n = next(_serial)
    values: dict[str, Any] = {
        "id": new_id(),
        "account_no": f"{2_000_000_000 + n}",
        "name": f"นางสาวทดสอบ ลำดับที่{n} 😀",
        "address": f"{n}/7 ถนนพหลโยธิน แขวงลาดยาว เขตจตุจักร กรุงเทพมหานคร 10900",
        "phone": f"08{n:08d}",
        "email": f"customer.{n}@example.co.th",
        "national_id": f"{1_100_000_000_000 + n}",
        "language": "th",
    }
    values.update(overrides)
    return Customer(**values)


def service_account(owner: Customer, **overrides: Any) -> ServiceAccount:
    values: dict[str, Any] = {
        "id": new_id(),
        "customer_id": owner.id,
        "number": owner.phone,
        "kind": ServiceKind.MOBILE,
        "plan": "เน็ตไม่อั้น 599",
    }
    values.update(overrides)
    return ServiceAccount(**values)


def user(owner: Customer, **overrides: Any) -> EServiceUser:
    values: dict[str, Any] = {
        "id": new_id(),
        "user_id": f"user.{next(_serial)}",
        "customer_id": owner.id,
        "password_hash": FAKE_PASSWORD_HASH,
    }
    values.update(overrides)
    return EServiceUser(**values)


def bill(account: ServiceAccount, period_start: date, **overrides: Any) -> Bill:
    values: dict[str, Any] = {
        "id": new_id(),
        "customer_id": account.customer_id,
        "service_account_id": account.id,
        "reference": f"T{next(_serial):010d}",
        "period_start": period_start,
        "period_end": period_start.replace(day=28),
        "issued_on": period_start.replace(day=28),
        "due_on": period_start.replace(day=28),
        "amount_satang": 64_093,
    }
    values.update(overrides)
    return Bill(**values)


def chat_link(owner: EServiceUser, chat_id: str | None = None, **overrides: Any) -> ChatLink:
    values: dict[str, Any] = {
        "channel": Channel.TELEGRAM,
        "chat_id": chat_id or f"chat-{next(_serial)}",
        "eservice_user_id": owner.id,
        "customer_id": owner.customer_id,
        "linked_at": T0,
    }
    values.update(overrides)
    return ChatLink(**values)


def audit_entry(**overrides: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "actor": "staff:somchai",
        "action": "customer.view",
        "subject": new_id(),
        "details": {"reason": "ลูกค้าขอตรวจสอบบิล", "fields": ["address"]},
        "at": T0,
    }
    values.update(overrides)
    return AuditEntry(**values)


def reply(text: str) -> TextReply:
    return TextReply(text=text)


#: The tables with encrypted columns that ``seed_population`` puts rows in.
POPULATED_TABLES = ("customers", "service_accounts", "eservice_users", "conversations", "outbox")


async def seed_population(db: Database, count: int, *, chunk: int = 200) -> list[Customer]:
    """``count`` customers, each with a number, an e-service user, a conversation (whose
    state holds the customer's name) and a pending reply: a row in every encrypted table."""
    made: list[Customer] = []
    for start in range(0, count, chunk):
        async with db.uow() as uow:
            for _ in range(min(chunk, count - start)):
                c = customer()
                await uow.customers.add(c)
                await uow.customers.add_service_account(service_account(c))
                await uow.users.add(user(c, user_id=f"u{c.account_no}"))
                conv = await uow.conversations.load_for_update("telegram", c.account_no, "th")
                conv.data["typed"] = c.name
                await uow.conversations.save(conv)
                await uow.outbox.enqueue_replies(
                    "telegram", c.account_no, [reply(f"สวัสดี {c.name}")], T0
                )
                made.append(c)
            await uow.commit()
    return made


async def add_customers(db: Database, *customers: Customer) -> None:
    async with db.uow() as uow:
        for c in customers:
            await uow.customers.add(c)
        await uow.commit()


async def update_customer(db: Database, changed: Customer) -> None:
    async with db.uow() as uow:
        await uow.customers.update(changed)
        await uow.commit()
