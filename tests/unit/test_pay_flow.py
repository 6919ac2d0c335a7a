"""/pay in Thai and English: the QR code a banking app reads, the payment link, choosing
among several bills, and everything that stops a payment politely."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import timedelta

import pytest
import zxingcpp
from billing_data import BILLER_ID, PAYMENTS, PUBLIC_URL, add_household, settings_with
from emvco_parser import parse_payload
from fakes import FakeDatabase, FrozenClock
from harness import Chat, assert_in_language, ends_with_menu, joined, payloads, texts
from PIL import Image

from core.chat import ImageReply, LinkButton, Reply, TextReply
from core.flows.bill import please_link_first
from core.i18n import Translator, translator
from core.masking import mask_phone
from core.services.billing import PaymentSettings, hash_pay_token
from core.services.conversation import ConversationSettings

URL = re.compile(re.escape(PUBLIC_URL) + r"/pay/([A-Za-z0-9_-]{43})")


@pytest.fixture
def settings() -> ConversationSettings:
    return settings_with()


def scan(reply: Reply) -> str:
    """What a banking app's camera reads from an image reply."""
    assert isinstance(reply, ImageReply)
    found = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(reply.png)), formats=zxingcpp.BarcodeFormat.QRCode
    )
    assert len(found) == 1
    return found[0].text


def qr_and_link(replies: list[Reply]) -> tuple[ImageReply, TextReply]:
    image, link = replies
    assert isinstance(image, ImageReply) and isinstance(link, TextReply)
    return image, link


async def test_a_chat_that_is_not_linked_is_asked_to_link_first(chat: Chat, t: Translator) -> None:
    replies = await chat.say("จ่ายบิล" if t.lang == "th" else "pay my bill")
    assert replies == [please_link_first(t)]


async def test_one_unpaid_bill_gets_its_qr_code_and_a_payment_link_at_once(
    chat: Chat, db: FakeDatabase, t: Translator, clock: FrozenClock
) -> None:
    home = add_household(db)
    bill = home.newest()
    replies = await chat.say("จ่าย" if t.lang == "th" else "pay")
    image, link = qr_and_link(replies)

    fields = parse_payload(scan(image))
    assert fields["01"] == "12"  # dynamic: one payment of this amount
    assert fields["30"] == {
        "00": "A000000677010112",
        "01": BILLER_ID,
        "02": home.customer.account_no,
        "03": bill.reference,
    }
    assert fields["54"] == f"{bill.amount_satang // 100}.{bill.amount_satang % 100:02d}"
    assert fields["53"] == "764" and fields["58"] == "TH"

    assert t.money(bill.amount_satang) in image.caption
    assert t.date(bill.due_on) in image.caption
    assert home.customer.account_no in image.caption and bill.reference in image.caption
    assert mask_phone(home.accounts[0].number) in image.caption

    token = URL.search(link.text)
    assert token is not None
    (button,) = [b for row in link.buttons for b in row if isinstance(b, LinkButton)]
    assert button.url == token.group(0)
    stored = db.state.pay_links[hash_pay_token(token.group(1))]
    assert stored.bill_id == bill.id and stored.language == t.lang
    assert stored.expires_at == clock.now() + PAYMENTS.pay_link_ttl
    assert token.group(1).encode() not in repr(db.state.pay_links).encode()  # only its hash
    assert t.datetime(clock.now() + PAYMENTS.pay_link_ttl) in link.text
    assert ends_with_menu(replies)
    assert_in_language([TextReply(image.caption), link], t.lang)


async def test_a_partly_paid_bill_asks_for_what_is_left(chat: Chat, db: FakeDatabase) -> None:
    home = add_household(db, newest={"paid_satang": 10_007})
    image, _ = qr_and_link(await chat.command("pay"))
    left = home.newest().amount_satang - 10_007
    assert parse_payload(scan(image))["54"] == f"{left // 100}.{left % 100:02d}"


async def test_an_overdue_bill_can_still_be_paid(
    chat: Chat, db: FakeDatabase, clock: FrozenClock
) -> None:
    home = add_household(db)
    clock.advance(timedelta(days=30))
    image, _ = qr_and_link(await chat.command("pay"))
    assert parse_payload(scan(image))["30"]["03"] == home.newest().reference  # type: ignore[index]


async def test_several_bills_to_pay_are_listed_due_first_and_one_is_chosen(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, numbers=2)
    older = home.bills_of(home.accounts[1])[1]
    db.state.bills[older.id] = replace(older, paid_satang=0)
    menu = await chat.command("pay")
    assert len(menu) == 1 and isinstance(menu[0], TextReply)
    choices = [p for p in payloads(menu[0]) if p.startswith("pay:")]
    assert choices[0] == f"pay:{older.reference}"  # due first
    assert len(choices) == 3
    assert t.money(older.amount_satang) in menu[0].text
    assert chat.state.flow == "pay"

    image, _ = qr_and_link(await chat.press(choices[2]))
    assert parse_payload(scan(image))["30"]["03"] == choices[2].removeprefix("pay:")  # type: ignore[index]


async def test_typing_the_position_of_a_bill_pays_that_one(chat: Chat, db: FakeDatabase) -> None:
    home = add_household(db, numbers=2)
    await chat.command("pay")
    image, _ = qr_and_link(await chat.say("2"))
    due_first = sorted((home.newest(a) for a in home.accounts), key=lambda b: b.reference)
    second = sorted(due_first, key=lambda b: b.due_on)[1]
    assert parse_payload(scan(image))["30"]["03"] == second.reference  # type: ignore[index]
    assert chat.state.flow is None


async def test_nothing_to_pay_is_a_friendly_answer(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    add_household(db, newest={"paid_satang": 10**9})
    replies = await chat.command("pay")
    assert texts(replies) == [t._("You have nothing to pay right now. Thank you! 🙏")]
    assert ends_with_menu(replies)
    assert db.state.pay_links == {}


async def test_a_bill_paid_in_the_meantime_says_so_instead_of_a_qr_code(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db)
    bill = home.newest()
    db.state.bills[bill.id] = replace(bill, paid_satang=bill.amount_satang)
    replies = await chat.press(f"pay:{bill.reference}")
    assert texts(replies) == [
        t._("Bill {reference} is already paid in full. Thank you! 🙏").format(
            reference=bill.reference
        )
    ]
    assert not any(isinstance(r, ImageReply) for r in replies)


@pytest.mark.parametrize("whose", ["someone else's", "no one's", "sql", "thai-emoji"])
async def test_a_bill_that_is_not_the_customers_is_not_found(
    chat: Chat, db: FakeDatabase, t: Translator, whose: str
) -> None:
    add_household(db)
    stranger = add_household(db, link=None, account_no="1000000777")
    reference = {
        "someone else's": stranger.newest().reference,
        "no one's": "B000000000000",
        "sql": "x' OR '1'='1",
        "thai-emoji": "บิล😀",
    }[whose]
    replies = await chat.press(f"pay:{reference}")
    assert texts(replies) == [t._("Sorry, I couldn't find that bill on your account.")]
    assert not any(isinstance(r, ImageReply) for r in replies)
    assert db.state.pay_links == {}


async def test_without_a_promptpay_id_the_chat_says_qr_payment_is_unavailable(
    db: FakeDatabase, clock: FrozenClock, lang: str
) -> None:
    from core.services.conversation import ConversationService

    service = ConversationService(db.unit_of_work, clock, settings_with(None))
    chat = Chat(service, db, clock)
    chat.seed(language=lang)
    add_household(db)
    replies = await chat.command("pay")
    t = translator(lang)
    assert texts(replies) == [
        t._(
            "Sorry, paying by QR code isn't available in this chat right now. "
            "You can still pay at our service counters or in your banking app."
        )
    ]
    assert ends_with_menu(replies) and db.state.pay_links == {}


async def test_an_operator_with_only_a_promptpay_number_gets_a_transfer_qr(
    db: FakeDatabase, clock: FrozenClock
) -> None:
    from core.services.conversation import ConversationService

    payments = PaymentSettings(public_url=PUBLIC_URL, promptpay_id="0812345678")
    chat = Chat(ConversationService(db.unit_of_work, clock, settings_with(payments)), db, clock)
    chat.seed(language="en")
    home = add_household(db)
    image, _ = qr_and_link(await chat.command("pay"))
    fields = parse_payload(scan(image))
    assert fields["29"] == {"00": "A000000677010111", "01": "0066812345678"}
    assert "30" not in fields
    assert home.newest().reference not in image.caption  # no references in a transfer QR


async def test_every_request_makes_a_new_link(chat: Chat, db: FakeDatabase) -> None:
    add_household(db)
    _, first = qr_and_link(await chat.command("pay"))
    _, second = qr_and_link(await chat.command("pay"))
    one, two = URL.search(first.text), URL.search(second.text)
    assert one and two and one.group(1) != two.group(1)
    assert len(db.state.pay_links) == 2


async def test_the_menu_pay_button_and_the_command_answer_alike(
    chat: Chat, db: FakeDatabase
) -> None:
    add_household(db)
    by_button = await chat.press("pay")
    by_command = await chat.command("pay")
    assert [type(r) for r in by_button] == [type(r) for r in by_command] == [ImageReply, TextReply]
    assert joined(by_button).split("\n")[0] == joined(by_command).split("\n")[0]


async def test_a_bill_whose_reference_a_bank_would_refuse_gets_no_qr_but_an_answer(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    add_household(db, newest={"reference": "b-2026/10"})
    replies = await chat.command("pay")
    assert not any(isinstance(r, ImageReply) for r in replies)
    assert texts(replies) == [
        t._(
            "Sorry, paying by QR code isn't available in this chat right now. "
            "You can still pay at our service counters or in your banking app."
        )
    ]
    assert ends_with_menu(replies) and db.state.pay_links == {}
