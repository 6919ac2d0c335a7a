"""``selfcare worker`` and ``selfcare telegram set-webhook``."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli_common import CliError, ensure_schema, with_container
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.bootstrap import Container

Commands = "argparse._SubParsersAction[argparse.ArgumentParser]"
Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]
Add = Callable[..., argparse.ArgumentParser]

DEV_CERTIFICATE = Path("var/tls/dev-cert.pem")


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from bot.metrics import Metrics
    from bot.worker import Worker, metrics_app

    async def body(c: Container) -> int:
        await ensure_schema(c, settings)
        metrics = Metrics()
        worker = Worker(c, metrics=metrics)
        runner: web.AppRunner | None = None
        try:
            if args.metrics_port and not args.once:
                runner = web.AppRunner(metrics_app(c, metrics), access_log=None)
                await runner.setup()
                await web.TCPSite(runner, args.metrics_host, args.metrics_port).start()
                print(
                    f"selfcare worker metrics on http://{args.metrics_host}:{args.metrics_port}"
                    "/metrics",
                    flush=True,
                )
            if not args.once:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, worker.stop)
                print("selfcare worker running (SIGTERM stops it)", flush=True)
            await worker.run(once=args.once)
        finally:
            if runner is not None:
                await runner.cleanup()
        if not args.once:
            print("selfcare worker stopped", flush=True)
        return 0

    return await with_container(settings, body)


def _is_self_signed(pem: Path) -> bool:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    return cert.issuer == cert.subject


def _certificate_to_upload(args: argparse.Namespace, settings: Settings) -> Path | None:
    """The PEM Telegram needs: the one given, else the configured or development
    certificate when it is self-signed (Telegram trusts a self-signed one only if it
    was uploaded). Blocking."""
    if args.no_certificate:
        return None
    if args.certificate is not None:
        path = Path(args.certificate)
        if not path.is_file():
            raise CliError(f"--certificate: {path} does not exist")
        return path
    if settings.behind_proxy:
        return None  # the proxy's certificate is the one Telegram sees
    candidate = settings.tls_cert or DEV_CERTIFICATE
    if candidate.is_file() and _is_self_signed(candidate):
        return candidate
    return None


async def cmd_telegram_set_webhook(args: argparse.Namespace, settings: Settings) -> int:
    from telegram.error import TelegramError

    from bot.channels import telegram

    if settings.telegram_token is None or settings.telegram_secret_token is None:
        raise CliError("set SELFCARE_TELEGRAM_TOKEN and SELFCARE_TELEGRAM_SECRET_TOKEN first")
    url = args.url or settings.public_url.rstrip("/") + "/webhooks/telegram"
    if not url.startswith("https://"):
        raise CliError(f"--url: Telegram only calls https:// URLs (got {url})")
    certificate = await asyncio.to_thread(_certificate_to_upload, args, settings)
    try:
        info = await telegram.set_webhook(
            settings,
            url,
            certificate=certificate,
            drop_pending_updates=args.drop_pending_updates,
            max_connections=args.max_connections,
        )
    except TelegramError as exc:
        raise CliError(f"Telegram refused the webhook: {exc.message}") from None
    print(f"webhook set: {info.url}")
    print(f"  allowed updates: {', '.join(info.allowed_updates or telegram.ALLOWED_UPDATES)}")
    print(f"  certificate uploaded: {'yes (' + str(certificate) + ')' if certificate else 'no'}")
    print(f"  updates waiting at Telegram: {info.pending_update_count}")
    return 0


def register(commands: Any, group: Group, add: Add) -> None:
    """Add ``worker`` and ``telegram …`` to the parser of bot/cli.py."""
    from bot.settings import settings_help

    worker = commands.add_parser(
        "worker",
        help="send replies left in the outbox and run the periodic jobs",
        description="Relay the outbox (replies a crash left behind, retries) and run every "
        "feature's periodic jobs until SIGTERM, which finishes or hands back what was "
        "claimed. Run as many as you like on PostgreSQL; one on SQLite.",
        epilog="settings:\n" + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.set_defaults(func=cmd_worker)
    worker.add_argument(
        "--once", action="store_true", help="one relay pass and each job once, then exit"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve this worker's /metrics and /healthz over plain HTTP on PORT (sends, "
        "send errors and 429s of the relay and campaigns); default: none",
    )
    worker.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address for --metrics-port (default 127.0.0.1; a private address to scrape "
        "from another host, never a public one)",
    )

    tg = group("telegram", "the Telegram bot")
    hook = add(
        tg,
        "set-webhook",
        cmd_telegram_set_webhook,
        "register this server's webhook with Telegram (secret token, update kinds, "
        "and a self-signed certificate when there is one)",
    )
    hook.add_argument("--url", help="default: SELFCARE_PUBLIC_URL + /webhooks/telegram")
    hook.add_argument("--certificate", help="PEM certificate to upload (self-signed)")
    hook.add_argument(
        "--no-certificate", action="store_true", help="upload no certificate (a CA-signed one)"
    )
    hook.add_argument(
        "--drop-pending-updates", action="store_true", help="discard updates Telegram holds"
    )
    hook.add_argument(
        "--max-connections",
        type=int,
        choices=range(1, 101),
        metavar="1-100",
        help="parallel connections Telegram may open (default 40)",
    )
