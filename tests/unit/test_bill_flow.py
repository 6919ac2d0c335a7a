"""/bill in Thai and English: the current bill, its status, the last 6, the chart, several
numbers, and a chat that is not linked yet."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from billing_data import TODAY, add_household, month_start, settings_with
from factories import CHANNELS
from fakes import FakeDatabase, FrozenClock
from harness import Chat, assert_in_language, ends_with_menu, joined, payloads, texts
from PIL import Image

from core.chat import ImageReply, TextReply
from core.domain import BillStatus
from core.flows.bill import please_link_first, status_name
from core.flows.fallback import something_went_wrong
from core.i18n import Translator
from core.masking import mask_phone
from core.services.conversation import ConversationService, ConversationSettings


@pytest.fixture
def settings() -> ConversationSettings:
    return settings_with()


def _only_text(replies: list[object]) -> TextReply:
    (reply,) = replies
    assert isinstance(reply, TextReply)
    return reply


# --- not linked ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["command", "button", "words"])
async def test_a_chat_that_is_not_linked_is_asked_to_link_first(
    chat: Chat, t: Translator, how: str
) -> None:
    if how == "command":
        replies = await chat.command("bill")
    elif how == "button":
        replies = await chat.press("bill")
    else:
        replies = await chat.say("บิลเดือนนี้เท่าไหร่" if t.lang == "th" else "my bill please")
    reply = _only_text(replies)
    assert reply == please_link_first(t)
    assert payloads(reply)[0] == "link"
    assert ends_with_menu(replies)
    assert "฿" not in reply.text  # nothing made up
    assert_in_language(replies, t.lang)


async def test_someone_elses_link_shows_nothing_here(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    add_household(db, link=("terminal", "another-chat"))
    assert _only_text(await chat.command("bill")) == please_link_first(t)


# --- one number ------------------------------------------------------------------


@pytest.mark.parametrize("channel", CHANNELS)
async def test_the_current_bill_shows_amount_period_due_date_and_status(
    chat: Chat, db: FakeDatabase, t: Translator, channel: str
) -> None:
    chat.channel = channel
    chat.seed(language=t.lang)
    home = add_household(db, link=(channel, "chat-1"))
    bill = home.newest()
    reply = _only_text(await chat.say("บิล" if t.lang == "th" else "bill"))
    text = reply.text
    assert t.money(bill.amount_satang) in text
    assert t.date(bill.due_on) in text
    assert t.date(bill.period_start) in text and t.date(bill.period_end) in text
    assert status_name(t, BillStatus.UNPAID) in text
    assert mask_phone(home.accounts[0].number) in text
    assert home.accounts[0].number not in text  # the number is masked
    assert payloads(reply)[:1] == [f"pay:{bill.reference}"]
    assert f"bill:history:{home.accounts[0].id}" in payloads(reply)
    assert f"bill:chart:{home.accounts[0].id}" in payloads(reply)
    assert "menu" in payloads(reply)
    assert_in_language([reply], t.lang)


async def test_a_thai_due_date_is_in_the_buddhist_era(
    chat: Chat, db: FakeDatabase, lang: str
) -> None:
    home = add_household(db)
    text = _only_text(await chat.command("bill")).text
    due = home.newest().due_on
    if lang == "th":
        assert f"{due.year + 543}" in text and "ธ.ค." in text
    else:
        assert f"{due.day} Dec {due.year}" in text


async def test_an_overdue_bill_says_so_and_asks_to_pay_soon(
    chat: Chat, db: FakeDatabase, t: Translator, clock: FrozenClock
) -> None:
    home = add_household(db)
    assert home.newest().due_on == date(2026, 12, 1)
    clock.set(datetime(2026, 12, 1, 17, 0, tzinfo=UTC))  # 2 Dec, 00:00 in Bangkok
    text = _only_text(await chat.command("bill")).text
    assert status_name(t, BillStatus.OVERDUE) in text
    assert t._("⚠️ This bill is past its due date. Please pay as soon as you can.") in text


async def test_on_the_due_date_itself_the_bill_is_not_yet_overdue(
    chat: Chat, db: FakeDatabase, t: Translator, clock: FrozenClock
) -> None:
    add_household(db)
    clock.set(datetime(2026, 12, 1, 16, 59, tzinfo=UTC))  # 1 Dec, 23:59 in Bangkok
    text = _only_text(await chat.command("bill")).text
    assert status_name(t, BillStatus.UNPAID) in text


async def test_a_paid_bill_says_paid_and_offers_no_payment(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, newest={"paid_satang": 50_000 + 1_000 + 7})
    assert home.newest().outstanding_satang == 0
    reply = _only_text(await chat.command("bill"))
    assert status_name(t, BillStatus.PAID) in reply.text
    assert not any(p.startswith("pay") for p in payloads(reply))


async def test_a_partly_paid_bill_shows_what_is_paid_and_what_is_left(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, newest={"paid_satang": 20_000})
    bill = home.newest()
    reply = _only_text(await chat.command("bill"))
    assert status_name(t, BillStatus.PARTLY_PAID) in reply.text
    assert t.money(20_000) in reply.text and t.money(bill.amount_satang - 20_000) in reply.text
    assert payloads(reply)[0] == f"pay:{bill.reference}"


async def test_an_earlier_unpaid_bill_is_mentioned_under_the_current_one(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db)
    earlier = home.bills_of(home.accounts[0])[1]
    db.state.bills[earlier.id] = replace(earlier, paid_satang=0)
    reply = _only_text(await chat.command("bill"))
    assert t.money(earlier.amount_satang) in reply.text
    assert payloads(reply)[0] == "pay"  # two bills to pay: /pay lets the customer choose


async def test_no_bills_yet_is_said_plainly(chat: Chat, db: FakeDatabase, t: Translator) -> None:
    add_household(db, months=0)
    replies = await chat.command("bill")
    assert texts(replies) == [
        t._("There are no bills on your account yet. They show here as soon as they are issued.")
    ]
    assert ends_with_menu(replies)


# --- the last 6, the chart ------------------------------------------------------------------


async def test_the_last_six_bills_come_newest_first(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db)
    account = home.accounts[0]
    reply = _only_text(await chat.press(f"bill:history:{account.id}"))
    lines = reply.text.splitlines()
    assert len(lines) == 7
    expected = home.bills_of(account)[:6]
    for line, bill in zip(lines[1:], expected, strict=True):
        assert line.startswith(t.month_year(bill.period_start))
        assert t.money(bill.amount_satang) in line
    assert f"bill:chart:{account.id}" in payloads(reply)


@pytest.mark.parametrize("words", ["บิลย้อนหลัง", "ขอดูประวัติบิล", "bill history", "previous bills"])
async def test_asking_for_earlier_bills_in_words_shows_the_last_six(
    chat: Chat, db: FakeDatabase, words: str
) -> None:
    home = add_household(db)
    reply = _only_text(await chat.say(words))
    assert len(reply.text.splitlines()) == 7
    assert f"bill:n:{home.accounts[0].id}" in payloads(reply)


async def test_history_command_argument_works_too(chat: Chat, db: FakeDatabase) -> None:
    add_household(db)
    assert len(_only_text(await chat.command("bill", "history")).text.splitlines()) == 7


async def test_a_customer_with_fewer_bills_sees_them_all(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, months=1)
    reply = _only_text(await chat.press(f"bill:history:{home.accounts[0].id}"))
    assert reply.text.splitlines()[0].startswith("📋")
    assert len(reply.text.splitlines()) == 2


@pytest.mark.parametrize("how", ["button", "words"])
async def test_the_chart_is_a_png_of_twelve_months(
    chat: Chat, db: FakeDatabase, t: Translator, how: str
) -> None:
    home = add_household(db)
    if how == "button":
        replies = await chat.press(f"bill:chart:{home.accounts[0].id}")
    else:
        replies = await chat.say("กราฟบิล" if t.lang == "th" else "bill chart")
    image, note = replies
    assert isinstance(image, ImageReply) and isinstance(note, TextReply)
    picture = Image.open(io.BytesIO(image.png))
    assert picture.format == "PNG" and picture.size == (720, 400)
    assert mask_phone(home.accounts[0].number) in image.caption
    assert "12" in image.caption
    assert note.text == t._("Orange bars are bills with money still to pay.")
    assert_in_language([TextReply(image.caption), note], t.lang)


# --- several numbers ------------------------------------------------------------------


async def test_several_numbers_get_a_summary_and_a_choice(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, numbers=3)
    reply = _only_text(await chat.command("bill"))
    for account in home.accounts:
        assert mask_phone(account.number) in reply.text
        assert f"bill:n:{account.id}" in payloads(reply)
    left = sum(home.newest(a).outstanding_satang for a in home.accounts)
    assert t._("Still to pay in all: {amount}").format(amount=t.money(left)) in reply.text
    assert "pay" in payloads(reply)
    assert chat.state.flow == "bill"


async def test_choosing_a_number_by_button_shows_its_bill(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, numbers=2)
    await chat.command("bill")
    second = home.accounts[1]
    reply = _only_text(await chat.press(f"bill:n:{second.id}"))
    assert t.money(home.newest(second).amount_satang) in reply.text
    assert mask_phone(second.number) in reply.text


@pytest.mark.parametrize("typed", ["2", " 2 ", "๒"])
async def test_typing_the_position_chooses_a_number(
    chat: Chat, db: FakeDatabase, t: Translator, typed: str
) -> None:
    home = add_household(db, numbers=2)
    await chat.command("bill")
    reply = _only_text(await chat.say(typed))
    second = home.accounts[1]
    assert t.money(home.newest(second).amount_satang) in reply.text
    assert chat.state.flow is None


async def test_typing_the_last_four_digits_chooses_a_number(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, numbers=3)
    await chat.command("bill")
    third = home.accounts[2]
    reply = _only_text(await chat.say(third.number[-4:]))
    assert mask_phone(third.number) in reply.text


async def test_history_in_words_with_several_numbers_asks_which_then_shows_it(
    chat: Chat, db: FakeDatabase
) -> None:
    home = add_household(db, numbers=2)
    summary = _only_text(await chat.say("bill history"))
    assert f"bill:history:{home.accounts[0].id}" in payloads(summary)
    reply = _only_text(await chat.say("1"))
    assert len(reply.text.splitlines()) == 7


async def test_something_else_while_choosing_is_routed_as_usual(
    chat: Chat, db: FakeDatabase
) -> None:
    add_household(db, numbers=2)
    await chat.command("bill")
    replies = await chat.say("help")
    assert chat.state.flow is None
    assert "/bill" in joined(replies)


async def test_the_summary_button_shows_every_number(chat: Chat, db: FakeDatabase) -> None:
    home = add_household(db, numbers=2)
    reply = _only_text(await chat.press("bill:all"))
    assert all(f"bill:n:{a.id}" in payloads(reply) for a in home.accounts)


async def test_a_button_for_another_customers_number_is_stale(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    add_household(db)
    stranger = add_household(db, link=None, account_no="1000000099")
    replies = await chat.press(f"bill:history:{stranger.accounts[0].id}")
    assert texts(replies) == [
        t._("That button is no longer active. Please choose again from the menu.")
    ]
    assert t.money(stranger.newest().amount_satang) not in joined(replies)


@pytest.mark.parametrize(
    "payload", ["bill:n:", "bill:nope:x", "bill:n:' OR 1=1 --", "bill:😀:๑", "bill:" + "9" * 500]
)
async def test_malformed_bill_buttons_get_a_friendly_answer(
    chat: Chat, db: FakeDatabase, t: Translator, payload: str
) -> None:
    add_household(db)
    replies = await chat.press(payload)
    assert texts(replies)
    assert something_went_wrong(t).text not in joined(replies)
    assert_in_language(replies, t.lang)


async def test_a_full_phone_number_never_appears_in_any_bill_reply(
    chat: Chat, db: FakeDatabase
) -> None:
    home = add_household(db, numbers=3)
    seen = joined(await chat.command("bill"))
    for account in home.accounts:
        seen += joined(await chat.press(f"bill:n:{account.id}"))
        seen += joined(await chat.press(f"bill:history:{account.id}"))
    for account in home.accounts:
        assert account.number not in seen


async def test_bills_run_as_one_transaction_per_message(
    service: ConversationService, db: FakeDatabase, chat: Chat
) -> None:
    add_household(db)
    before = db.commits
    await chat.command("bill")
    assert db.commits == before + 1


def test_test_data_month_helper_counts_back_from_november() -> None:
    assert month_start(1) == TODAY.replace(month=10, day=1)


async def test_a_number_without_bills_is_listed_and_choosing_it_says_so(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    home = add_household(db, numbers=2)
    for bill in home.bills_of(home.accounts[1]):
        del db.state.bills[bill.id]
    summary = _only_text(await chat.press("bill:all"))
    assert (
        t._("{n}) {number}: no bill yet").format(
            n=2, number=f"{mask_phone(home.accounts[1].number)} ({t._('home phone')})"
        )
        in summary.text
    )
    replies = await chat.say("2")
    assert texts(replies) == [
        t._("There are no bills on your account yet. They show here as soon as they are issued.")
    ]
    assert something_went_wrong(t).text not in joined(replies)
