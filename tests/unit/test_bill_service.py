"""core.services.billing for bill enquiries: bills grouped by number, what is payable."""

from __future__ import annotations

from dataclasses import replace

from billing_data import add_household
from fakes import FakeDatabase

from core.services.billing import bills_by_number, payable


async def test_each_number_gets_its_own_bills_newest_first(db: FakeDatabase) -> None:
    home = add_household(db, numbers=3, months=12)
    async with db.unit_of_work() as uow:
        numbers = await bills_by_number(uow, home.customer.id)
    assert [n.account for n in numbers] == home.accounts
    for number in numbers:
        assert list(number.bills) == home.bills_of(number.account)
        assert number.current == home.newest(number.account)


async def test_at_most_the_asked_months_come_back(db: FakeDatabase) -> None:
    home = add_household(db, numbers=2, months=12)
    async with db.unit_of_work() as uow:
        numbers = await bills_by_number(uow, home.customer.id, months=6)
    assert [len(n.bills) for n in numbers] == [6, 6]


async def test_a_number_without_bills_is_still_listed(db: FakeDatabase) -> None:
    home = add_household(db, numbers=1, months=0)
    async with db.unit_of_work() as uow:
        (number,) = await bills_by_number(uow, home.customer.id)
    assert number.bills == () and number.current is None


async def test_a_customer_without_numbers_has_nothing(db: FakeDatabase) -> None:
    async with db.unit_of_work() as uow:
        assert await bills_by_number(uow, "no-such-customer") == []


def test_payable_bills_are_those_with_money_left_the_one_due_first_first(db: FakeDatabase) -> None:
    home = add_household(db, numbers=1, months=3)
    newest, middle, oldest = home.bills_of(home.accounts[0])
    bills = [
        newest,
        replace(middle, paid_satang=1),
        replace(oldest, paid_satang=oldest.amount_satang),
    ]
    assert [b.id for b in payable(bills)] == [middle.id, newest.id]
    assert payable([]) == []
