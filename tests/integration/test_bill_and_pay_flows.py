"""/bill and /pay through the conversation service on both databases: the repositories
the flows read (customers, numbers, bills, links) and the payment link they write."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from core.chat import ButtonPress, ImageReply, Incoming, TextMessage, TextReply
from core.domain import Bill, Customer
from core.flows.context import ConversationSettings
from core.i18n import preload, translator
from core.services.billing import PaymentSettings, hash_pay_token
from core.services.conversation import ConversationService
from storage import tables_billing as tb
from storage.uow import Database
from tests.integration import factories as f
from tests.unit.emvco_parser import parse_payload

NOW = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
PAYMENTS = PaymentSettings(public_url="https://selfcare.example.co.th", biller_id="010555999999901")


class Clock:
    def now(self) -> datetime:
        return NOW


@pytest.fixture
def service(db: Database) -> ConversationService:
    preload()
    return ConversationService(
        db.uow, Clock(), ConversationSettings(operator_name="ExampleTel", payments=PAYMENTS)
    )


async def linked_household(
    db: Database, chat_id: str, *, months: int = 3
) -> tuple[Customer, list[Bill]]:
    owner = f.customer()
    account = f.service_account(owner)
    user = f.user(owner)
    bills = []
    for back in range(months, 0, -1):
        start = date(2026, 11 - back, 1)
        bills.append(
            f.bill(
                account,
                start,
                issued_on=date(2026, 12 - back, 1),
                due_on=date(2026, 12 - back, 28),
                amount_satang=50_000 + back,
                paid_satang=0 if back == 1 else 50_000 + back,
            )
        )
    async with db.uow() as uow:
        await uow.customers.add(owner)
        await uow.customers.add_service_account(account)
        await uow.users.add(user)
        for bill in bills:
            await uow.bills.add(bill)
        await uow.links.link(f.chat_link(user, chat_id))
        await uow.commit()
    return owner, bills


async def say(service: ConversationService, chat_id: str, text: str) -> list[object]:
    handled = await service.handle(
        Incoming(
            channel="telegram",
            chat_id=chat_id,
            event_id=f"evt-{chat_id}-{text}-{NOW.timestamp()}-{id(text)}",
            event=TextMessage(text),
            received_at=NOW,
        )
    )
    assert not handled.duplicate
    return list(handled.replies)


async def test_bill_shows_the_unpaid_bill_with_a_buddhist_era_due_date(
    db: Database, service: ConversationService
) -> None:
    _, bills = await linked_household(db, "chat-b")
    replies = await say(service, "chat-b", "บิล")
    text = "\n".join(r.text for r in replies if isinstance(r, TextReply))
    newest = bills[-1]
    assert translator("th").money(newest.amount_satang) in text
    assert "28 ต.ค. 2569" in text and "ยังไม่ได้ชำระ" in text


async def test_pay_sends_a_scannable_qr_and_stores_only_the_links_hash(
    db: Database, service: ConversationService
) -> None:
    owner, bills = await linked_household(db, "chat-p")
    replies = await say(service, "chat-p", "จ่าย")
    image = next(r for r in replies if isinstance(r, ImageReply))
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.png)))
    fields = parse_payload(found.text)
    assert fields["30"]["02"] == owner.account_no  # type: ignore[index]
    assert fields["30"]["03"] == bills[-1].reference  # type: ignore[index]
    assert fields["54"] == "500.01"

    text = "\n".join(r.text for r in replies if isinstance(r, TextReply))
    token = re.search(r"/pay/([A-Za-z0-9_-]{43})", text)
    assert token is not None
    async with db.engine.connect() as conn:
        stored = (await conn.execute(select(tb.pay_links))).mappings().one()
    assert bytes(stored["token_hash"]) == hash_pay_token(token.group(1))
    assert stored["bill_id"] == bills[-1].id and stored["language"] == "th"


async def test_a_forged_button_cannot_pay_someone_elses_bill(
    db: Database, service: ConversationService
) -> None:
    await linked_household(db, "chat-mine")
    _, theirs = await linked_household(db, "chat-theirs")
    forged = await service.handle(
        Incoming(
            channel="telegram",
            chat_id="chat-mine",
            event_id="evt-forged",
            event=ButtonPress(f"pay:{theirs[-1].reference}"),
            received_at=NOW,
        )
    )
    assert not any(isinstance(r, ImageReply) for r in forged.replies)
    assert theirs[-1].reference not in str(forged.replies)
    async with db.engine.connect() as conn:
        count = (await conn.execute(select(func.count()).select_from(tb.pay_links))).scalar_one()
    assert count == 0
