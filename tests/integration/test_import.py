"""``selfcare import customers|bills`` on both databases: 100,000 lines with bad ones among
them, bad lines reported by number without stopping, resuming after a crash, the CLI's
exit codes and its progress bar on a terminal."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import struct
import sys
import termios
from pathlib import Path
from typing import Any

import pytest

from bot.imports import import_file
from core.i18n import preload
from storage.uow import Database
from tests.integration.integrations_support import (
    SteppingClock,
    customer_line,
    write_customers_file,
)
from tests.integration.support import CLI_TIMEOUT, run_cli

BAD_LINES: dict[int, bytes] = {
    2: b"{not json",
    777: json.dumps(customer_line(777) | {"phone": "+66 81"}).encode(),
    10_001: json.dumps(customer_line(10_001) | {"amount": 1}).encode(),
    33_333: b'{"account_no": 33333}',
    50_000: "ลูกค้า 😀".encode(),
    # the number of line 5's customer again, under another account
    77_777: json.dumps(
        customer_line(77_777) | {"service_accounts": [customer_line(5)["service_accounts"][0]]}
    ).encode(),
    99_999: b"\xff\xfe not utf-8",
}


@pytest.fixture(autouse=True, scope="module")
def _catalogs() -> None:
    preload()


class Collector:
    def __init__(self) -> None:
        self.bad: list[tuple[int, str]] = []

    def __call__(self, number: int, reason: str) -> None:
        self.bad.append((number, reason))


async def _customer_count(db: Database) -> int:
    async with db.uow() as uow:
        return await uow.customers.count()


@pytest.mark.slow
async def test_a_hundred_thousand_lines_with_bad_ones_import_the_good_ones(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "customers.jsonl"
    await asyncio.to_thread(write_customers_file, path, 100_000, BAD_LINES)
    bad = Collector()

    report = await import_file(
        db, "customers", path, clock=SteppingClock(), batch_size=2000, on_bad_line=bad
    )

    assert [number for number, _ in bad.bad] == sorted(BAD_LINES)
    reasons = dict(bad.bad)
    assert reasons[2] == "not valid JSON"
    assert reasons[777].startswith("phone:")
    assert reasons[10_001] == "amount: Extra inputs are not permitted"
    assert reasons[77_777] == "service_accounts.0.number: this number is another account's"
    assert "+66 81" not in json.dumps(bad.bad)  # values are never echoed
    assert (report.lines, report.applied, report.rejected) == (100_000, 99_993, 7)
    assert await _customer_count(db) == 99_993
    async with db.uow() as uow:
        last = await uow.customers.get_by_account_no(customer_line(100_000)["account_no"])
        assert await uow.customers.find_by_phone(customer_line(5)["phone"]) is not None
    assert last is not None and last.name == customer_line(100_000)["name"]


async def test_bad_lines_are_reported_and_the_rest_is_imported(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "customers.jsonl"
    bad_lines = {3: b"[]", 5: b"", 8: b'{"account_no": "12"}'}
    await asyncio.to_thread(write_customers_file, path, 10, bad_lines)
    bad = Collector()

    report = await import_file(
        db, "customers", path, clock=SteppingClock(), batch_size=4, on_bad_line=bad
    )

    assert [number for number, _ in bad.bad] == [3, 8]  # a blank line is no line
    assert (report.applied, report.rejected) == (7, 2)


async def test_an_import_killed_half_way_resumes_after_its_last_commit(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "customers.jsonl"
    await asyncio.to_thread(write_customers_file, path, 1_000, {150: b"nope", 900: b"nope"})
    first = Collector()

    class Killed(Exception):
        pass

    batches = 0

    def die_after_two_batches(done: int, total: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:  # the initial call, then two committed batches
            raise Killed

    with pytest.raises(Killed):
        await import_file(
            db,
            "customers",
            path,
            clock=SteppingClock(),
            batch_size=100,
            on_bad_line=first,
            on_progress=die_after_two_batches,
        )
    assert await _customer_count(db) == 200 - 1
    second = Collector()

    report = await import_file(
        db, "customers", path, clock=SteppingClock(), batch_size=100, on_bad_line=second
    )

    assert report.resumed_after == 200
    assert [n for n, _ in first.bad] == [150] and [n for n, _ in second.bad] == [900]
    assert (report.lines, report.applied, report.rejected) == (1_000, 998, 2)
    assert await _customer_count(db) == 998

    again = await import_file(db, "customers", path, clock=SteppingClock(), batch_size=500)
    assert again.resumed_after == 0 and again.applied == 998  # finished: starts afresh
    assert await _customer_count(db) == 998  # upserts: nothing doubled


async def test_restart_ignores_the_checkpoint(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "customers.jsonl"
    await asyncio.to_thread(write_customers_file, path, 300)

    class Stopped(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise Stopped

    with pytest.raises(Stopped):
        await import_file(
            db, "customers", path, clock=SteppingClock(), batch_size=100, on_progress=stop
        )
    report = await import_file(
        db, "customers", path, clock=SteppingClock(), batch_size=100, restart=True
    )

    assert (report.resumed_after, report.applied) == (0, 300)


async def test_bills_import_after_customers_and_refuses_unknown_accounts(
    db: Database, tmp_path: Path
) -> None:
    customers = tmp_path / "customers.jsonl"
    await asyncio.to_thread(write_customers_file, customers, 20)
    await import_file(db, "customers", customers, clock=SteppingClock())
    lines = []
    for n in range(1, 21):
        owner = customer_line(n)
        lines.append(
            {
                "reference": f"B{owner['account_no']}2610",
                "account_no": owner["account_no"],
                "service_number": owner["phone"],
                "period_start": "2026-10-01",
                "period_end": "2026-10-31",
                "issued_on": "2026-11-01",
                "due_on": "2026-12-01",
                "amount_satang": 59_900 + n,
            }
        )
    lines[4]["account_no"] = "9999999999"
    lines[6]["amount_satang"] = 599.5
    lines[8]["service_number"] = customer_line(1)["phone"]
    bills = tmp_path / "bills.jsonl"
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    await asyncio.to_thread(bills.write_text, text, encoding="utf-8")
    bad = Collector()

    report = await import_file(db, "bills", bills, clock=SteppingClock(), on_bad_line=bad)

    assert bad.bad == [
        (5, "account_no: no customer has this account number: send customer.upserted first"),
        (7, "amount_satang: Input should be a valid integer"),
        (9, "service_number: this number is not one of the account's numbers"),
    ]
    assert (report.applied, report.rejected) == (17, 3)
    async with db.uow() as uow:
        bill = await uow.bills.get_by_reference(lines[0]["reference"])
    assert bill is not None and bill.amount_satang == 59_901


async def test_the_cli_reports_line_numbers_and_exits_1_when_lines_were_refused(
    db: Database, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "customers.jsonl"
    await asyncio.to_thread(write_customers_file, path, 50, {7: b"{oops"})

    result = await run_cli(cli_env, "import", "customers", str(path), cwd=tmp_path)
    missing = await run_cli(cli_env, "import", "bills", str(tmp_path / "nope.jsonl"), cwd=tmp_path)

    assert result.code == 1
    assert "line 7: not valid JSON" in result.stderr
    assert "customers: 49 imported, 1 refused, 50 lines read" in result.stdout
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    assert missing.code == 1 and "cannot read" in missing.stderr
    assert await _customer_count(db) == 49


async def test_the_cli_shows_a_progress_bar_on_a_terminal(
    db: Database, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "customers.jsonl"
    await asyncio.to_thread(write_customers_file, path, 30)
    controller, terminal = pty.openpty()
    # A terminal of 100 columns (a fresh pty has none, and tqdm draws nothing in none).
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "import",
            "customers",
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=terminal,
            env=cli_env,
            cwd=tmp_path,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
        os.close(terminal)
        terminal = -1
        shown = await asyncio.to_thread(_drain, controller)
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)

    assert proc.returncode == 0, shown
    assert "customers: 30 imported" in out.decode()
    assert "100%" in shown and "customers" in shown


def _drain(fd: int) -> str:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_lines_are_read_in_batches_never_the_whole_file(tmp_path: Path) -> None:
    from bot.imports import MAX_LINE_BYTES, _Reader

    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"a\n" * 10 + b"x" * (MAX_LINE_BYTES + 10) + b"\nb\n")
    reader = _Reader(path, 0, 0)
    try:
        first = reader.batch(4)
        rest: list[Any] = []
        while batch := reader.batch(4):
            assert len(batch) <= 4
            rest += batch
    finally:
        reader.close()

    assert [line.number for line in first] == [1, 2, 3, 4]
    overlong = rest[6]
    assert (overlong.number, overlong.raw) == (11, None)
    assert rest[-1].raw == b"b\n" and rest[-1].end == path.stat().st_size
