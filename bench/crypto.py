"""How much encryption at rest costs: per field, per lookup, per password, and for a
whole key rotation (``selfcare keys rotate``) over a realistic customer table.

Run: ``python bench/crypto.py [--n 20000] [--customers 100000] [--pg-url URL] [--write-docs]``.
Prints Markdown; ``--write-docs`` also writes the crypto section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from core.domain import Customer, ServiceAccount, ServiceKind, new_id
from storage import migrate, rotation
from storage.crypto import Argon2PasswordHasher, FieldCipher, Keyring, normalise_phone
from storage.db import create_engine
from storage.uow import Database

# Typical values: a Thai full name and a Thai postal address of about 120 characters.
THAI_NAME = "นางสาวสมหญิง ใจดีมีสุข"
THAI_ADDRESS = (
    "99/123 หมู่บ้านสุขสันต์ ซอยลาดพร้าว 101 ถนนลาดพร้าว แขวงคลองจั่น "
    "เขตบางกะปิ กรุงเทพมหานคร 10240 อาคารเอ ชั้น 5 ห้อง 501"
)
PHONE = "+66 81 234 5678"
ARGON2_ROUNDS = 10


def _micros_per_call(n: int, call: Callable[[], object]) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


async def _argon2_hash_ms(rounds: int) -> float:
    hasher = Argon2PasswordHasher()
    await hasher.hash("warm-up")
    start = time.perf_counter()
    for _ in range(rounds):
        await hasher.hash("demo-1234")
    return (time.perf_counter() - start) / rounds * 1e3


def measure_fields(n: int) -> dict[str, float]:
    """Return the cost of one field operation, each measured over ``n`` calls.

    Keys ending in ``_us`` are microseconds per call, ``_ms`` milliseconds per call.
    """
    cipher = FieldCipher(Keyring.generate())
    where = {"table": "customers", "row_id": "3f1c2a9e-5b7d-4c11-9e0a-7d2b6f8e1a44"}
    name_token = cipher.encrypt(THAI_NAME, column="full_name", **where)
    address_token = cipher.encrypt(THAI_ADDRESS, column="address", **where)
    phone = normalise_phone(PHONE)
    cipher.blind_index("phone", phone)  # derive and cache the per-field key first

    return {
        "encrypt_name_us": _micros_per_call(
            n, lambda: cipher.encrypt(THAI_NAME, column="full_name", **where)
        ),
        "decrypt_name_us": _micros_per_call(
            n, lambda: cipher.decrypt(name_token, column="full_name", **where)
        ),
        "encrypt_address_us": _micros_per_call(
            n, lambda: cipher.encrypt(THAI_ADDRESS, column="address", **where)
        ),
        "decrypt_address_us": _micros_per_call(
            n, lambda: cipher.decrypt(address_token, column="address", **where)
        ),
        "blind_index_us": _micros_per_call(n, lambda: cipher.blind_index("phone", phone)),
        "argon2_hash_ms": asyncio.run(_argon2_hash_ms(ARGON2_ROUNDS)),
    }


LABELS = {
    "encrypt_name_us": ("encrypt Thai name", "µs"),
    "decrypt_name_us": ("decrypt Thai name", "µs"),
    "encrypt_address_us": (f"encrypt address ({len(THAI_ADDRESS)} chars)", "µs"),
    "decrypt_address_us": (f"decrypt address ({len(THAI_ADDRESS)} chars)", "µs"),
    "blind_index_us": ("blind index (phone)", "µs"),
    "argon2_hash_ms": ("argon2id hash (m=19456, t=2, p=1)", "ms"),
}


# --- key rotation --------------------------------------------------------------------------

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
FILL_TRANSACTION = 2_000  # customers per transaction while filling the table
_GIVEN = ["สมชาย", "สมศรี", "วิชัย", "มาลี", "ประเสริฐ", "กาญจนา", "อนุชา", "พรทิพย์"]
_FAMILY = ["ใจดี", "รักไทย", "ศรีสุข", "แก้วมณี", "บุญมา", "ทองคำ", "วงศ์สวัสดิ์", "มั่นคง"]


@dataclass(frozen=True)
class RotationResult:
    engine: str
    customers: int
    rows: int  # rows rewritten: customers + service accounts
    values: int  # ciphertexts re-encrypted
    fill_s: float
    rotate_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.rotate_s

    @property
    def values_per_s(self) -> float:
        return self.values / self.rotate_s


def _customer(i: int, rng: random.Random) -> tuple[Customer, ServiceAccount]:
    customer = Customer(
        id=new_id(),
        account_no=f"{3_000_000_000 + i}",
        name=f"{rng.choice(_GIVEN)} {rng.choice(_FAMILY)}",
        address=f"{i % 300}/{i % 97} " + THAI_ADDRESS.split(" ", 1)[1],
        phone=f"08{i:08d}",
        email=f"customer{i}@example.co.th",
        national_id=f"{1_000_000_000_000 + i * 7}",
    )
    number = ServiceAccount(new_id(), customer.id, customer.phone, ServiceKind.MOBILE, "599")
    return customer, number


async def _fill(db: Database, customers: int) -> None:
    """Insert ``customers`` customers and one number each through the repositories (so
    every ciphertext and blind index is exactly what the service writes)."""
    rng = random.Random(2569)
    for start in range(0, customers, FILL_TRANSACTION):
        async with db.uow() as uow:
            for i in range(start, min(start + FILL_TRANSACTION, customers)):
                customer, number = _customer(i, rng)
                await uow.customers.add(customer)
                await uow.customers.add_service_account(number)
            await uow.commit()


async def _check_sample(db: Database, customers: int) -> None:
    """Every 1000th customer reads back and is found by phone (raises RuntimeError)."""
    rng = random.Random(2569)
    expected = [_customer(i, rng)[0] for i in range(customers)]
    async with db.uow() as uow:
        for want in expected[::1000]:
            got = await uow.customers.find_by_phone(want.phone)
            fields = None if got is None else (got.name, got.address, got.email, got.national_id)
            if fields != (want.name, want.address, want.email, want.national_id):
                raise RuntimeError(f"customer {want.account_no} does not read back after rotation")


async def measure_rotation(
    url: str, customers: int = 100_000, *, batch_size: int = 500
) -> RotationResult:
    """Fill an empty, migrated database at ``url`` with ``customers`` customers (one number
    each), then time ``storage.rotation.reencrypt_all`` re-encrypting all of it under a
    new key. Checks afterwards that nothing is left on the old key and a sample reads."""
    cipher = FieldCipher(Keyring.generate())
    await migrate.upgrade(url)
    db = Database.connect(url, cipher)
    try:
        start = time.perf_counter()
        await _fill(db, customers)
        fill_s = time.perf_counter() - start
        old_key = cipher.keyring.active_key_id
        cipher.use(cipher.keyring.rotated())
        stale = await rotation.count_stale(db.engine, cipher)
        start = time.perf_counter()
        rows = await rotation.reencrypt_all(db.engine, cipher, batch_size=batch_size)
        rotate_s = time.perf_counter() - start
        if not rows == sum(stale.values()) == 2 * customers:
            raise RuntimeError(f"rewrote {rows} rows, expected {2 * customers}: {stale}")
        if await rotation.keys_in_use(db.engine) != {cipher.keyring.active_key_id}:
            raise RuntimeError("values left on the old key after the rotation")
        cipher.use(cipher.keyring.without(old_key))
        await _check_sample(db, customers)
    finally:
        await db.dispose()
    print(
        f"{db.engine.dialect.name}: {customers:,} customers filled in {fill_s:.1f} s, "
        f"rotated in {rotate_s:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    # Per customer: name, address, phone, email, national id; per number: the number.
    return RotationResult(
        engine=db.engine.dialect.name,
        customers=customers,
        rows=rows,
        values=6 * customers,
        fill_s=fill_s,
        rotate_s=rotate_s,
    )


async def _in_fresh_pg_schema(pg_url: str, customers: int, batch_size: int) -> RotationResult:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(pg_url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = make_url(pg_url).update_query_dict({"search_path": schema})
        return await measure_rotation(
            url.render_as_string(hide_password=False), customers, batch_size=batch_size
        )
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        await admin.dispose()


async def _pg_version(pg_url: str) -> str:
    engine = create_engine(pg_url)
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SHOW server_version"))).scalar_one())
    finally:
        await engine.dispose()


# --- report ------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION_START = "<!-- bench/crypto.py: start -->"
SECTION_END = "<!-- bench/crypto.py: end -->"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fields_table(results: dict[str, float]) -> str:
    lines = ["| operation | time |", "| --- | ---: |"]
    for key, value in results.items():
        label, unit = LABELS.get(key, (key, ""))
        lines.append(f"| {label} | {value:.1f} {unit} |")
    return "\n".join(lines)


def rotation_table(results: list[RotationResult], batch_size: int) -> str:
    lines = [
        f"| engine | customers | rows rewritten | values | fill | rotation (batch {batch_size})"
        " | rows/s | values/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.engine} | {r.customers:,} | {r.rows:,} | {r.values:,} | {r.fill_s:.1f} s "
            f"| {r.rotate_s:.1f} s | {r.rows_per_s:,.0f} | {r.values_per_s:,.0f} |"
        )
    return "\n".join(lines)


def _reading(fields: dict[str, float], results: list[RotationResult]) -> str:
    """Where a rotation's time goes, in two sentences computed from the figures."""
    if not results:
        return ""
    value_us = (
        fields["encrypt_name_us"]
        + fields["decrypt_name_us"]
        + fields["encrypt_address_us"]
        + fields["decrypt_address_us"]
    ) / 2
    slowest = min(results, key=lambda r: r.rows_per_s)
    crypto_s = slowest.values * value_us / 1e6
    per_row_ms = (slowest.rotate_s - crypto_s) / slowest.rows * 1e3
    million_min = 2_000_000 / slowest.rows_per_s / 60
    return (
        f"Where the time goes: re-encrypting one value costs about {value_us:.0f} µs of "
        f"AES-GCM (decrypt + encrypt), so the {slowest.values:,} values above need about "
        f"{crypto_s:.1f} s of cryptography; the rest of the {slowest.rotate_s:.0f} s "
        f"({slowest.engine}) is one guarded UPDATE per row, about {per_row_ms:.2f} ms each "
        "through SQLAlchemy and the driver. At that rate a million customers (two million "
        f"rows) take about {million_min:.0f} minutes, while the service keeps serving.\n"
    )


def docs_section(
    fields: dict[str, float],
    results: list[RotationResult],
    batch_size: int,
    machine: dict[str, str],
    command: str,
) -> str:
    facts = "\n".join(f"- {k}: {v}" for k, v in machine.items())
    return f"""{SECTION_START}
## Encryption at rest (`bench/crypto.py`)

{facts}

Reproduce: `{command}` (or `make bench`). PostgreSQL comes from `--pg-url` or
`SELFCARE_TEST_PG_URL` (default: the local test database), in a schema the run creates and
drops; `--pg-url ''` skips it.

### Per field

One AES-256-GCM operation on a typical value, a blind-index HMAC, and one argon2id
password hash (run off the event loop in the service).

{fields_table(fields)}

### Key rotation (`selfcare keys rotate`)

`storage.rotation.reencrypt_all` over a `customers` table (name, address, phone, email and
national id encrypted) with one service account each (the number encrypted), filled through
the repositories. A row is one customer or one service account; a value is one ciphertext.
The rotation runs while the service could keep serving: each batch is its own short
transaction, and every row update is guarded by the ciphertext it read. The check after it:
nothing left on the old key, the old key retired, a sample read back and found by phone.

{rotation_table(results, batch_size)}

{_reading(fields, results)}{SECTION_END}
"""


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace the crypto section of ``path`` (or add it), keeping other benchmarks' sections."""
    path.parent.mkdir(parents=True, exist_ok=True)
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if SECTION_START in current and SECTION_END in current:
        before, rest = current.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1]
        updated = before + section.rstrip("\n") + after
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    path.write_text(updated, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20_000, help="calls per field measurement")
    parser.add_argument(
        "--customers", type=int, default=100_000, help="customers in the rotation benchmark"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="rotation batch size")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SELFCARE_TEST_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL to measure on, in a schema made for the run and dropped after "
        "('' to skip PostgreSQL)",
    )
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS}")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    field_results = measure_fields(args.n)
    print(fields_table(field_results), flush=True)

    results: list[RotationResult] = []
    machine = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({_cpu_model()}), {platform.system()} "
        f"{platform.release()}",
        "Python": platform.python_version(),
    }
    if not args.skip_sqlite:
        machine["SQLite"] = f"{sqlite3.sqlite_version} (WAL, synchronous=NORMAL), local disk"
        with tempfile.TemporaryDirectory(prefix="selfcare-bench-") as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            results.append(
                asyncio.run(measure_rotation(url, args.customers, batch_size=args.batch_size))
            )
    if args.pg_url:
        machine["PostgreSQL"] = asyncio.run(_pg_version(args.pg_url)) + " on the same machine"
        results.append(
            asyncio.run(_in_fresh_pg_schema(args.pg_url, args.customers, args.batch_size))
        )
    # Other work on the machine slows a run down: say how busy it was.
    machine["load average (1 min)"] = (
        f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    rotations = rotation_table(results, args.batch_size)
    print(rotations)

    if args.write_docs:
        command = (
            f"python bench/crypto.py --customers {args.customers} --batch-size {args.batch_size}"
            " --write-docs"
        )
        section = docs_section(field_results, results, args.batch_size, machine, command)
        write_docs(section)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
