"""How fast ``selfcare import customers`` loads a JSON Lines file, and that its memory stays flat.

Run: ``python bench/import.py [--lines 100000] [--small 20000] [--pg-url URL] [--write-docs]``.
Each (engine, size) runs in a subprocess of its own so its peak memory (max RSS) is its own:
the same peak for the small and the large file shows the import streams. Prints Markdown;
``--write-docs`` also writes the import section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION_START = "<!-- bench/import.py: start -->"
SECTION_END = "<!-- bench/import.py: end -->"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BAD_EVERY = 1000  # one bad line in a thousand, as a real export might have


@dataclass(frozen=True)
class Run:
    engine: str
    lines: int
    applied: int
    rejected: int
    seconds: float
    max_rss_mib: float
    file_mib: float

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds


def customer_line(n: int) -> bytes:
    if n % BAD_EVERY == 0:
        return b'{"account_no": "12", "name": 5}'
    return json.dumps(
        {
            "account_no": f"{5_000_000_000 + n}",
            "name": f"นางสาวทดสอบ นำเข้า{n}",
            "address": f"{n}/1 ซอยสุขุมวิท 63 แขวงคลองตันเหนือ เขตวัฒนา กรุงเทพมหานคร 10110",
            "phone": f"06{n:08d}",
            "email": f"import.{n}@example.co.th",
            "national_id": f"{1_100_000_000_000 + n}",
            "language": "th",
            "service_accounts": [{"number": f"06{n:08d}", "kind": "mobile", "plan": "เน็ต 599"}],
        },
        ensure_ascii=False,
    ).encode()


def write_file(path: Path, lines: int) -> None:
    with path.open("wb") as out:
        for n in range(1, lines + 1):
            out.write(customer_line(n) + b"\n")


async def _import(url: str, path: Path, batch_size: int) -> tuple[int, int, float]:
    from bot.bootstrap import SystemClock
    from bot.imports import import_file
    from storage import migrate
    from storage.crypto import FieldCipher, Keyring
    from storage.uow import Database

    await migrate.upgrade(url)
    db = Database.connect(url, FieldCipher(Keyring.generate()))
    try:
        start = time.perf_counter()
        report = await import_file(
            db, "customers", path, clock=SystemClock(), batch_size=batch_size
        )
        seconds = time.perf_counter() - start
    finally:
        await db.dispose()
    return report.applied, report.rejected, seconds


def one_run(engine: str, url: str, lines: int, batch_size: int) -> Run:
    """In this (fresh) process: write the file, import it, report."""
    with tempfile.TemporaryDirectory(prefix="selfcare-import-") as folder:
        path = Path(folder) / "customers.jsonl"
        write_file(path, lines)
        if engine == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        applied, rejected, seconds = asyncio.run(_import(url, path, batch_size))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return Run(
            engine=engine,
            lines=lines,
            applied=applied,
            rejected=rejected,
            seconds=seconds,
            max_rss_mib=rss / 1024,
            file_mib=path.stat().st_size / 2**20,
        )


async def _pg(pg_url: str, sql: str) -> str:
    from sqlalchemy import text

    from storage.db import create_engine

    engine = create_engine(pg_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(sql))
            return str(result.scalar()) if result.returns_rows else ""
    finally:
        await engine.dispose()


def _in_subprocess(engine: str, url: str, lines: int, batch_size: int) -> Run:
    out = subprocess.run(
        [sys.executable, __file__, "--one", engine, url, str(lines), str(batch_size)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Run(**json.loads(out.strip().splitlines()[-1]))


def table(runs: list[Run]) -> str:
    rows = [
        "| engine | lines | file | imported | refused | time | lines/s | peak memory (RSS) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        rows.append(
            f"| {r.engine} | {r.lines:,} | {r.file_mib:.0f} MiB | {r.applied:,} | {r.rejected:,} "
            f"| {r.seconds:.1f} s | {r.lines_per_second:,.0f} | {r.max_rss_mib:.0f} MiB |"
        )
    return "\n".join(rows)


def docs_section(runs: list[Run], machine: dict[str, str], command: str, batch: int) -> str:
    facts = "\n".join(f"- {k}: {v}" for k, v in machine.items())
    return f"""{SECTION_START}
## Bulk import (`bench/import.py`)

{facts}

Reproduce: `{command}`. PostgreSQL comes from `--pg-url` or `SELFCARE_TEST_PG_URL`, in a
schema the run creates and drops.

`selfcare import customers FILE.jsonl` (`bot.imports.import_file`) on a generated file: each
line a full `customer.upserted` record (name, address, phone, email and national id, all
encrypted, with three blind indexes, and one service number, encrypted and indexed), one
line in {BAD_EVERY:,} invalid (reported by number and skipped). Batches of {batch:,} lines,
each one transaction that also stores the resume checkpoint. Every run is a fresh process
and a fresh database, so the peak memory is the run's own: the same peak for both file
sizes is what streaming means.

{table(runs)}
{SECTION_END}
"""


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace the import section of ``path`` (or add it), keeping the others' sections."""
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
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the large file")
    parser.add_argument("--small", type=int, default=20_000, help="lines of the small file")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SELFCARE_TEST_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL to measure on ('' to skip it)",
    )
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS}")
    parser.add_argument(
        "--one", nargs=4, metavar=("ENGINE", "URL", "LINES", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    if args.one:
        engine, url, lines, batch = args.one
        print(json.dumps(asdict(one_run(engine, url, int(lines), int(batch)))))
        return

    load_before = os.getloadavg()[0]
    machine = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": f"{sqlite3.sqlite_version} (WAL, synchronous=NORMAL), local disk",
    }
    runs: list[Run] = []
    for lines in (args.small, args.lines):
        runs.append(_in_subprocess("sqlite", "", lines, args.batch_size))
        print(table(runs[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    if args.pg_url:
        from sqlalchemy.engine import make_url

        machine["PostgreSQL"] = (
            asyncio.run(_pg(args.pg_url, "SHOW server_version")) + " on the same machine"
        )
        for lines in (args.small, args.lines):
            schema = f"bench_{secrets.token_hex(4)}"
            asyncio.run(_pg(args.pg_url, f"CREATE SCHEMA {schema}"))
            try:
                url = make_url(args.pg_url).update_query_dict({"search_path": schema})
                runs.append(
                    _in_subprocess(
                        "postgresql",
                        url.render_as_string(hide_password=False),
                        lines,
                        args.batch_size,
                    )
                )
                print(table(runs[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            finally:
                asyncio.run(_pg(args.pg_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    machine["load average (1 min)"] = (
        f"{load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
        "(other work on the machine slows a run down)"
    )
    print(table(runs))
    if args.write_docs:
        command = (
            f"python bench/import.py --lines {args.lines} --small {args.small} "
            f"--batch-size {args.batch_size} --write-docs"
        )
        write_docs(docs_section(runs, machine, command, args.batch_size))
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
