"""A customer with a row in every table that holds something about them, and raw dumps of
the databases, for the export and erasure tests (test_privacy_rights.py, the shell
transcripts). ``fill_everything`` fails, naming the table, when a feature adds a customer
table it does not fill: add a row for it there."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import make_url

from core.chat import TextReply
from core.domain import (
    AccountLinkNonce,
    Campaign,
    CampaignStatus,
    Channel,
    ConsentPurpose,
    ConsentRecord,
    ContactChange,
    ContactKind,
    CorrectionRequest,
    Customer,
    LinkToken,
    NotificationKind,
    OtpChallenge,
    PayLink,
    Payment,
    ProfileField,
    new_id,
)
from storage import tables_staff
from storage.privacy import customer_tables
from storage.uow import Database
from tests.integration import factories
from tests.integration.factories import T0
from tests.integration.support import CLI_TIMEOUT


@dataclass
class Filled:
    """One customer's data as written: the personal values to search for, by name."""

    customer: Customer
    user_id: str
    chats: list[tuple[str, str]]
    bill_references: list[str]
    values: dict[str, str] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def fill_everything(db: Database, tag: str, *, campaign_id: str | None = None) -> Filled:
    """A customer (``tag`` makes their values unique) with numbers, a user, two linked chats
    with conversations and messages, bills, a payment, a payment link, a reminder, consents,
    preferences, codes, a correction request and a campaign delivery."""
    c = factories.customer(
        name=f"นางสาวทดสอบ{tag} ลบได้",
        address=f"{tag}/9 ถนนพระราม 4 แขวงปทุมวัน เขตปทุมวัน กรุงเทพมหานคร 10330",
        email=f"person.{tag}@example.org",
    )
    user = factories.user(c, user_id=f"user-{tag}")
    account = factories.service_account(c)
    chats = [("telegram", f"{tag}7001"), ("line", "U" + tag.rjust(32, "0"))]
    bills = [
        factories.bill(account, date(2026, 9, 1)),
        factories.bill(account, date(2026, 10, 1)),
    ]
    words = f"ชื่อผิดค่ะ {tag} ที่ถูกคือ ทดสอบใหม่"
    new_email = f"changed.{tag}@example.net"
    filled = Filled(
        customer=c,
        user_id=user.user_id,
        chats=chats,
        bill_references=[b.reference for b in bills],
        values={
            "name": c.name,
            "address": c.address,
            "phone": c.phone,
            "email": c.email or "",
            "national id": c.national_id or "",
            "account no": c.account_no,
            "user id": user.user_id,
            "correction words": words,
            "new email": new_email,
            "typed in a chat": f"พิมพ์ไว้ {tag} ในแชต",
            "a message sent": f"ข้อความถึง {tag} ในแชต",
        },
    )
    async with db.uow() as uow:
        await uow.customers.add(c)
        await uow.customers.add_service_account(account)
        await uow.users.add(user)
        for channel, chat_id in chats:
            await uow.links.link(factories.chat_link(user, chat_id, channel=Channel(channel)))
            conv = await uow.conversations.load_for_update(channel, chat_id, "th")
            conv.data["typed"] = filled.values["typed in a chat"]
            await uow.conversations.save(conv)
            await uow.outbox.enqueue_replies(
                channel, chat_id, [TextReply(filled.values["a message sent"])], T0
            )
        for bill in bills:
            await uow.bills.add(bill)
        await uow.payments.add(
            Payment(
                id=new_id(),
                external_id=f"PAY-{tag}",
                bill_id=bills[0].id,
                amount_satang=1000,
                paid_at=T0,
                method="promptpay",
                ref1=c.account_no,
                ref2=bills[0].reference,
            )
        )
        await uow.pay_links.add(
            PayLink(
                _digest(f"pay{tag}"),
                bills[1].id,
                bills[1].reference,
                "th",
                T0,
                T0 + timedelta(hours=1),
            )
        )
        await uow.reminders.claim(bills[1].id, "issued", T0)
        await uow.consent.record(
            ConsentRecord(c.id, ConsentPurpose.MARKETING, True, "2026-11-1", "telegram", T0)
        )
        await uow.notification_preferences.set(c.id, NotificationKind.BILL_DUE, False, T0)
        await uow.linking.add_link_token(
            LinkToken(
                _digest(f"tok{tag}"),
                "telegram",
                chats[0][1],
                "th",
                "2026-11-1",
                "register",
                T0,
                T0 + timedelta(minutes=10),
                customer_id=c.id,
            )
        )
        await uow.linking.add_otp(
            OtpChallenge(
                new_id(),
                "telegram",
                chats[0][1],
                _digest(f"otp{tag}"),
                c.id,
                T0,
                T0 + timedelta(minutes=5),
            )
        )
        await uow.linking.add_nonce(
            AccountLinkNonce(
                _digest(f"nonce{tag}"),
                "line",
                chats[1][1],
                user.id,
                c.id,
                "2026-11-1",
                T0,
                T0 + timedelta(minutes=10),
            )
        )
        await uow.profile.add_contact_change(
            ContactChange(
                new_id(),
                c.id,
                ContactKind.EMAIL,
                new_email,
                "telegram",
                chats[0][1],
                _digest(f"code{tag}"),
                T0,
                T0 + timedelta(minutes=10),
            )
        )
        await uow.profile.add_correction(
            CorrectionRequest(new_id(), c.id, ProfileField.NAME, words, "telegram", T0)
        )
        if campaign_id is not None:
            await uow.connection.execute(
                insert(tables_staff.campaign_deliveries).values(
                    campaign_id=campaign_id,
                    customer_id=c.id,
                    channel=chats[0][0],
                    chat_id=chats[0][1],
                    preview=False,
                    language="th",
                    status="sent",
                    attempt=1,
                    created_at=T0,
                )
            )
        await uow.commit()
    filled.tables = {table.name for table, _ in customer_tables()}
    return filled


async def add_campaign(db: Database) -> str:
    campaign = Campaign(
        id=new_id(),
        title="ทดสอบ",
        text_th="โปรทดสอบ",
        text_en="Test promotion",
        status=CampaignStatus.DONE,
        created_by="staff:tester",
        created_at=T0,
    )
    async with db.uow() as uow:
        await uow.campaigns.add(campaign)
        await uow.commit()
    return campaign.id


def sqlite_bytes(database: Path) -> bytes:
    files = [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))]
    return b"".join(path.read_bytes() for path in files if path.exists())


async def pg_dump(database_url: str) -> bytes:
    url = make_url(database_url)
    proc = await asyncio.create_subprocess_exec(
        "pg_dump",
        f"--schema={url.query['search_path']}",
        f"--host={url.host}",
        f"--port={url.port or 5432}",
        f"--username={url.username}",
        "--no-password",
        str(url.database),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode == 0, err.decode()
    return out


async def raw_dump(db: Database, database_url: str) -> bytes:
    """Every byte of the SQLite files (WAL included), or a ``pg_dump`` of the schema."""
    if db.engine.dialect.name == "sqlite":
        database = make_url(database_url).database
        assert database is not None
        return await asyncio.to_thread(sqlite_bytes, Path(database))
    return await pg_dump(database_url)


def search_forms(values: dict[str, str]) -> dict[str, str]:
    """The values and the other forms a phone number takes."""
    forms = dict(values)
    phone = values.get("phone")
    if phone:
        forms["dashed phone"] = f"{phone[:3]}-{phone[3:6]}-{phone[6:]}"
        forms["+66 phone"] = "+66" + phone[1:]
    return forms
