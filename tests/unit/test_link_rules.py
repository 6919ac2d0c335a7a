"""The rules under linking: lockout back-off, password choice, canonical identifiers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.domain import Throttle
from core.identifiers import normalise_user_id
from core.services.passwords import (
    PasswordProblem,
    load_common_passwords,
    password_problem,
    valid_user_id,
)
from core.services.throttling import ThrottlePolicy, blocked_until, record

T0 = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
SIGNIN = ThrottlePolicy(
    limit=5, window=timedelta(minutes=15), block=timedelta(minutes=15), growing=True
)
COMMON = load_common_passwords()


def fail(times: int, start: datetime, throttle: Throttle | None = None) -> Throttle:
    for n in range(times):
        throttle = record(throttle, "k", b"key", SIGNIN, start + timedelta(seconds=n))
    assert throttle is not None
    return throttle


def test_the_fifth_failure_blocks_for_fifteen_minutes() -> None:
    four = fail(4, T0)
    assert blocked_until(four, T0) is None and four.count == 4
    five = fail(1, T0 + timedelta(seconds=10), four)
    assert blocked_until(five, T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=10, minutes=15)
    assert blocked_until(five, T0 + timedelta(seconds=10, minutes=15)) is None


def test_blocks_double_and_stop_at_a_day() -> None:
    throttle: Throttle | None = None
    moment = T0
    lengths = []
    for _ in range(10):
        throttle = fail(5, moment, throttle)
        assert throttle.blocked_until is not None
        lengths.append(throttle.blocked_until - (moment + timedelta(seconds=4)))
        moment = throttle.blocked_until + timedelta(minutes=1)
    assert lengths[:4] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert lengths[-1] == timedelta(hours=24)


def test_a_calm_day_forgets_the_strikes() -> None:
    first = fail(5, T0)
    assert first.blocked_until is not None
    later = first.blocked_until + timedelta(hours=24)
    again = fail(5, later, first)
    assert again.strikes == 1
    assert again.blocked_until == later + timedelta(seconds=4, minutes=15)


def test_a_policy_must_make_sense() -> None:
    with pytest.raises(ValueError, match="positive"):
        ThrottlePolicy(limit=0, window=timedelta(minutes=1), block=timedelta(minutes=1))


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("1234567", PasswordProblem.TOO_SHORT),
        ("x" * 129, PasswordProblem.TOO_LONG),
        ("password", PasswordProblem.COMMON),
        ("PASSWORD1", PasswordProblem.COMMON),
        ("iloveyou", PasswordProblem.COMMON),
        ("๑๑๑๑๑๑๑๑", PasswordProblem.COMMON),
        ("xx-Somchai.J-xx", PasswordProblem.CONTAINS_USER_ID),
        ("ถั่วเขียว-correct-horse", None),
        ("😀 long enough phrase", None),
    ],
)
def test_password_rules(password: str, problem: PasswordProblem | None) -> None:
    assert password_problem(password, user_id="somchai.j", common=COMMON) is problem


def test_the_bundled_list_has_only_passwords_long_enough_to_matter() -> None:
    assert len(COMMON) > 100
    assert all(len(p) >= 8 for p in COMMON)


@pytest.mark.parametrize(
    ("user_id", "ok"),
    [("demo", True), ("Somchai.J", True), ("a_b-c.d", True), ("ab", False), ("สมชาย", False)],
)
def test_user_id_shape(user_id: str, ok: bool) -> None:
    assert valid_user_id(user_id) is ok


def test_user_ids_compare_without_case_or_width() -> None:
    assert normalise_user_id(" DEMO ") == normalise_user_id("ｄｅｍｏ") == "demo"
