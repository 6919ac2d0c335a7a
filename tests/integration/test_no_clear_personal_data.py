"""After ``selfcare demo seed``, no demo customer's personal data sits in clear anywhere in
the database: not in the SQLite files (WAL included), not in a ``pg_dump`` of the schema."""

from __future__ import annotations

from pathlib import Path

from bot.demo import DEMO_PASSWORD, demo_customers
from storage.uow import Database
from tests.integration.privacy_support import raw_dump
from tests.integration.support import demo_personal_values, find_values, run_cli


def assert_no_clear_values(blob: bytes, where: str) -> None:
    values = {**demo_personal_values(), "demo password": DEMO_PASSWORD}
    leaks = find_values(blob, values)
    assert not leaks, f"personal data in clear in {where}: {leaks}"


async def _seed(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = await run_cli(cli_env, "demo", "seed", cwd=tmp_path)
    assert result.code == 0, result.stderr


async def _assert_seeded(db: Database) -> None:
    """The search above means something only if the data is really there."""
    customer = demo_customers()[0][0]
    async with db.uow() as uow:
        assert await uow.customers.count() == len(demo_customers())
        found = await uow.customers.find_by_phone(customer.phone)
    assert found is not None and found.name == customer.name


def test_the_search_covers_every_value_of_every_demo_customer() -> None:
    customers = demo_customers()
    values = demo_personal_values()
    assert len(customers) >= 20
    assert sum(k.endswith(": national id") for k in values) == len(customers)
    assert all(v.isascii() for k, v in values.items() if "phone" in k or "email" in k)
    # The search itself finds a planted value, in either encoding.
    some = values["customer 3: address"]
    assert_no_clear_values(b"nothing here", "a clean blob")
    for encoding in ("utf-8", "utf-16-le"):
        try:
            assert_no_clear_values(b"x" + some.encode(encoding) + b"y", "a planted blob")
        except AssertionError as exc:
            assert "customer 3: address" in str(exc) and some not in str(exc)
        else:
            raise AssertionError("a planted address went unnoticed")


async def test_demo_seed_leaves_no_personal_value_in_clear(
    db: Database, database_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await _seed(cli_env, tmp_path)

    blob = await raw_dump(db, database_url)  # the SQLite files (WAL too), or pg_dump
    if db.engine.dialect.name == "sqlite":
        where = "the SQLite files"
    else:
        where = "pg_dump output"
        assert b"COPY " in blob and b"customers" in blob

    assert len(blob) > 50_000
    assert_no_clear_values(blob, where)
    await _assert_seeded(db)
