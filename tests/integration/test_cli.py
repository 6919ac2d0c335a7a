"""``selfcare`` as an operator runs it: a subprocess, exit codes, one-line errors, and no
personal value on the terminal."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot import demo
from bot.demo import demo_customers
from bot.settings import ENV_PREFIX, Settings
from storage.crypto import Argon2PasswordHasher, Keyring
from storage.db import create_engine
from storage.uow import Database
from tests.integration.support import CliResult, demo_personal_values, find_values, run_cli

FIRST_ACCOUNT = demo_customers()[0][0].account_no
PASSWORD = "ถั่วเขียว-correct-horse"
SEEDED = re.compile(
    r"demo data: (\d+) customers, (\d+) numbers, (\d+) bills and (\d+) e-service users added"
)


async def selfcare(
    env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None
) -> CliResult:
    """Run ``selfcare ARGS``; whatever it prints must hold no demo customer's data."""
    result = await run_cli(env, *args, stdin=stdin, cwd=cwd)
    leaks = find_values("\n".join(result.lines).encode(), demo_personal_values())
    assert not leaks, f"`selfcare {' '.join(args)}` printed {leaks}"
    return result


async def seed_demo(db: Database) -> None:
    """The demo data, seeded in this process (quicker than a subprocess)."""
    await demo.seed(db.uow, Argon2PasswordHasher(), date(2026, 11, 25))


def assert_one_line_error(result: CliResult, code: int, *needles: str) -> str:
    assert result.code == code, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("selfcare: "), line
    for needle in needles:
        assert needle in line, line
    return line


# --- db, demo -------------------------------------------------------------------------------


async def test_db_upgrade_twice_says_the_second_time_it_is_already_there(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    first = await selfcare(cli_env, tmp_path, "db", "upgrade")
    second = await selfcare(cli_env, tmp_path, "db", "upgrade")

    assert first.code == 0, first.stderr
    assert re.fullmatch(r"database upgraded from empty to \S+\n", first.stdout), first.stdout
    assert second.code == 0, second.stderr
    assert re.fullmatch(r"database already at revision \S+\n", second.stdout), second.stdout


async def test_demo_seed_twice_adds_nothing_the_second_time(
    cli_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    first = await selfcare(cli_env, tmp_path, "demo", "seed")
    second = await selfcare(cli_env, tmp_path, "demo", "seed")

    assert first.code == second.code == 0, (first.stderr, second.stderr)
    added = SEEDED.search(first.stdout)
    assert added is not None, first.stdout
    customers, numbers, bills, users = map(int, added.groups())
    assert (customers, users) == (len(demo_customers()), 1)
    assert numbers > customers and bills == 12 * numbers
    again = SEEDED.search(second.stdout)
    assert again is not None and again.groups() == ("0", "0", "0", "0"), second.stdout
    async with db.uow() as uow:
        assert await uow.customers.count() == customers
        assert await uow.users.get_by_user_id("DEMO") is not None


# --- users create -------------------------------------------------------------------------


async def test_users_create_makes_a_user_who_can_sign_in(
    cli_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    await seed_demo(db)

    created = await selfcare(
        cli_env,
        tmp_path,
        *("users", "create", "--user-id", "Somchai.J", "--customer", FIRST_ACCOUNT),
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )

    assert created.code == 0, created.stderr
    assert created.stdout == f"e-service user Somchai.J created for account {FIRST_ACCOUNT}\n"
    assert PASSWORD not in created.stdout + created.stderr
    async with db.uow() as uow:
        user = await uow.users.get_by_user_id("somchai.j")
        customer = await uow.customers.get_by_account_no(FIRST_ACCOUNT)
    assert user is not None and customer is not None
    assert (user.user_id, user.customer_id) == ("Somchai.J", customer.id)
    hasher = Argon2PasswordHasher()
    assert await hasher.verify(user.password_hash, PASSWORD)
    assert not await hasher.verify(user.password_hash, PASSWORD + "x")


@pytest.mark.parametrize(
    ("user_id", "account", "password", "needles"),
    [
        ("DEMO", FIRST_ACCOUNT, PASSWORD, ["DEMO", "taken"]),  # demo's, in other letters
        ("newcomer", "9999999999", PASSWORD, ["no customer", "9999999999"]),
        ("newcomer", FIRST_ACCOUNT, "short", ["at least 8 characters"]),
        ("a b; DROP", FIRST_ACCOUNT, PASSWORD, ["--user-id"]),
    ],
    ids=["duplicate-user-id", "unknown-customer", "short-password", "bad-user-id"],
)
async def test_users_create_refuses_with_one_clear_line(
    cli_env: dict[str, str],
    tmp_path: Path,
    db: Database,
    user_id: str,
    account: str,
    password: str,
    needles: list[str],
) -> None:
    await seed_demo(db)

    refused = await selfcare(
        cli_env,
        tmp_path,
        *("users", "create", "--user-id", user_id, "--customer", account, "--password-stdin"),
        stdin=password + "\n",
    )

    assert_one_line_error(refused, 1, *needles)
    assert refused.stdout == ""
    async with db.uow() as uow:
        assert await uow.users.get_by_user_id("newcomer") is None


# --- settings at the command line ------------------------------------------------------------


def test_help_lists_every_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=True,
    )
    listed = set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]+", result.stdout))
    assert listed == {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def test_a_bad_setting_exits_2_with_one_line_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "keys", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SELFCARE_PORT": "abc"},
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("selfcare: SELFCARE_PORT"), line
    assert list(tmp_path.iterdir()) == []  # it stopped before touching anything


async def test_production_refuses_a_development_keyring(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    keyring = tmp_path / "generated" / "keyring.json"
    env = {**cli_env, "SELFCARE_KEYRING_FILE": str(keyring), "SELFCARE_ENV": "development"}
    assert (await selfcare(env, tmp_path, "db", "upgrade")).code == 0
    assert (await asyncio.to_thread(Keyring.load, keyring)).generated_for_development

    refused = await selfcare({**env, "SELFCARE_ENV": "production"}, tmp_path, "keys", "status")

    assert_one_line_error(refused, 2, "SELFCARE_KEYRING_FILE", "development")


async def test_production_with_no_keyring_exits_2_and_creates_nothing(
    cli_env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    keyring = tmp_path / "absent" / "keyring.json"
    env = {**cli_env, "SELFCARE_KEYRING_FILE": str(keyring), "SELFCARE_ENV": "production"}

    refused = await selfcare(env, tmp_path, "db", "upgrade")

    assert_one_line_error(refused, 2, "SELFCARE_KEYRING_FILE", "does not exist")
    left = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.iterdir()))
    assert left == ["keyring.json"]  # cli_env's own: no new keyring, no database file
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(lambda sync: inspect(sync).get_table_names()) == []
    finally:
        await engine.dispose()


# --- keys ---------------------------------------------------------------------------------


def _key_lines(status: CliResult) -> dict[str, str]:
    return dict(re.findall(r"^  ([0-9a-f]{8})  (.+)$", status.stdout, re.MULTILINE))


async def test_keys_status_rotate_and_retire(
    cli_env: dict[str, str], tmp_path: Path, keyring_path: Path, db: Database
) -> None:
    await seed_demo(db)
    first = (await asyncio.to_thread(Keyring.load, keyring_path)).active_key_id

    status = await selfcare(cli_env, tmp_path, "keys", "status")
    assert status.code == 0 and f"active key: {first}" in status.stdout
    assert _key_lines(status) == {first: "active, in use"}

    # A new key made active by hand: every row is still on the first key.
    second_ring = (await asyncio.to_thread(Keyring.load, keyring_path)).rotated()
    await asyncio.to_thread(second_ring.save, keyring_path)
    second = second_ring.active_key_id
    status = await selfcare(cli_env, tmp_path, "keys", "status")
    assert _key_lines(status) == {first: "old, in use", second: "active, unused"}
    assert "rows still on older keys" in status.stdout

    assert_one_line_error(
        await selfcare(cli_env, tmp_path, "keys", "retire", first), 1, first, "in use"
    )
    assert_one_line_error(
        await selfcare(cli_env, tmp_path, "keys", "retire", second), 1, second, "active"
    )
    assert_one_line_error(
        await selfcare(cli_env, tmp_path, "keys", "retire", "0badc0de"), 1, "0badc0de"
    )

    rotated = await selfcare(cli_env, tmp_path, "keys", "rotate", "--grace", "0")
    assert rotated.code == 0, rotated.stderr
    assert "resuming: " in rotated.stdout and f"active key {second}" in rotated.stdout
    assert f"no row uses {first}" in rotated.stdout

    retired = await selfcare(cli_env, tmp_path, "keys", "retire", first)
    assert retired.code == 0 and retired.stdout == f"key {first} retired\n"
    ring = await asyncio.to_thread(Keyring.load, keyring_path)
    assert set(ring.keys) == {second} and ring.active_key_id == second
    status = await selfcare(cli_env, tmp_path, "keys", "status")
    assert _key_lines(status) == {second: "active, in use"}

    again = await selfcare(
        cli_env, tmp_path, "keys", "rotate", "--grace", "0"
    )  # nothing stale: a new key
    third = (await asyncio.to_thread(Keyring.load, keyring_path)).active_key_id
    assert again.code == 0 and f"new active key {third}" in again.stdout
    assert third not in (first, second)
    db.cipher.use(await asyncio.to_thread(Keyring.load, keyring_path))
    async with db.uow() as uow:
        assert await uow.users.get_by_user_id("demo") is not None


async def test_keys_status_names_keys_the_keyring_lacks(
    cli_env: dict[str, str], tmp_path: Path, keyring_path: Path, db: Database
) -> None:
    await seed_demo(db)
    used = (await asyncio.to_thread(Keyring.load, keyring_path)).active_key_id
    # Another deployment's keyring (or one restored from the wrong backup).
    await asyncio.to_thread(Keyring.generate().save, keyring_path)

    status = await selfcare(cli_env, tmp_path, "keys", "status")

    assert status.code == 1
    assert f"  {used}  NOT IN THIS KEYRING, in use" in status.stdout
    assert "do not rotate" in status.stderr and used in status.stderr
    assert "run `selfcare keys rotate`" not in status.stdout

    rotate = await selfcare(cli_env, tmp_path, "keys", "rotate", "--grace", "0")
    assert_one_line_error(rotate, 1, used, "SELFCARE_KEYRING_FILE")
