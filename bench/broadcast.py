"""How fast the campaign sender goes: 100,000 opted-in recipients against a stub Telegram
Bot API, first with the rate limit off (messages per second, the worker's peak memory),
then with Telegram's 30 messages a second on (the rate achieved over a minute).

Run: ``python bench/broadcast.py [--recipients 100000] [--pg-url URL | --sqlite]
[--minute 60] [--write-docs]``. The worker is the real one (``selfcare broadcast run``, a
subprocess, PTB talking HTTP to the stub); the database is PostgreSQL by default, in a
schema the run creates and drops. ``--write-docs`` writes the broadcast section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import platform
import re
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from sqlalchemy import insert, text

from bot.bootstrap import SystemClock
from bot.broadcast import BroadcastSettings
from core.domain import ConsentPurpose, new_id
from core.services.campaigns import CampaignDraft, CampaignService
from storage import migrate
from storage import tables as t
from storage.crypto import FieldCipher, Keyring
from storage.uow import Database

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION_START = "<!-- bench/broadcast.py: start -->"
SECTION_END = "<!-- bench/broadcast.py: end -->"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TOKEN = "123456:BENCH-token"
FAKE_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"
CHAT_ID = re.compile(rb"(?:^|&)chat_id=([^&]*)")
SEED_CHUNK = 5000
LOAD_AT_START = os.getloadavg()[0]


# --- a stub Bot API that costs the worker as little as possible --------------------------------


class StubTelegram:
    """Answers every sendMessage with a message; records when each arrived, for whom."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.per_chat: Counter[bytes] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._body = (
            b'{"ok":true,"result":{"message_id":1,"date":1764000000,'
            b'"chat":{"id":1,"type":"private"},"text":"x"}}'
        )

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        found = CHAT_ID.search(body)
        self.per_chat[found.group(1) if found else b"?"] += 1
        self.arrivals.append(time.monotonic())
        return web.Response(body=self._body, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/bot"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def reset(self) -> None:
        self.arrivals.clear()
        self.per_chat.clear()


# --- the audience ------------------------------------------------------------------------------


async def seed(db: Database, cipher: FieldCipher, count: int) -> float:
    """``count`` customers, each with an e-service user, a Telegram chat and marketing
    consent, in bulk; returns the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        for first in range(0, count, SEED_CHUNK):
            customers, users, links, consents = [], [], [], []
            for n in range(first, min(first + SEED_CHUNK, count)):
                cid, uid = new_id(), new_id()
                phone = f"09{n:08d}"
                customers.append(
                    {
                        "id": cid,
                        "account_no": f"9{n:09d}",
                        "name_enc": cipher.encrypt(
                            f"ลูกค้าทดสอบ หมายเลข{n}", table="customers", column="name", row_id=cid
                        ),
                        "address_enc": cipher.encrypt(
                            f"{n} ถนนพหลโยธิน กรุงเทพฯ 10400",
                            table="customers",
                            column="address",
                            row_id=cid,
                        ),
                        "phone_enc": cipher.encrypt(
                            phone, table="customers", column="phone", row_id=cid
                        ),
                        "phone_bidx": cipher.blind_index("phone", phone),
                        "language": "th" if n % 3 else "en",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                users.append(
                    {
                        "id": uid,
                        "customer_id": cid,
                        "user_id_enc": cipher.encrypt(
                            f"bench{n}", table="eservice_users", column="user_id", row_id=uid
                        ),
                        "user_id_bidx": cipher.blind_index("user_id", f"bench{n}"),
                        "password_hash": FAKE_HASH,
                        "created_at": now,
                    }
                )
                links.append(
                    {
                        "channel": "telegram",
                        "chat_id": str(8_000_000_000 + n),
                        "eservice_user_id": uid,
                        "customer_id": cid,
                        "linked_at": now,
                    }
                )
                consents.append(
                    {
                        "customer_id": cid,
                        "purpose": ConsentPurpose.MARKETING.value,
                        "granted": True,
                        "notice_version": "2026-11-1",
                        "channel": "telegram",
                        "recorded_at": now,
                    }
                )
            await conn.execute(insert(t.customers), customers)
            await conn.execute(insert(t.eservice_users), users)
            await conn.execute(insert(t.chat_links), links)
            await conn.execute(insert(t.consent_ledger), consents)
    return time.perf_counter() - started


async def new_campaign(db: Database, title: str) -> str:
    clock = SystemClock()
    service = CampaignService(db.uow, clock)
    draft = CampaignDraft.from_mapping(
        {
            "title": title,
            "text_th": "เน็ตไม่อั้น 30 วัน ลด 50% 🎉 เฉพาะลูกค้าที่สมัครรับข่าวสาร",
            "text_en": "Unlimited data for 30 days, 50% off 🎉 for subscribers only",
            "link_url": "https://example.co.th/promo",
            "link_label_th": "ดูรายละเอียด",
            "link_label_en": "Details",
        }
    )
    campaign = await service.create(draft, actor="bench")
    await service.schedule(campaign.id, actor="bench")
    return campaign.id


# --- the worker ----------------------------------------------------------------------------------


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class WorkerRun:
    started: float
    ended: float
    peak_rss_kib: int


async def run_worker(
    env: dict[str, str], *, until_idle: bool, stop_after: float | None = None
) -> WorkerRun:
    args = [sys.executable, "-m", "bot", "broadcast", "run", "--poll", "0.2"]
    if until_idle:
        args.append("--until-idle")
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL
    )
    peak = 0
    while proc.returncode is None:
        peak = max(peak, await asyncio.to_thread(_hwm_kib, proc.pid))
        if stop_after is not None and time.monotonic() - started > stop_after:
            proc.send_signal(signal.SIGTERM)
            stop_after = None
        try:
            await asyncio.wait_for(proc.wait(), 0.5)
        except TimeoutError:
            pass
    if proc.returncode != 0:
        raise SystemExit(f"the worker exited with {proc.returncode}")
    return WorkerRun(started, time.monotonic(), peak)


def worker_env(
    database_url: str, keyring: Path, stub_url: str, per_second: float
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCARE_")}
    env.update(
        SELFCARE_ENV="test",
        SELFCARE_DATABASE_URL=database_url,
        SELFCARE_KEYRING_FILE=str(keyring),
        SELFCARE_TELEGRAM_TOKEN=TOKEN,
        SELFCARE_TELEGRAM_API_URL=stub_url,
        SELFCARE_BROADCAST_TELEGRAM_PER_SECOND=str(per_second),
        SELFCARE_PROMOTIONS_PER_DAY_CAP="100",
        SELFCARE_LOG_LEVEL="WARNING",
    )
    return env


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Unlimited:
    recipients: int
    delivered: int
    duplicates: int
    to_first_s: float  # worker start → first message (start-up and the audience built)
    sending_s: float  # first → last message
    total_s: float  # worker start → worker done
    peak_rss_mib: float

    @property
    def per_second(self) -> float:
        return self.delivered / self.sending_s if self.sending_s else 0.0


@dataclass
class Limited:
    limit: float
    window_s: float
    in_window: int
    max_in_any_second: int
    peak_rss_mib: float

    @property
    def per_second(self) -> float:
        return self.in_window / self.window_s


def max_in_any_second(times: list[float]) -> int:
    best = 0
    for i, start in enumerate(times):
        best = max(best, bisect.bisect_left(times, start + 1.0, lo=i) - i)
    return best


async def bench(args: argparse.Namespace) -> tuple[Unlimited, Limited, str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="selfcare-bench-"))
    keyring_path = workdir / "keyring.json"
    keyring = Keyring.generate(for_development=True)
    await asyncio.to_thread(keyring.save, keyring_path)
    cipher = FieldCipher(keyring)
    schema = ""
    if args.sqlite:
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        engine_name = "SQLite (WAL)"
    else:
        schema = f"bench_{secrets.token_hex(4)}"
        url = f"{args.pg_url}?search_path={schema}"
        engine_name = "PostgreSQL"
        admin = Database.connect(args.pg_url, cipher)
        async with admin.engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await admin.dispose()
    await migrate.upgrade(url)
    db = Database.connect(url, cipher)
    stub = StubTelegram()
    await stub.start()
    try:
        seed_s = await seed(db, cipher, args.recipients)
        print(f"seeded {args.recipients:,} recipients in {seed_s:.1f} s", file=sys.stderr)

        await new_campaign(db, "bench: limits off")
        run = await run_worker(worker_env(url, keyring_path, stub.url, 0), until_idle=True)
        arrivals = list(stub.arrivals)
        unlimited = Unlimited(
            recipients=args.recipients,
            delivered=len(arrivals),
            duplicates=sum(n - 1 for n in stub.per_chat.values() if n > 1),
            to_first_s=arrivals[0] - run.started if arrivals else 0.0,
            sending_s=arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0,
            total_s=run.ended - run.started,
            peak_rss_mib=run.peak_rss_kib / 1024,
        )
        print(unlimited, file=sys.stderr)

        stub.reset()
        campaign_id = await new_campaign(db, "bench: 30 per second")
        lead_in = 15.0  # start-up and building 100,000 rows happen before the minute
        run = await run_worker(
            worker_env(url, keyring_path, stub.url, 30),
            until_idle=False,
            stop_after=lead_in + args.minute + 5,
        )
        times = sorted(stub.arrivals)
        start = times[0] if times else 0.0
        window = [x for x in times if start <= x < start + args.minute]
        limited = Limited(
            limit=30,
            window_s=args.minute,
            in_window=len(window),
            max_in_any_second=max_in_any_second(times),
            peak_rss_mib=run.peak_rss_kib / 1024,
        )
        print(limited, file=sys.stderr)
        await CampaignService(db.uow, SystemClock()).cancel(campaign_id, actor="bench")
        version = ""
        async with db.engine.connect() as conn:
            if not args.sqlite:
                version = (await conn.execute(text("SHOW server_version"))).scalar_one()
        return unlimited, limited, f"{engine_name} {version}".strip(), seed_s
    finally:
        await stub.close()
        await db.dispose()
        if schema:
            admin = Database.connect(args.pg_url, cipher)
            async with admin.engine.begin() as conn:
                await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            await admin.dispose()


# --- report ------------------------------------------------------------------------------------


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def section(unlimited: Unlimited, limited: Limited, engine: str, args: argparse.Namespace) -> str:
    u, lim = unlimited, limited
    flag = " --sqlite" if args.sqlite else ""
    command = (
        f"python bench/broadcast.py --recipients {u.recipients} "
        f"--minute {lim.window_s:.0f}{flag} --write-docs"
    )
    off_head = (
        "| run | recipients | delivered | twice | start → first message | sending "
        "| messages/s | worker peak RSS |"
    )
    off_row = (
        f"| limits off | {u.recipients:,} | {u.delivered:,} | {u.duplicates} "
        f"| {u.to_first_s:.1f} s | {u.sending_s:.1f} s | {u.per_second:,.0f} "
        f"| {u.peak_rss_mib:.0f} MiB |"
    )
    on_head = (
        "| run | limit | window | messages in it | achieved rate | most in any 1 s "
        "| worker peak RSS |"
    )
    on_row = (
        f"| Telegram limit on | {lim.limit:.0f}/s | {lim.window_s:.0f} s | {lim.in_window:,} "
        f"| {lim.per_second:.1f}/s | {lim.max_in_any_second} | {lim.peak_rss_mib:.0f} MiB |"
    )
    return f"""{SECTION_START}
## Broadcasts (`bench/broadcast.py`)

- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- machine: {os.cpu_count()} CPUs ({_cpu()}), {platform.system()} {platform.release()}
- Python: {platform.python_version()}; database: {engine} on the same machine
- load average when it started: {LOAD_AT_START:.1f} (other work shared the machine)
- the worker: `selfcare broadcast run` in its own process (python-telegram-bot over HTTP,
  {BroadcastSettings().concurrency} requests in flight, the next claim made while one is
  being sent); the stub Bot API runs in the benchmark's process and answers at once

Reproduce: `{command}`.

Every recipient is a customer with a linked Telegram chat and marketing consent granted;
each message is rechecked against the consent ledger, the chat link, reachability and the
daily cap right before it goes (rows are claimed a batch at a time with
`FOR UPDATE SKIP LOCKED`, and marked `sending` in one commit per moment before they go).

{off_head}
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{off_row}

"start → first message" is the worker's start-up plus building the campaign's 100,000
recipient rows in one `INSERT … SELECT`.

{on_head}
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{on_row}

With the limit on, the worker launches messages at least 1/30 s apart; "most in any 1 s"
is counted where they arrive, so jitter at a window's edges can show one more than 30.
Workers share one pace through the database (each claim reserves its sending slots), so
adding workers does not add Telegram traffic; at 30/s, 100,000
recipients take about {u.recipients / 30 / 3600:.1f} hours.
{SECTION_END}
"""


def write_docs(text_: str, path: Path = DOCS) -> None:
    """Replace this benchmark's section of ``path`` (or add it), keeping the others'."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if SECTION_START in current and SECTION_END in current:
        before, rest = current.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1]
        updated = before + text_.rstrip("\n") + after
    else:
        updated = current.rstrip("\n") + "\n\n" + text_
    path.write_text(updated, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--minute", type=float, default=60.0, help="the limited run's window")
    parser.add_argument("--pg-url", default=os.environ.get("SELFCARE_TEST_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--sqlite", action="store_true", help="measure on SQLite instead")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS}")
    args = parser.parse_args()
    unlimited, limited, engine, _ = asyncio.run(bench(args))
    report = section(unlimited, limited, engine, args)
    print(report)
    if args.write_docs:
        write_docs(report)


if __name__ == "__main__":
    main()
