"""``selfcare payments record`` as an operator runs it: a payment counts once, partial and
over-payments, unmatched references, refused amounts, and nothing personal printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.demo import demo_customers
from storage import tables as t
from storage.uow import Database
from tests.integration.support import CliResult, demo_personal_values, find_values, run_cli

ACCOUNT = demo_customers()[0][0].account_no


async def selfcare(env: dict[str, str], cwd: Path, *args: str) -> CliResult:
    result = await run_cli(env, *args, cwd=cwd)
    leaks = find_values("\n".join(result.lines).encode(), demo_personal_values())
    assert not leaks, f"`selfcare {' '.join(args)}` printed {leaks}"
    return result


async def _the_demo_bill(db: Database) -> tuple[str, int, int]:
    async with db.uow() as uow:
        customer = await uow.customers.get_by_account_no(ACCOUNT)
        assert customer is not None
        bills = await uow.bills.for_customer(customer.id)
    (bill,) = [b for b in bills if b.outstanding_satang > 0]
    return bill.reference, bill.amount_satang, bill.paid_satang


async def _paid(db: Database, reference: str) -> int:
    async with db.uow() as uow:
        bill = await uow.bills.get_by_reference(reference)
    assert bill is not None
    return bill.paid_satang


def baht(satang: int) -> str:
    return f"{satang // 100}.{satang % 100:02d}"


async def test_a_payment_recorded_twice_counts_once(
    cli_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    assert (await selfcare(cli_env, tmp_path, "demo", "seed")).code == 0
    reference, amount, _ = await _the_demo_bill(db)
    args = ("payments", "record", "--payment-id", "KBANK-0001", "--amount", baht(amount))
    args += ("--ref1", ACCOUNT, "--ref2", reference, "--paid-at", "2026-11-25T14:05")
    first = await selfcare(cli_env, tmp_path, *args)
    second = await selfcare(cli_env, tmp_path, *args)

    assert first.code == 0, first.stderr
    assert re.search(
        rf"payment KBANK-0001 of ฿[\d,]+\.\d\d recorded for bill {reference}", first.stdout
    )
    assert "฿0.00 left to pay (paid)" in first.stdout
    assert second.code == 0, second.stderr
    assert "recorded before: nothing changed" in second.stdout
    assert await _paid(db, reference) == amount
    async with db.engine.connect() as conn:
        payments = (await conn.execute(select(func.count()).select_from(t.payments))).scalar_one()
        audited = (
            await conn.execute(
                select(func.count())
                .select_from(t.audit_log)
                .where(t.audit_log.c.action == "payment.record")
            )
        ).scalar_one()
    assert payments == 1 and audited == 1


async def test_partial_then_over_payment(
    cli_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    assert (await selfcare(cli_env, tmp_path, "demo", "seed")).code == 0
    reference, amount, _ = await _the_demo_bill(db)
    common = ("--ref1", ACCOUNT, "--ref2", reference)
    part = await selfcare(
        cli_env, tmp_path, "payments", "record", "--payment-id", "P-1", "--amount", "0.01", *common
    )
    assert part.code == 0, part.stderr
    assert "(unpaid)" in part.stdout or "(partly paid)" in part.stdout
    assert await _paid(db, reference) == 1
    over = await selfcare(
        cli_env,
        tmp_path,
        "payments",
        "record",
        "--payment-id",
        "P-2",
        "--amount",
        baht(amount + 10_000),
        *common,
    )
    assert over.code == 0, over.stderr
    assert "฿100.01 paid over the amount due" in over.stdout
    assert await _paid(db, reference) == amount + 10_001


async def test_an_unknown_bill_is_kept_for_staff_not_dropped(
    cli_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    assert (await selfcare(cli_env, tmp_path, "demo", "seed")).code == 0
    result = await selfcare(
        cli_env,
        tmp_path,
        "payments",
        "record",
        "--payment-id",
        "P-9",
        "--amount",
        "1",
        "--ref1",
        ACCOUNT,
        "--ref2",
        "NOSUCHBILL",
    )
    assert result.code == 0, result.stderr
    assert "kept unmatched for staff" in result.stdout


async def test_the_same_id_with_another_amount_is_refused(
    cli_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    assert (await selfcare(cli_env, tmp_path, "demo", "seed")).code == 0
    reference, _, _ = await _the_demo_bill(db)
    base = ("payments", "record", "--payment-id", "X-1", "--ref1", ACCOUNT, "--ref2", reference)
    assert (await selfcare(cli_env, tmp_path, *base, "--amount", "1.00")).code == 0
    clash = await selfcare(cli_env, tmp_path, *base, "--amount", "2.00")
    assert clash.code == 1
    assert clash.stderr.startswith("selfcare: payment X-1 was recorded before")
    assert await _paid(db, reference) == 100


@pytest.mark.parametrize(
    ("option", "value", "complaint"),
    [
        ("--amount", "0", "--amount: amount must be positive"),
        ("--amount", "-1", "--amount: amount must be positive"),
        ("--amount", "1.234", "--amount: amount must have at most two decimals"),
        ("--amount", "๑๐๐", "--amount:"),
        ("--amount", "100000000", "--amount: amount must be at most"),
        ("--payment-id", "บิล😀", "--payment-id:"),
        ("--payment-id", "x' OR '1'='1", "--payment-id:"),
        ("--ref2", "B" * 21, "--ref2:"),
        ("--paid-at", "yesterday", "--paid-at:"),
        ("--paid-at", "2999-01-01T00:00", "--paid-at: must not be in the future"),
    ],
)
def test_bad_values_get_a_one_line_error_and_change_nothing(
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    complaint: str,
) -> None:
    for name, env_value in cli_env.items():
        monkeypatch.setenv(name, env_value)
    values = {
        "--payment-id": "OK-1",
        "--amount": "1.00",
        "--ref1": ACCOUNT,
        "--ref2": "B1",
        "--paid-at": "2026-11-25T14:05",
    }
    values[option] = value
    argv = ["payments", "record"] + [part for pair in values.items() for part in pair]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and err.startswith(f"selfcare: {complaint}")
