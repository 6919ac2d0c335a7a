"""Recording payments confirmed by a bank: matching by ref1/ref2, partial and over-payments,
idempotency by the bank's id, reversals, and the customer told in each chat's language."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from factories import chat_link, customer
from fakes import FakeDatabase, FrozenClock

from core.chat import TextReply
from core.domain import Bill, Conversation, PaymentStatus, ServiceAccount, ServiceKind, new_id
from core.errors import Conflict, NotFound
from core.i18n import preload
from core.integration_events import OutboundEvent
from core.services.payments import (
    PaymentConfirmation,
    PaymentOutcome,
    record_payment,
    reverse_payment,
)

PAID_AT = datetime(2026, 11, 25, 3, 4, tzinfo=UTC)  # 10:04 in Bangkok
BILL_AMOUNT = 64_093


@pytest.fixture(autouse=True, scope="module")
def _catalogs() -> None:
    preload()  # file reads: here, not on the event loop


@pytest.fixture
def owner(db: FakeDatabase) -> tuple[str, str]:
    """A customer (Thai by preference) with one number, one bill, and two linked chats:
    a Thai chat and an English one. Returns (account number, bill reference)."""
    person = customer(account_no="1000000001", language="th")
    account = ServiceAccount(new_id(), person.id, person.phone, ServiceKind.MOBILE, "เน็ต 599")
    bill = Bill(
        id=new_id(),
        customer_id=person.id,
        service_account_id=account.id,
        reference="B100000000125111",
        period_start=date(2026, 10, 1),
        period_end=date(2026, 10, 31),
        issued_on=date(2026, 11, 1),
        due_on=date(2026, 12, 1),
        amount_satang=BILL_AMOUNT,
    )
    state = db.state
    state.customers[person.id] = person
    state.service_accounts[account.id] = account
    state.bills[bill.id] = bill
    for chat_id, lang in (("chat-th", "th"), ("chat-en", "en")):
        state.links[("telegram", chat_id)] = chat_link(person, channel="telegram", chat_id=chat_id)
        state.conversations[("telegram", chat_id)] = Conversation("telegram", chat_id, lang)
    return person.account_no, bill.reference


def confirmation(
    ref: tuple[str, str], amount: int = BILL_AMOUNT, **changes: object
) -> PaymentConfirmation:
    account_no, reference = ref
    base = PaymentConfirmation(
        external_id="KBANK-0001",
        amount_satang=amount,
        paid_at=PAID_AT,
        ref1=account_no,
        ref2=reference,
        method="promptpay",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def record(db: FakeDatabase, clock: FrozenClock, c: PaymentConfirmation):  # type: ignore[no-untyped-def]
    async with db.unit_of_work() as uow:
        result = await record_payment(uow, c, now=clock.now())
        await uow.commit()
    return result


def the_bill(db: FakeDatabase) -> Bill:
    (bill,) = db.state.bills.values()
    return bill


def events(db: FakeDatabase, kind: str) -> list[OutboundEvent]:
    return [event for _, event, _ in db.state.published if event.type == kind]


def texts(db: FakeDatabase, chat_id: str) -> list[str]:
    replies = db.outbox_for("telegram", chat_id)
    return [r.text for r in replies if isinstance(r, TextReply)]


async def test_exact_payment_pays_the_bill_and_tells_each_chat_in_its_language(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    result = await record(db, clock, confirmation(owner))

    assert result.outcome is PaymentOutcome.RECORDED
    assert (result.applied_satang, result.excess_satang, result.outstanding_satang) == (
        BILL_AMOUNT,
        0,
        0,
    )
    assert the_bill(db).paid_satang == BILL_AMOUNT
    (thai,) = texts(db, "chat-th")
    (english,) = texts(db, "chat-en")
    assert "฿640.93" in thai and "B100000000125111" in thai and "ค่ะ" in thai
    assert "25 พ.ย. 2569 10:04 น." in thai
    assert english.startswith("We have received your payment of ฿640.93")
    assert "paid in full" in english
    (event,) = events(db, "payment.recorded")
    assert event.data["matched"] is True
    assert event.data["bill_status"] == "paid"
    assert event.data["amount_satang"] == BILL_AMOUNT
    assert event.data["paid_at"] == "2026-11-25T03:04:00Z"
    assert db.state.payments["KBANK-0001"].status is PaymentStatus.SUCCEEDED


async def test_partial_payment_leaves_the_rest_outstanding_and_says_when_it_is_due(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    result = await record(db, clock, confirmation(owner, 40_000))

    assert result.bill_status is not None and result.bill_status.value == "partly_paid"
    assert result.outstanding_satang == BILL_AMOUNT - 40_000
    (english,) = texts(db, "chat-en")
    assert "฿240.93 is still to pay, due 1 Dec 2026." in english
    (thai,) = texts(db, "chat-th")
    assert "฿240.93" in thai and "1 ธ.ค. 2569" in thai


async def test_over_payment_is_recorded_whole_and_the_excess_is_reported(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    result = await record(db, clock, confirmation(owner, BILL_AMOUNT + 10_000))

    assert (result.applied_satang, result.excess_satang) == (BILL_AMOUNT, 10_000)
    assert result.bill_status is not None and result.bill_status.value == "paid"
    assert the_bill(db).paid_satang == BILL_AMOUNT + 10_000
    (event,) = events(db, "payment.recorded")
    assert (event.data["excess_satang"], event.data["outstanding_satang"]) == (10_000, 0)
    (english,) = texts(db, "chat-en")
    assert "you paid ฿100.00 more than was due" in english


async def test_a_second_payment_of_a_paid_bill_is_all_excess(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    await record(db, clock, confirmation(owner))
    second = await record(db, clock, confirmation(owner, 5_000, external_id="KBANK-0002"))

    assert (second.applied_satang, second.excess_satang) == (0, 5_000)


async def test_the_same_payment_recorded_twice_has_one_effect(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    await record(db, clock, confirmation(owner, 40_000))
    again = await record(db, clock, confirmation(owner, 40_000))

    assert again.outcome is PaymentOutcome.DUPLICATE
    assert (again.applied_satang, again.outstanding_satang) == (0, BILL_AMOUNT - 40_000)
    assert the_bill(db).paid_satang == 40_000
    assert len(events(db, "payment.recorded")) == 1
    assert len(texts(db, "chat-en")) == 1


async def test_the_same_payment_id_with_another_amount_is_a_conflict(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    await record(db, clock, confirmation(owner, 40_000))

    with pytest.raises(Conflict):
        await record(db, clock, confirmation(owner, 40_001))
    assert the_bill(db).paid_satang == 40_000


async def test_a_payment_for_an_unknown_bill_is_kept_as_unmatched_and_nobody_is_told(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    result = await record(db, clock, confirmation(owner, ref2="NOSUCHBILL"))

    assert result.outcome is PaymentOutcome.UNMATCHED
    assert db.state.payments["KBANK-0001"].status is PaymentStatus.UNMATCHED
    assert db.state.payments["KBANK-0001"].bill_id is None
    assert the_bill(db).paid_satang == 0
    assert texts(db, "chat-en") == [] and texts(db, "chat-th") == []
    (event,) = events(db, "payment.recorded")
    assert event.data["matched"] is False and event.data["bill_status"] is None


async def test_a_bill_reference_of_another_account_is_not_paid(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    stranger = customer(account_no="2000000002", phone="0899999999")
    db.state.customers[stranger.id] = stranger

    result = await record(db, clock, confirmation(owner, ref1=stranger.account_no))

    assert result.outcome is PaymentOutcome.UNMATCHED
    assert the_bill(db).paid_satang == 0


async def test_a_chat_that_never_wrote_gets_the_customers_language(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    del db.state.conversations[("telegram", "chat-en")]

    await record(db, clock, confirmation(owner))

    (message,) = texts(db, "chat-en")
    assert "ค่ะ" in message  # the customer prefers Thai


async def test_a_non_positive_amount_is_refused(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    with pytest.raises(ValueError):
        await record(db, clock, confirmation(owner, 0))


async def test_a_reversal_takes_the_money_back_from_the_bill_once(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    await record(db, clock, confirmation(owner))
    clock.advance(timedelta(hours=2))

    async with db.unit_of_work() as uow:
        result = await reverse_payment(uow, "KBANK-0001", reversed_at=clock.now(), now=clock.now())
        await uow.commit()
    async with db.unit_of_work() as uow:
        again = await reverse_payment(uow, "KBANK-0001", reversed_at=clock.now(), now=clock.now())
        await uow.commit()

    assert result.outcome is PaymentOutcome.REVERSED
    assert (result.outstanding_satang, again.outcome) == (BILL_AMOUNT, PaymentOutcome.DUPLICATE)
    assert the_bill(db).paid_satang == 0
    assert db.state.payments["KBANK-0001"].status is PaymentStatus.REVERSED
    (event,) = events(db, "payment.reversed")
    assert event.data["outstanding_satang"] == BILL_AMOUNT
    english = texts(db, "chat-en")
    assert len(english) == 2 and "was reversed" in english[1] and "฿640.93" in english[1]


async def test_reversing_an_unknown_payment_is_not_found(
    db: FakeDatabase, clock: FrozenClock, owner: tuple[str, str]
) -> None:
    async with db.unit_of_work() as uow:
        with pytest.raises(NotFound):
            await reverse_payment(uow, "NOPE", reversed_at=clock.now(), now=clock.now())
