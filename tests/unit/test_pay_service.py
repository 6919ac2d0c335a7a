"""core.services.billing for payments: the amount a QR code asks for (edge amounts and
refused ones), the payload field by field, payment settings, and payment links."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from billing_data import BILLER_ID, PAYMENTS, PUBLIC_URL, add_household
from emvco_parser import crc_is_valid, parse_payload
from fakes import FakeDatabase

from core.domain import Bill, BillStatus
from core.errors import InvalidInput
from core.promptpay import PromptPayError
from core.services.billing import (
    NothingToPay,
    PayLinkGone,
    PaymentSettings,
    PaymentsNotConfigured,
    PayPage,
    amount_to_pay,
    hash_pay_token,
    issue_pay_link,
    open_pay_link,
    qr_payload,
)

NOW = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
ACCOUNT_NO = "1000000001"


def a_bill(db: FakeDatabase, **changes: Any) -> Bill:
    bill = add_household(db).newest()
    return replace(bill, **changes)


# --- amounts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "paid", "in_payload"),
    [
        (1, 0, "0.01"),
        (100, 0, "1.00"),
        (9_999_999, 0, "99999.99"),
        (64_093, 0, "640.93"),
        (64_093, 64_092, "0.01"),  # one satang left of a partly paid bill
        (10_000, 9_900, "1.00"),
    ],
)
def test_the_qr_asks_for_exactly_what_is_left(
    db: FakeDatabase, amount: int, paid: int, in_payload: str
) -> None:
    bill = a_bill(db, amount_satang=amount, paid_satang=paid)
    assert amount_to_pay(bill) == amount - paid
    payload = qr_payload(PAYMENTS, account_no=ACCOUNT_NO, bill=bill)
    fields = parse_payload(payload)
    assert fields["54"] == in_payload
    assert crc_is_valid(payload)


@pytest.mark.parametrize(("amount", "paid"), [(0, 0), (500, 500), (500, 600)])
def test_nothing_is_left_to_pay_so_no_qr_is_made(db: FakeDatabase, amount: int, paid: int) -> None:
    bill = a_bill(db, amount_satang=amount, paid_satang=paid)
    with pytest.raises(NothingToPay):
        qr_payload(PAYMENTS, account_no=ACCOUNT_NO, bill=bill)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount_satang": -1}, "amount_satang"),
        ({"amount_satang": -64_093}, "amount_satang"),
        ({"paid_satang": -1}, "paid_satang"),
        ({"amount_satang": 640.935}, "amount_satang"),  # more than two decimals of baht
        ({"amount_satang": 64_093.5}, "amount_satang"),  # half a satang
        ({"amount_satang": 100.0}, "amount_satang"),  # a float is never money here
        ({"amount_satang": True}, "amount_satang"),
        ({"amount_satang": "64093"}, "amount_satang"),
        ({"amount_satang": 10_000_000_000}, "amount_satang"),  # more than a QR carries
    ],
)
def test_amounts_that_are_not_whole_positive_satang_are_refused(
    db: FakeDatabase, changes: dict[str, Any], field: str
) -> None:
    bill = a_bill(db, **changes)
    with pytest.raises(InvalidInput) as refused:
        qr_payload(PAYMENTS, account_no=ACCOUNT_NO, bill=bill)
    assert refused.value.field == field


def test_the_bill_payment_reads_back_field_by_field(db: FakeDatabase) -> None:
    bill = a_bill(db, amount_satang=64_093, paid_satang=0)
    fields = parse_payload(qr_payload(PAYMENTS, account_no=ACCOUNT_NO, bill=bill))
    assert fields == {
        "00": "01",
        "01": "12",
        "30": {
            "00": "A000000677010112",
            "01": BILLER_ID,
            "02": ACCOUNT_NO,
            "03": bill.reference,
        },
        "53": "764",
        "54": "640.93",
        "58": "TH",
        "63": fields["63"],
    }


@pytest.mark.parametrize(
    ("target", "subtag", "value"),
    [("0812345678", "01", "0066812345678"), ("0105555555555", "02", "0105555555555")],
)
def test_without_a_biller_id_the_qr_is_a_promptpay_transfer(
    db: FakeDatabase, target: str, subtag: str, value: str
) -> None:
    settings = PaymentSettings(public_url=PUBLIC_URL, promptpay_id=target)
    bill = a_bill(db, amount_satang=100, paid_satang=0)
    fields = parse_payload(qr_payload(settings, account_no=ACCOUNT_NO, bill=bill))
    assert fields["29"] == {"00": "A000000677010111", subtag: value}
    assert fields["54"] == "1.00"


def test_the_biller_id_wins_when_both_are_set(db: FakeDatabase) -> None:
    settings = PaymentSettings(
        public_url=PUBLIC_URL, biller_id=BILLER_ID, promptpay_id="0812345678"
    )
    fields = parse_payload(qr_payload(settings, account_no=ACCOUNT_NO, bill=a_bill(db)))
    assert "30" in fields and "29" not in fields


def test_with_no_promptpay_id_at_all_no_qr_can_be_made(db: FakeDatabase) -> None:
    with pytest.raises(PaymentsNotConfigured):
        qr_payload(PaymentSettings(public_url=PUBLIC_URL), account_no=ACCOUNT_NO, bill=a_bill(db))


def test_a_reference_a_bank_would_refuse_is_not_put_in_a_qr(db: FakeDatabase) -> None:
    with pytest.raises(PromptPayError):
        qr_payload(PAYMENTS, account_no=ACCOUNT_NO, bill=a_bill(db, reference="ref-with-dash"))


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"biller_id": "12345"}, "biller_id"),
        ({"biller_id": "๐๑๐๕๕๕๙๙๙๙๙๙๙๐๑"}, "biller_id"),  # Thai digits
        ({"biller_id": "01055599999990A"}, "biller_id"),
        ({"promptpay_id": "081234567"}, "promptpay_id"),
        ({"promptpay_id": "+66812345678"}, "promptpay_id"),
        ({"pay_link_ttl": timedelta(0)}, "pay_link_ttl"),
        ({"public_url": "javascript:alert(1)"}, "public_url"),
    ],
)
def test_payment_settings_refuse_malformed_values(changes: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"public_url": PUBLIC_URL, "biller_id": BILLER_ID} | changes
    with pytest.raises(InvalidInput) as refused:
        PaymentSettings(**values)
    assert refused.value.field == field


# --- payment links ---------------------------------------------------------------------------


async def test_a_payment_link_opens_its_bill_until_it_expires(db: FakeDatabase) -> None:
    home = add_household(db, language="en")
    bill = home.newest()
    async with db.unit_of_work() as uow:
        url = await issue_pay_link(uow, PAYMENTS, bill, language="en", now=NOW)
        await uow.commit()
    assert url.startswith(f"{PUBLIC_URL}/pay/")
    token = url.rsplit("/", 1)[1]
    assert len(token) == 43  # 256 bits
    assert hash_pay_token(token) in db.state.pay_links

    async with db.unit_of_work() as uow:
        page = await open_pay_link(uow, PAYMENTS, token, now=NOW + timedelta(minutes=59))
        gone = await open_pay_link(uow, PAYMENTS, token, now=NOW + PAYMENTS.pay_link_ttl)
    assert isinstance(page, PayPage)
    assert page.bill == bill and page.account_no == home.customer.account_no
    assert page.status is BillStatus.UNPAID and page.language == "en"
    assert page.payload is not None and parse_payload(page.payload)["54"]
    assert gone == PayLinkGone("en")


@pytest.mark.parametrize(
    "token",
    ["", "short", "A" * 43, "A" * 44, "x' OR '1'='1", "บิล😀" * 10, "../../etc/passwd", "a" * 5000],
)
async def test_unknown_or_malformed_tokens_open_nothing(db: FakeDatabase, token: str) -> None:
    async with db.unit_of_work() as uow:
        assert await open_pay_link(uow, PAYMENTS, token, now=NOW) == PayLinkGone(None)


async def test_a_paid_bills_link_shows_paid_and_no_payload(db: FakeDatabase) -> None:
    home = add_household(db)
    bill = home.newest()
    async with db.unit_of_work() as uow:
        token = (await issue_pay_link(uow, PAYMENTS, bill, language="th", now=NOW)).rsplit("/")[-1]
        await uow.commit()
    db.state.bills[bill.id] = replace(bill, paid_satang=bill.amount_satang)
    async with db.unit_of_work() as uow:
        page = await open_pay_link(uow, PAYMENTS, token, now=NOW)
    assert isinstance(page, PayPage)
    assert page.status is BillStatus.PAID and page.payload is None


async def test_a_link_language_is_normalised(db: FakeDatabase) -> None:
    bill = add_household(db).newest()
    async with db.unit_of_work() as uow:
        await issue_pay_link(uow, PAYMENTS, bill, language="en-GB", now=NOW)
        await issue_pay_link(uow, PAYMENTS, bill, language="fr", now=NOW)
        await uow.commit()
    assert sorted(link.language for link in db.state.pay_links.values()) == ["en", "th"]


async def test_a_link_to_a_bill_a_bank_would_refuse_shows_the_bill_without_a_qr(
    db: FakeDatabase,
) -> None:
    bill = add_household(db, newest={"reference": "b-2026/10"}).newest()
    async with db.unit_of_work() as uow:
        token = (await issue_pay_link(uow, PAYMENTS, bill, language="th", now=NOW)).rsplit("/")[-1]
        page = await open_pay_link(uow, PAYMENTS, token, now=NOW)
    assert isinstance(page, PayPage)
    assert page.payload is None and page.status is BillStatus.UNPAID


async def test_a_new_payment_link_is_announced_to_subscribers(db: FakeDatabase) -> None:
    home = add_household(db, language="th")
    bill = home.newest()
    async with db.unit_of_work() as uow:
        url = await issue_pay_link(uow, PAYMENTS, bill, language="th", now=NOW)
        await uow.commit()
    [(_, event, occurred_at)] = db.state.published
    assert event.type == "payment_link.created"
    assert occurred_at == NOW
    assert event.data["bill_reference"] == bill.reference
    assert event.data["amount_satang"] == bill.outstanding_satang
    assert event.data["account_no"] == home.customer.account_no
    token = url.rsplit("/", 1)[1]
    assert token not in str(event.data)  # the link id reveals nothing of the token
    assert event.data["link_id"] == hash_pay_token(token)[:16].hex()
