"""Webhook throughput: Telegram turns per second and latency of ``selfcare serve``.

Realistic Telegram updates (``/start``, the bill button, "จ่ายบิล" typed, the menu
button) from many chats, each chat one update after another, ``--concurrency`` chats at
a time (Telegram's default ``max_connections`` is 40), over HTTPS, against:

- a bare aiohttp handler that answers 200 (the floor: TLS, HTTP and JSON only);
- python-telegram-bot's own webhook server (tornado) running an echo bot;
- ``selfcare serve`` on PostgreSQL (secret check, PTB parsing, inbox, per-chat lock,
  flow, encrypted state and outbox in one transaction, answer, then the replies sent in
  the background), with ``selfcare worker`` beside it; one process, then two (or the
  web × worker layouts given with ``--layouts``, e.g. ``1x1,2x1,2x2``).

All of them send their replies to the same stub Bot API (its own process). Telegram's
send pacing is lifted for the stub: this measures our processing, not Telegram's limit.
A turn's latency is the platform's view: from posting the update to the 200.

Run: ``python bench/webhook.py [--chats 150] [--concurrency 40] [--layouts 1x1,2x1]
[--write-docs]``
(PostgreSQL from ``SELFCARE_BENCH_PG_URL``, default the test database). About 2 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get(
    "SELFCARE_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TOKEN = "123456:BENCH-token"
SECRET = "bench-secret-token"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Webhook throughput (`bench/webhook.py`)"
WARM_UP_CHATS = 10


# --- the stub Bot API (its own process) ------------------------------------------------------


def run_stub(port: int) -> None:
    """Answer every Bot API method like Telegram, counting sends."""
    counts: dict[str, int] = {}

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        form = await request.post()
        counts[method] = counts.get(method, 0) + 1
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            chat = str(form.get("chat_id", "0"))
            return web.json_response(
                {
                    "ok": True,
                    "result": {
                        "message_id": counts[method],
                        "date": int(time.time()),
                        "chat": {"id": int(chat), "type": "private"},
                        "text": str(form.get("text", "")),
                    },
                }
            )
        if method == "getMe":
            return web.json_response(
                {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Bench"}}
            )
        return web.json_response({"ok": True, "result": True})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", handle)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- the baselines (their own processes) -------------------------------------------------------


def run_bare(port: int, cert: str, key: str) -> None:
    """An aiohttp handler that answers 200 (it does read the body)."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_post("/webhooks/telegram", handle)
    app.router.add_get("/healthz", lambda request: web.json_response({"ok": True}))  # type: ignore[arg-type,return-value]
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, print=None, access_log=None)


def run_ptb_echo(port: int, cert: str, key: str, stub_url: str) -> None:
    """python-telegram-bot's webhook server with an echo bot (callbacks answered)."""
    from telegram import Update
    from telegram.ext import (
        Application,
        CallbackQueryHandler,
        ContextTypes,
        MessageHandler,
        filters,
    )

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer()
        await context.bot.send_message(update.callback_query.from_user.id, "pressed")

    application = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{stub_url}/bot")
        .concurrent_updates(True)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.add_handler(CallbackQueryHandler(pressed))
    application.run_webhook(
        listen="127.0.0.1",
        port=port,
        url_path="webhooks/telegram",
        cert=cert,
        key=key,
        webhook_url=f"https://127.0.0.1:{port}/webhooks/telegram",
        secret_token=SECRET,
    )


# --- the load ----------------------------------------------------------------------------------


def _turns(chat_id: int, update_ids: Callable[[], int]) -> list[dict[str, Any]]:
    """One customer's visit: /start, the bill button, "pay" typed, the menu button."""
    user = {"id": chat_id, "is_bot": False, "first_name": "ลูกค้า", "language_code": "th"}
    chat = {"id": chat_id, "type": "private", "first_name": "ลูกค้า"}

    def message(text: str) -> dict[str, Any]:
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(text)}]
            if text.startswith("/")
            else []
        )
        return {
            "update_id": update_ids(),
            "message": {
                "message_id": update_ids(),
                "date": int(time.time()),
                "chat": chat,
                "from": user,
                "text": text,
                **({"entities": entities} if entities else {}),
            },
        }

    def press(data: str) -> dict[str, Any]:
        return {
            "update_id": update_ids(),
            "callback_query": {
                "id": str(update_ids()),
                "from": user,
                "chat_instance": "1",
                "data": data,
                "message": {
                    "message_id": update_ids(),
                    "date": int(time.time()),
                    "chat": chat,
                    "text": "…",
                },
            },
        }

    return [message("/start"), press("bill"), message("จ่ายบิล"), press("menu")]


@dataclass
class Result:
    name: str
    turns: int
    seconds: float
    latencies: list[float]
    errors: int
    replies: int
    drain_seconds: float

    @property
    def per_second(self) -> float:
        return self.turns / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive(
    urls: list[str], chats: int, concurrency: int, first_chat: int
) -> tuple[int, float, list[float], int]:
    """Play every chat's visit, ``concurrency`` chats at once; returns turns, seconds,
    latencies and errors."""
    counter = iter(range(first_chat * 100, 10**12))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(chats):
        queue.put_nowait(first_chat + n)
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)

    async with aiohttp.ClientSession(connector=connector) as session:

        async def customer() -> None:
            nonlocal errors
            while not queue.empty():
                chat_id = queue.get_nowait()
                url = urls[chat_id % len(urls)]
                for update in _turns(chat_id, lambda: next(counter)):
                    body = json.dumps(update).encode()
                    started = time.perf_counter()
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                    latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(customer() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return len(latencies), seconds, latencies, errors


async def stub_sends(stub: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{stub}/stats") as response:
        counts = await response.json()
    return int(counts.get("sendMessage", 0))


async def wait_drained(stub: str, before: int) -> tuple[int, float]:
    """Replies the stub got since ``before``, once they stop coming, and how long after
    the last answer they kept coming."""
    started = time.perf_counter()
    last, last_change = await stub_sends(stub), time.perf_counter()
    while time.perf_counter() - last_change < 1.5:
        await asyncio.sleep(0.25)
        now = await stub_sends(stub)
        if now != last:
            last, last_change = now, time.perf_counter()
    return last - before, max(0.0, last_change - started)


# --- processes -----------------------------------------------------------------------------------


def spawn(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_listening(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = await asyncio.to_thread(log.read_text, errors="replace")
                raise RuntimeError(f"{url} exited:\n{output[-2000:]}")
            try:
                async with session.post(url, data=b"{}", timeout=aiohttp.ClientTimeout(2)):
                    return
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.3)
    raise RuntimeError(f"{url} did not start")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def pg_version() -> str:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


DEFAULT_LAYOUTS = "1x1,2x1"


def parse_layouts(text: str) -> list[tuple[int, int]]:
    """``"1x1,2x2"`` → [(1, 1), (2, 2)]: web processes × workers for each selfcare run."""
    layouts = []
    for part in text.split(","):
        web, _, workers = part.strip().partition("x")
        if not (web.isdigit() and workers.isdigit() and int(web) >= 1 and int(workers) >= 1):
            raise argparse.ArgumentTypeError(f"{part!r}: give WEBxWORKERS, like 2x1")
        layouts.append((int(web), int(workers)))
    return layouts


def layout_name(web: int, workers: int) -> str:
    return f"selfcare serve ×{web} + worker" + (f" ×{workers}" if workers != 1 else "")


async def run(
    chats: int, concurrency: int, layouts: list[tuple[int, int]]
) -> tuple[list[Result], dict[str, str]]:
    from bot import tls
    from storage.crypto import Keyring

    started_at = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="selfcare-bench-"))
    cert, key = tls.development_certificate(workdir / "tls", ["127.0.0.1"])
    keyring = workdir / "keyring.json"
    Keyring.generate(for_development=True).save(keyring)
    schema = f"bench_{secrets.token_hex(4)}"
    await pg(f"CREATE SCHEMA {schema}")
    stub_port = free_port()
    stub_url = f"http://127.0.0.1:{stub_port}"
    stub = spawn(
        [sys.executable, __file__, "_stub", str(stub_port)],
        dict(os.environ),
        workdir,
        workdir / "stub.log",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCARE_")}
    env.update(
        SELFCARE_ENV="test",
        SELFCARE_DATABASE_URL=f"{PG_URL}?search_path={schema}",
        SELFCARE_KEYRING_FILE=str(keyring),
        SELFCARE_TLS_CERT=str(cert),
        SELFCARE_TLS_KEY=str(key),
        SELFCARE_TELEGRAM_TOKEN=TOKEN,
        SELFCARE_TELEGRAM_SECRET_TOKEN=SECRET,
        SELFCARE_TELEGRAM_API_URL=f"{stub_url}/bot",
        SELFCARE_TELEGRAM_MESSAGES_PER_SECOND="100000",
        SELFCARE_TELEGRAM_CHAT_MESSAGES_PER_SECOND="100000",
        SELFCARE_LOG_LEVEL="WARNING",
    )
    results: list[Result] = []
    chat_base = 10_000_000
    try:
        upgrade = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "db",
            "upgrade",
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
        )
        assert await upgrade.wait() == 0, "selfcare db upgrade failed"
        targets: list[tuple[str, list[list[str]], int, int]] = [
            (
                "bare aiohttp handler (200)",
                [[__file__, "_bare", "{port}", str(cert), str(key)]],
                1,
                0,
            ),
            (
                "python-telegram-bot webhook, echo bot",
                [[__file__, "_ptb", "{port}", str(cert), str(key), stub_url]],
                1,
                0,
            ),
        ]
        serve = [["-m", "bot", "serve", "--port", "{port}"]]
        targets += [(layout_name(web, workers), serve, web, workers) for web, workers in layouts]
        for name, commands, copies, workers in targets:
            processes = []
            urls = []
            for n in range(copies):
                for command in commands:
                    port = free_port()
                    args = [sys.executable, *(a.format(port=port) for a in command)]
                    log = workdir / f"{len(results)}-{n}.log"
                    processes.append((spawn(args, env, workdir, log), log))
                    urls.append(f"https://127.0.0.1:{port}/webhooks/telegram")
            for w in range(workers):
                worker_log = workdir / f"{len(results)}-worker-{w}.log"
                processes.append(
                    (
                        spawn([sys.executable, "-m", "bot", "worker"], env, workdir, worker_log),
                        worker_log,
                    )
                )
            try:
                for url, (process, log) in zip(urls, processes, strict=False):
                    await wait_listening(url, process, log)
                # Warm-up: connections, caches, the first transactions.
                await drive(urls, WARM_UP_CHATS, WARM_UP_CHATS, chat_base)
                chat_base += 1_000_000
                await wait_drained(stub_url, 0)
                before = await stub_sends(stub_url)
                turns, seconds, latencies, errors = await drive(urls, chats, concurrency, chat_base)
                chat_base += 1_000_000
                replies, drain = await wait_drained(stub_url, before)
                result = Result(name, turns, seconds, latencies, errors, replies, drain)
                results.append(result)
                print(
                    f"{name}: {result.per_second:.0f} turns/s, p50 {result.quantile(0.5):.1f} ms, "
                    f"p99 {result.quantile(0.99):.1f} ms, {errors} errors, {replies} replies",
                    flush=True,
                )
            finally:
                for process, _ in processes:
                    stop(process)
    finally:
        stop(stub)
        await pg(f"DROP SCHEMA {schema} CASCADE")
    machine = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": await pg_version(),
        "load": f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end",
    }
    return results, machine


def table(
    results: list[Result],
    chats: int,
    concurrency: int,
    machine: dict[str, str],
    layouts: str = DEFAULT_LAYOUTS,
) -> str:
    option = "" if layouts == DEFAULT_LAYOUTS else f" --layouts {layouts}"
    lines = [
        SECTION,
        "",
        f"- date: {machine['date']}",
        f"- machine: {machine['cores']} CPUs, {machine['system']}, Python {machine['python']}",
        f"- PostgreSQL: {machine['postgresql']} on the same machine",
        f"- load average (1 min): {machine['load']} (the machine is shared with other "
        "jobs: treat the figures as a floor)",
        "",
        f"Reproduce: `python bench/webhook.py --chats {chats} --concurrency {concurrency}"
        f"{option} --write-docs` (or `make bench`); PostgreSQL from `SELFCARE_BENCH_PG_URL` "
        "(default: the local test database), in a schema the run creates and drops.",
        "",
        f'{chats} chats × 4 turns (`/start`, the bill button, "จ่ายบิล" typed, the menu '
        f"button), {concurrency} chats at a time (Telegram's default `max_connections`), each "
        "chat one update after another, over HTTPS (TLS 1.3, the development certificate). "
        "Every target sends its replies to the same stub Bot API (its own process) with "
        "Telegram's pacing lifted, so this measures our processing, not Telegram's limit. "
        "Latency is the platform's view: posting the update until the 200.",
        "",
        "| target | turns/s | p50 ms | p99 ms | errors | replies sent "
        "| still sending after the last 200 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.per_second:.0f} | {r.quantile(0.5):.1f} | {r.quantile(0.99):.1f} "
            f"| {r.errors} | {r.replies} | {r.drain_seconds:.1f} s |"
        )
    lines += [
        "",
        "A selfcare turn commits the update to the inbox, the conversation state (encrypted) "
        "and its replies (encrypted) in one PostgreSQL transaction under the chat's advisory "
        "lock before it answers 200: about a dozen database round trips (pool check, BEGIN, "
        "the inbox insert in a savepoint, the lock, the state read and write, the replies' "
        "insert, COMMIT), and about a dozen more to send the replies (claim, then mark sent "
        "and claim what follows). The echo bot answers before it has done anything, and the "
        "bare handler does nothing at all. Replies go out after the answer, so they do not "
        "add to the latency; the last column is how long sending went on after the last "
        "update was answered. PostgreSQL, the servers, the worker, the stub and the load "
        "generator share the machine's CPUs, so a second `serve` process only helps when "
        "there are cores to spare.",
        "",
    ]
    return "\n".join(lines)


START = "<!-- bench/webhook.py: start -->"
END = "<!-- bench/webhook.py: end -->"


def write_docs(section: str) -> None:
    """Replace this benchmark's part of docs/benchmarks.md (between its markers), or add
    it at the end; the other benchmarks' parts are left as they are."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    block = f"{START}\n{section.rstrip()}\n{END}"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text, encoding="utf-8")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        role, *rest = sys.argv[1:]
        if role == "_stub":
            run_stub(int(rest[0]))
        elif role == "_bare":
            run_bare(int(rest[0]), rest[1], rest[2])
        elif role == "_ptb":
            run_ptb_echo(int(rest[0]), rest[1], rest[2], rest[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument(
        "--layouts",
        default=DEFAULT_LAYOUTS,
        help="selfcare runs as WEBxWORKERS, comma-separated (default %(default)s)",
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    try:
        layouts = parse_layouts(args.layouts)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--layouts: {exc}")
    results, machine = asyncio.run(run(args.chats, args.concurrency, layouts))
    section = table(results, args.chats, args.concurrency, machine, args.layouts)
    print()
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"written to {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
