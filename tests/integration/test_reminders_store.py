"""Bill reminders on both databases: which bills the ledger offers, claims under the unique
key (also from two workers at once), preferences, and the messages in the outbox."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import billing_jobs, bootstrap
from bot.settings import load_settings
from bot.worker import JOBS
from core.domain import Bill, Channel, Customer, NotificationKind
from core.i18n import preload
from core.services.billing import issue_pay_link
from core.services.reminders import ReminderSettings, queue_bill_reminders, set_notification
from storage import tables as t
from storage import tables_billing as tb
from storage.uow import Database
from tests.integration import factories as f
from tests.integration.pay_support import MovableClock

TODAY = date(2026, 11, 1)
# 10:00 in Bangkok on the day October's bills are issued.
MORNING = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def catalogs() -> None:
    preload()  # as bot/bootstrap.py does before any job runs


async def household(
    db: Database,
    *,
    linked: tuple[str, ...] | None = None,
    language: str = "th",
    **bill_changes: object,
) -> tuple[Customer, Bill]:
    owner = f.customer(language=language)
    account = f.service_account(owner)
    user = f.user(owner)
    if linked is None:
        linked = (f"tg-{owner.account_no}",)  # one chat links to one account only
    values: dict[str, object] = {
        "period_end": date(2026, 10, 31),
        "issued_on": TODAY,
        "due_on": date(2026, 12, 1),
        "amount_satang": 64_093,
    }
    values.update(bill_changes)
    bill = f.bill(account, date(2026, 10, 1), **values)
    async with db.uow() as uow:
        await uow.customers.add(owner)
        await uow.customers.add_service_account(account)
        await uow.users.add(user)
        await uow.bills.add(bill)
        for chat_id in linked:
            await uow.links.link(f.chat_link(user, chat_id, channel=Channel.TELEGRAM))
        await uow.commit()
    return owner, bill


async def outbox_count(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(t.outbox))).scalar_one())


async def test_the_ledger_offers_only_open_bills_of_linked_customers(db: Database) -> None:
    _, open_bill = await household(db)
    await household(db, paid_satang=64_093)
    await household(db, linked=())
    await household(db, issued_on=TODAY + timedelta(days=1))
    await household(db, due_on=TODAY - timedelta(days=1), issued_on=TODAY - timedelta(days=30))
    _, partly = await household(db, paid_satang=1, due_on=date(2026, 11, 20))
    async with db.uow() as uow:
        offered = await uow.reminders.open_bills(TODAY)
        after_first = await uow.reminders.open_bills(
            TODAY, after=(offered[0].due_on, offered[0].id)
        )
        one = await uow.reminders.open_bills(TODAY, limit=1)
    assert [b.id for b in offered] == [partly.id, open_bill.id]  # due first first
    assert [b.id for b in after_first] == [open_bill.id]
    assert [b.id for b in one] == [partly.id]


async def test_a_claim_is_granted_once(db: Database) -> None:
    _, bill = await household(db)
    async with db.uow() as uow:
        assert await uow.reminders.claim(bill.id, "issued", MORNING)
        assert not await uow.reminders.claim(bill.id, "issued", MORNING)
        assert await uow.reminders.claim(bill.id, "due:3", MORNING)
        assert await uow.reminders.sent_kinds([bill.id, "other"]) == {bill.id: {"issued", "due:3"}}
        await uow.commit()
    async with db.uow() as uow:
        assert not await uow.reminders.claim(bill.id, "issued", MORNING + timedelta(days=1))
        assert await uow.reminders.sent_kinds([]) == {}


async def test_preferences_default_on_and_keep_the_last_choice(db: Database) -> None:
    owner, _ = await household(db)
    async with db.uow() as uow:
        assert await uow.notification_preferences.for_customer(owner.id) == {}
        await uow.notification_preferences.set(owner.id, NotificationKind.BILL_DUE, False, MORNING)
        await uow.notification_preferences.set(owner.id, NotificationKind.BILL_DUE, True, MORNING)
        await uow.notification_preferences.set(
            owner.id, NotificationKind.BILL_ISSUED, False, MORNING
        )
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.notification_preferences.for_customer(owner.id) == {
            NotificationKind.BILL_DUE: True,
            NotificationKind.BILL_ISSUED: False,
        }


async def test_reminders_reach_every_linked_chat_once(db: Database) -> None:
    await household(db, linked=("tg-a", "tg-b"))
    settings = ReminderSettings()
    assert await queue_bill_reminders(db.uow, now=MORNING, settings=settings) == 2
    assert await queue_bill_reminders(db.uow, now=MORNING, settings=settings) == 0
    assert await outbox_count(db) == 2


async def test_two_workers_at_once_send_each_reminder_once(db: Database) -> None:
    for n in range(5):
        await household(db, linked=(f"tg-{n}",))
    settings = ReminderSettings(batch_size=2)
    sent = await asyncio.gather(
        *(queue_bill_reminders(db.uow, now=MORNING, settings=settings) for _ in range(3))
    )
    assert sum(sent) == 5
    assert await outbox_count(db) == 5
    async with db.engine.connect() as conn:
        claims = (
            await conn.execute(select(func.count()).select_from(tb.sent_reminders))
        ).scalar_one()
    assert claims == 5


async def test_a_customer_who_turned_them_off_gets_none(db: Database) -> None:
    owner, _ = await household(db)
    async with db.uow() as uow:
        await set_notification(uow, owner.id, NotificationKind.BILL_ISSUED, False, now=MORNING)
        await uow.commit()
    assert await queue_bill_reminders(db.uow, now=MORNING, settings=ReminderSettings()) == 0
    assert await outbox_count(db) == 0


async def test_the_message_is_in_the_chats_language(db: Database) -> None:
    await household(db, linked=("tg-en",), language="th")
    async with db.uow() as uow:
        conv = await uow.conversations.load_for_update("telegram", "tg-en", "th")
        conv.language = "en"
        await uow.conversations.save(conv)
        await uow.commit()
    await queue_bill_reminders(db.uow, now=MORNING, settings=ReminderSettings())
    async with db.engine.connect() as conn:
        ((uid, chat_id, payload),) = (
            await conn.execute(select(t.outbox.c.uid, t.outbox.c.chat_id, t.outbox.c.payload_enc))
        ).all()
    stored = db.cipher.decrypt(bytes(payload), table="outbox", column="payload", row_id=uid)
    assert chat_id == "tg-en"
    assert "Your new bill" in json.loads(stored)["text"]


async def test_bills_deleted_with_their_customer_take_their_ledger_rows(db: Database) -> None:
    owner, _ = await household(db)
    await queue_bill_reminders(db.uow, now=MORNING, settings=ReminderSettings())
    async with db.engine.begin() as conn:
        await conn.execute(t.customers.delete().where(t.customers.c.id == owner.id))
    async with db.engine.connect() as conn:
        left = (
            await conn.execute(select(func.count()).select_from(tb.sent_reminders))
        ).scalar_one()
    assert left == 0


async def test_the_worker_jobs_queue_reminders_and_purge_old_payment_links(
    db: Database, database_url: str, keyring_path: Path
) -> None:
    assert {"bill-reminders", "pay-link-cleanup"} <= {job.name for job in JOBS}
    _, bill = await household(db)
    settings = await asyncio.to_thread(
        load_settings, database_url=database_url, keyring_file=keyring_path, env="test"
    )
    container = await bootstrap.build(settings)
    clock = MovableClock(MORNING)
    container.clock = clock  # type: ignore[assignment]
    try:
        async with container.db.uow() as uow:
            await issue_pay_link(
                uow, container.payment_settings(), bill, language="th", now=MORNING
            )
            await uow.commit()
        assert await billing_jobs.send_bill_reminders(container) == 1
        assert await billing_jobs.send_bill_reminders(container) == 0
        assert await billing_jobs.purge_expired_pay_links(container) == 0
        clock.advance(billing_jobs.PAY_LINK_KEEP + timedelta(days=1))
        assert await billing_jobs.purge_expired_pay_links(container) == 1
    finally:
        await container.close()
