"""How long ``/mydata`` (the export) and ``/forget`` (the erasure) take for one customer among
many, on SQLite and PostgreSQL.

Run: ``python bench/privacy.py [--customers 20000] [--repeat 5] [--pg-url URL]``.
Seeds customers with a number, an e-service user, a linked chat (conversation and three
messages), 12 bills and a payment for each bill, then times the export and the erasure of
``--repeat`` customers (each its own transaction, committed, as the flows do). Prints
Markdown. The erasure finds a customer's rows through the schema's foreign keys; tables
without an index on those keys are scanned, which is what this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from core.chat import TextReply  # noqa: E402
from core.domain import (  # noqa: E402
    Bill,
    Channel,
    ChatLink,
    Customer,
    EServiceUser,
    ServiceAccount,
    ServiceKind,
    new_id,
)
from core.services.privacy_rights import erase_customer, export_customer  # noqa: E402
from storage import migrate  # noqa: E402
from storage import tables as t  # noqa: E402
from storage.crypto import FieldCipher, Keyring  # noqa: E402
from storage.uow import Database  # noqa: E402

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
BATCH = 1000


def _customer(n: int) -> Customer:
    return Customer(
        id=new_id(),
        account_no=f"{7_000_000_000 + n}",
        name=f"นางสาวทดสอบ ลำดับ{n}",
        address=f"{n}/1 ซอยสุขุมวิท 63 แขวงคลองตันเหนือ เขตวัฒนา กรุงเทพมหานคร 10110",
        phone=f"06{n:08d}",
        email=f"bench.{n}@example.co.th",
        national_id=f"{3_100_000_000_000 + n}",
        created_at=NOW,
    )


async def seed(db: Database, count: int) -> list[Customer]:
    made: list[Customer] = []
    for start in range(0, count, BATCH):
        customers = [_customer(n) for n in range(start, min(start + BATCH, count))]
        accounts = [
            ServiceAccount(new_id(), c.id, c.phone, ServiceKind.MOBILE, "เน็ตไม่อั้น 599")
            for c in customers
        ]
        bills = [
            Bill(
                id=new_id(),
                customer_id=a.customer_id,
                service_account_id=a.id,
                reference=f"B{n:06d}{month:02d}{start // BATCH:04d}"[:20],
                period_start=date(2025, month, 1),
                period_end=date(2025, month, 28),
                issued_on=date(2025, month, 28),
                due_on=date(2025, month, 28),
                amount_satang=59_900,
                paid_satang=59_900,
            )
            for n, a in enumerate(accounts)
            for month in range(1, 13)
        ]
        async with db.uow() as uow:
            await uow.billing.save_customers(customers, [])
            await uow.billing.save_service_accounts(accounts, [])
            await uow.billing.save_bills(bills, [])
            await uow.connection.execute(
                insert(t.payments),
                [
                    {
                        "id": new_id(),
                        "external_id": f"P{b.id}",
                        "bill_id": b.id,
                        "amount_satang": b.amount_satang,
                        "method": "promptpay",
                        "ref1": None,
                        "ref2": b.reference,
                        "status": "succeeded",
                        "paid_at": NOW,
                        "created_at": NOW,
                    }
                    for b in bills
                ],
            )
            for c in customers:
                user = EServiceUser(new_id(), f"bench{c.account_no}", c.id, "x", NOW)
                await uow.users.add(user)
                chat = f"b{c.account_no}"
                await uow.links.link(ChatLink(Channel.TELEGRAM, chat, user.id, c.id, NOW))
                conv = await uow.conversations.load_for_update("telegram", chat, "th")
                await uow.conversations.save(conv)
                await uow.outbox.enqueue_replies("telegram", chat, [TextReply("สวัสดีค่ะ")] * 3, NOW)
            await uow.commit()
        made.extend(customers)
    return made


async def measure(url: str, count: int, repeat: int) -> tuple[float, float, float, int]:
    await migrate.upgrade(url)
    db = Database.connect(url, FieldCipher(Keyring.generate()))
    try:
        started = time.perf_counter()
        customers = await seed(db, count)
        seeded = time.perf_counter() - started
        exports, erasures, size = [], [], 0
        for c in customers[:: max(count // repeat, 1)][:repeat]:
            started = time.perf_counter()
            async with db.uow() as uow:
                export = await export_customer(uow, c, channel="telegram", now=NOW)
                await uow.commit()
            exports.append(time.perf_counter() - started)
            size = len(export.content)
            started = time.perf_counter()
            async with db.uow() as uow:
                await erase_customer(
                    uow, c, channel="telegram", chat_id=f"b{c.account_no}", now=NOW
                )
                await uow.commit()
            erasures.append(time.perf_counter() - started)
    finally:
        await db.dispose()
    return seeded, statistics.median(exports), statistics.median(erasures), size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg-url", default=os.environ.get("SELFCARE_TEST_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        rows.append(("SQLite", await measure(sqlite_url, args.customers, args.repeat)))
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_async_engine(args.pg_url)
    async with admin.begin() as conn:
        await conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        pg = f"{args.pg_url}?search_path={schema}"
        rows.append(("PostgreSQL", await measure(pg, args.customers, args.repeat)))
    finally:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        await admin.dispose()
    print(
        f"{args.customers} customers (12 bills and 12 payments each), median of "
        f"{args.repeat}; Python {platform.python_version()}, {os.cpu_count()} CPUs\n"
    )
    print("| engine | seed | /mydata export | /forget erasure | export size |")
    print("| --- | --- | --- | --- | --- |")
    for engine, (seeded, export, erase, size) in rows:
        print(
            f"| {engine} | {seeded:.1f} s | {export * 1000:.0f} ms | {erase * 1000:.0f} ms "
            f"| {size / 1024:.1f} KiB |"
        )


if __name__ == "__main__":
    asyncio.run(main())
