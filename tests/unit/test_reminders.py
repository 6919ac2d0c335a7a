"""Bill reminders: which message a bill needs on which day, preferences, quiet hours,
never twice, and the messages themselves in each chat's language."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from billing_data import add_household
from factories import chat_link
from fakes import FakeDatabase, FrozenClock

from core.chat import TextReply
from core.domain import Bill, ConsentPurpose, ConsentRecord, Conversation, NotificationKind
from core.i18n import preload, translator
from core.masking import mask_phone
from core.services.reminders import (
    ISSUED,
    ReminderSettings,
    due_kind,
    notification_enabled,
    queue_bill_reminders,
    reminder_due,
    set_notification,
)

SETTINGS = ReminderSettings(days_before_due=(3, 1))


@pytest.fixture(autouse=True)
def catalogs() -> None:
    """The worker loads the catalogs at start-up (bot/bootstrap.py); so do these tests."""
    preload()


ALL = set(NotificationKind)
ISSUED_ON = date(2026, 11, 1)
DUE_ON = date(2026, 12, 1)


def bill(**changes: object) -> Bill:
    values: dict[str, object] = {
        "id": "b1",
        "customer_id": "c1",
        "service_account_id": "s1",
        "reference": "B1",
        "period_start": date(2026, 10, 1),
        "period_end": date(2026, 10, 31),
        "issued_on": ISSUED_ON,
        "due_on": DUE_ON,
        "amount_satang": 64_093,
        "paid_satang": 0,
    }
    values.update(changes)
    return Bill(**values)  # type: ignore[arg-type]


def due(
    today: date, sent: set[str] = frozenset(), enabled: set[NotificationKind] = ALL, **b: object
):  # type: ignore[no-untyped-def]
    return reminder_due(bill(**b), today, sent=sent, enabled=enabled, settings=SETTINGS)


# --- which reminder, when ------------------------------------------------------------------------


def test_a_new_bill_gets_the_new_bill_message_first() -> None:
    reminder = due(ISSUED_ON)
    assert reminder is not None
    assert (reminder.kind, reminder.covers, reminder.notification) == (
        ISSUED,
        (),
        NotificationKind.BILL_ISSUED,
    )


def test_between_the_new_bill_message_and_the_first_window_nothing_is_sent() -> None:
    assert due(date(2026, 11, 20), {ISSUED}) is None


@pytest.mark.parametrize(
    ("today", "kind", "days_left"),
    [(date(2026, 11, 28), "due:3", 3), (date(2026, 11, 30), "due:1", 1)],
)
def test_on_each_reminder_day_its_reminder_is_due(today: date, kind: str, days_left: int) -> None:
    reminder = due(today, {ISSUED, "due:3"} if kind == "due:1" else {ISSUED})
    assert reminder is not None
    assert (reminder.kind, reminder.days_left) == (kind, days_left)
    assert reminder.notification is NotificationKind.BILL_DUE


def test_a_reminder_already_sent_is_not_due_again() -> None:
    assert due(date(2026, 11, 28), {ISSUED, "due:3"}) is None
    assert due(date(2026, 11, 29), {ISSUED, "due:3"}) is None
    assert due(date(2026, 11, 30), {ISSUED, "due:3", "due:1"}) is None


def test_a_worker_that_was_down_sends_one_reminder_not_a_backlog() -> None:
    reminder = due(date(2026, 11, 30), {ISSUED})
    assert reminder is not None
    assert reminder.kind == "due:1" and reminder.covers == ("due:3",)


def test_a_new_bill_inside_a_window_covers_that_windows_reminders() -> None:
    reminder = due(date(2026, 11, 29), issued_on=date(2026, 11, 29))
    assert reminder is not None
    assert reminder.kind == ISSUED and reminder.covers == ("due:3",)


def test_on_the_due_date_only_a_zero_day_setting_reminds() -> None:
    assert due(DUE_ON, {ISSUED, "due:1"}) is None
    zero = reminder_due(
        bill(), DUE_ON, sent={ISSUED, "due:1"}, enabled=ALL, settings=ReminderSettings((0,))
    )
    assert zero is not None and zero.kind == "due:0" and zero.days_left == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"paid_satang": 64_093},
        {"paid_satang": 70_000},
        {"issued_on": date(2026, 11, 26)},  # not issued yet (today is before it)
        {"due_on": date(2026, 11, 24)},  # past due: the bill itself says overdue
    ],
)
def test_bills_paid_not_yet_issued_or_past_due_get_nothing(changes: dict[str, object]) -> None:
    assert due(date(2026, 11, 25), **changes) is None


def test_a_partly_paid_bill_is_still_reminded() -> None:
    assert due(date(2026, 11, 30), {ISSUED}, paid_satang=1) is not None


def test_an_old_bill_gets_no_new_bill_message_only_its_due_reminders() -> None:
    assert due(date(2026, 11, 20)) is None  # 19 days after it was issued
    reminder = due(date(2026, 11, 28))
    assert reminder is not None and reminder.kind == "due:3"


def test_turning_off_new_bill_messages_keeps_due_reminders() -> None:
    only_due = {NotificationKind.BILL_DUE}
    assert due(ISSUED_ON, enabled=only_due) is None
    reminder = due(date(2026, 11, 28), enabled=only_due)
    assert reminder is not None and reminder.kind == "due:3"


def test_turning_off_due_reminders_keeps_new_bill_messages() -> None:
    only_issued = {NotificationKind.BILL_ISSUED}
    assert due(date(2026, 11, 28), {ISSUED}, enabled=only_issued) is None
    assert due(ISSUED_ON, enabled=only_issued) is not None


def test_with_no_reminder_days_only_new_bills_are_announced() -> None:
    none = ReminderSettings(days_before_due=())
    assert reminder_due(bill(), ISSUED_ON, sent=set(), enabled=ALL, settings=none) is not None
    assert (
        reminder_due(bill(), date(2026, 11, 30), sent={ISSUED}, enabled=ALL, settings=none) is None
    )


@pytest.mark.parametrize(
    "values",
    [
        {"days_before_due": (61,)},
        {"days_before_due": (-1,)},
        {"issued_within_days": -1},
        {"batch_size": 0},
    ],
)
def test_reminder_settings_refuse_nonsense(values: dict[str, object]) -> None:
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        ReminderSettings(**values)  # type: ignore[arg-type]


def test_due_kinds_name_their_day() -> None:
    assert due_kind(3) == "due:3"


# --- the job, against the fakes ----------------------------------------------------------------


def at_bangkok(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=7)


async def run(db: FakeDatabase, now: datetime, settings: ReminderSettings = SETTINGS) -> int:
    return await queue_bill_reminders(db.unit_of_work, now=now, settings=settings)


def messages(db: FakeDatabase, channel: str = "terminal", chat_id: str = "chat-1") -> list[str]:
    return [r.text for r in db.outbox_for(channel, chat_id) if isinstance(r, TextReply)]


async def test_a_new_bill_is_announced_once_to_the_linked_chat(db: FakeDatabase) -> None:
    home = add_household(db)
    bill = home.newest()
    now = at_bangkok(bill.issued_on, 9)
    assert await run(db, now) == 1
    assert await run(db, now) == 0
    assert await run(db, now + timedelta(hours=3)) == 0
    (text,) = messages(db)
    t = translator("th")
    assert t.money(bill.amount_satang) in text and t.date(bill.due_on) in text
    assert mask_phone(home.accounts[0].number) in text
    assert home.accounts[0].number not in text
    (reply,) = db.outbox_for("terminal", "chat-1")
    assert isinstance(reply, TextReply)
    assert [b.payload for row in reply.buttons for b in row] == [f"pay:{bill.reference}", "bill"]


async def test_the_whole_month_sends_three_messages(db: FakeDatabase) -> None:
    home = add_household(db)
    bill = home.newest()
    day = bill.issued_on
    total = 0
    while day <= bill.due_on + timedelta(days=2):
        for hour in (7, 9, 13, 19, 21):
            total += await run(db, at_bangkok(day, hour))
        day += timedelta(days=1)
    assert total == 3
    assert set(db.state.sent_reminders) == {
        (bill.id, ISSUED),
        (bill.id, "due:3"),
        (bill.id, "due:1"),
    }
    _, second, third = messages(db)
    t = translator("th")
    assert "3" in second and t.date(bill.due_on) in second
    assert t.date(bill.due_on) in third


async def test_nothing_is_sent_at_night(db: FakeDatabase) -> None:
    bill = add_household(db).newest()
    assert await run(db, at_bangkok(bill.issued_on, 7)) == 0
    assert await run(db, at_bangkok(bill.issued_on, 20)) == 0
    assert await run(db, at_bangkok(bill.issued_on, 8)) == 1


async def test_each_linked_chat_gets_it_in_its_own_language(db: FakeDatabase) -> None:
    home = add_household(db)
    db.state.links[("telegram", "tg-9")] = chat_link(
        home.customer, channel="telegram", chat_id="tg-9"
    )
    db.state.conversations[("telegram", "tg-9")] = Conversation("telegram", "tg-9", language="en")
    bill = home.newest()
    assert await run(db, at_bangkok(bill.issued_on, 10)) == 2
    (thai,) = messages(db)
    (english,) = messages(db, "telegram", "tg-9")
    assert "บิล" in thai
    assert english.startswith("🧾 Your new bill")


async def test_a_customer_who_turned_reminders_off_gets_nothing(db: FakeDatabase) -> None:
    home = add_household(db)
    async with db.unit_of_work() as uow:
        for kind in NotificationKind:
            await set_notification(uow, home.customer.id, kind, False, now=at_bangkok(ISSUED_ON, 9))
        await uow.commit()
    bill = home.newest()
    for day in (bill.issued_on, bill.due_on - timedelta(days=3), bill.due_on - timedelta(days=1)):
        assert await run(db, at_bangkok(day, 10)) == 0
    assert messages(db) == []
    async with db.unit_of_work() as uow:
        assert await notification_enabled(uow, home.customer.id) == set()


async def test_reminders_are_on_by_default_and_can_be_turned_back_on(db: FakeDatabase) -> None:
    home = add_household(db)
    async with db.unit_of_work() as uow:
        assert await notification_enabled(uow, home.customer.id) == set(NotificationKind)
        await set_notification(
            uow, home.customer.id, NotificationKind.BILL_DUE, False, now=at_bangkok(ISSUED_ON, 9)
        )
        await set_notification(
            uow, home.customer.id, NotificationKind.BILL_DUE, True, now=at_bangkok(ISSUED_ON, 9)
        )
        assert await notification_enabled(uow, home.customer.id) == set(NotificationKind)


async def test_reminders_do_not_depend_on_marketing_consent(db: FakeDatabase) -> None:
    home = add_household(db)
    db.state.consent.append(
        ConsentRecord(
            customer_id=home.customer.id,
            purpose=ConsentPurpose.MARKETING,
            granted=False,
            notice_version="2026-11-1",
            channel="terminal",
            recorded_at=at_bangkok(ISSUED_ON, 8),
        )
    )
    assert await run(db, at_bangkok(home.newest().issued_on, 9)) == 1


async def test_customers_without_a_linked_chat_are_skipped(db: FakeDatabase) -> None:
    home = add_household(db, link=None)
    assert await run(db, at_bangkok(home.newest().issued_on, 9)) == 0
    assert db.state.sent_reminders == {}


async def test_paid_bills_get_no_reminder(db: FakeDatabase) -> None:
    home = add_household(db)
    bill = home.newest()
    db.state.bills[bill.id] = replace(bill, paid_satang=bill.amount_satang)
    assert await run(db, at_bangkok(bill.issued_on, 9)) == 0


async def test_many_bills_are_worked_through_in_batches(db: FakeDatabase) -> None:
    homes = [
        add_household(db, account_no=f"10000001{i:02d}", link=("terminal", f"c{i}"))
        for i in range(7)
    ]
    day = homes[0].newest().issued_on
    sent = await run(db, at_bangkok(day, 9), ReminderSettings(batch_size=2))
    assert sent == 7
    assert all(len(messages(db, "terminal", f"c{i}")) == 1 for i in range(7))


async def test_a_failing_batch_sends_nothing_and_the_next_run_sends_it(
    db: FakeDatabase, clock: FrozenClock
) -> None:
    home = add_household(db)
    now = at_bangkok(home.newest().issued_on, 9)
    original = db.unit_of_work

    class Boom(Exception):
        pass

    def failing():  # type: ignore[no-untyped-def]
        uow = original()
        enqueue = uow.outbox.enqueue_replies

        async def explode(*args, **kwargs):  # type: ignore[no-untyped-def]
            await enqueue(*args, **kwargs)
            raise Boom

        uow.outbox.enqueue_replies = explode  # type: ignore[method-assign]
        return uow

    with pytest.raises(Boom):
        await queue_bill_reminders(failing, now=now, settings=SETTINGS)
    assert db.state.sent_reminders == {} and messages(db) == []
    assert await run(db, now) == 1
