"""``selfcare`` (also ``python -m bot``): the command line of the product."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot import bootstrap
from bot.cli_common import CliError, ensure_schema, with_container
from bot.logging_setup import configure_logging
from bot.settings import Settings, SettingsError, load_settings, settings_help
from core.services.passwords import MIN_PASSWORD_LENGTH, USER_ID_PATTERN
from storage.crypto import DecryptionError, KeyringError

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]
BANGKOK = ZoneInfo("Asia/Bangkok")
log = logging.getLogger(__name__)


def _err(message: str) -> None:
    print(f"selfcare: {message}", file=sys.stderr)


# --- db ------------------------------------------------------------------------------


async def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from storage import migrate

    async def body(c: bootstrap.Container) -> int:
        before = await migrate.current_revision(c.db.engine)
        await migrate.upgrade(settings.database_url)
        after = await migrate.current_revision(c.db.engine)
        if before == after:
            print(f"database already at revision {after}")
        else:
            print(f"database upgraded from {before or 'empty'} to {after}")
        return 0

    return await with_container(settings, body)


# --- demo ------------------------------------------------------------------------------


async def cmd_demo_seed(args: argparse.Namespace, settings: Settings) -> int:
    from bot import demo
    from storage import migrate

    async def body(c: bootstrap.Container) -> int:
        await migrate.upgrade(settings.database_url)
        today = datetime.now(BANGKOK).date()
        report = await demo.seed(c.db.uow, c.hasher, today)
        print(
            f"demo data: {report.customers} customers, {report.service_accounts} numbers, "
            f"{report.bills} bills and {report.users} e-service users added "
            f"(sign in as {demo.DEMO_USER_ID} / {demo.DEMO_PASSWORD})"
        )
        return 0

    return await with_container(settings, body)


# --- users ---------------------------------------------------------------------------


async def cmd_users_create(args: argparse.Namespace, settings: Settings) -> int:
    from core.domain import EServiceUser, new_id

    user_id: str = args.user_id.strip()
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise CliError("--user-id: 3 to 64 letters, digits, dots, dashes or underscores")
    if not args.password_stdin:
        raise CliError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CliError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")

    async def body(c: bootstrap.Container) -> int:
        password_hash = await c.hasher.hash(password)
        async with c.db.uow() as uow:
            customer = await uow.customers.get_by_account_no(args.customer)
            if customer is None:
                raise CliError(f"no customer with account number {args.customer}")
            if await uow.users.get_by_user_id(user_id) is not None:
                raise CliError(f"the user id {user_id} is taken")
            await uow.users.add(
                EServiceUser(
                    id=new_id(),
                    user_id=user_id,
                    customer_id=customer.id,
                    password_hash=password_hash,
                )
            )
            await uow.commit()
        print(f"e-service user {user_id} created for account {args.customer}")
        return 0

    return await with_container(settings, body)


# --- keys ------------------------------------------------------------------------------


async def cmd_keys_init(args: argparse.Namespace, settings: Settings) -> int:
    from storage.crypto import Keyring

    path = Path(settings.keyring_file)

    def create() -> None:
        if path.exists():
            raise CliError(f"{path} exists already; rotate it with `selfcare keys rotate`")
        path.parent.mkdir(parents=True, exist_ok=True)
        Keyring.generate().save(path)

    await asyncio.to_thread(create)
    print(f"keyring created at {path} (mode 0600); back it up apart from the database")
    return 0


async def cmd_keys_status(args: argparse.Namespace, settings: Settings) -> int:
    from storage import rotation

    async def body(c: bootstrap.Container) -> int:
        await require_schema(c)
        in_use = await rotation.keys_in_use(c.db.engine)
        stale = await rotation.count_stale(c.db.engine, c.cipher)
        print(f"active key: {c.keyring.active_key_id}")
        for key_id in sorted(c.keyring.keys):
            state = "active" if key_id == c.keyring.active_key_id else "old"
            used = "in use" if key_id in in_use else "unused"
            print(f"  {key_id}  {state}, {used}")
        missing = sorted(in_use - set(c.keyring.keys))
        for key_id in missing:
            print(f"  {key_id}  NOT IN THIS KEYRING, in use")
        if missing:
            # Rotating would fail on the first such row: the keyring is the wrong one.
            raise CliError(
                f"rows are encrypted under keys this keyring lacks ({', '.join(missing)}): "
                f"{settings.keyring_file} is not this database's keyring (or is older than "
                "its data); find the matching copy, do not rotate"
            )
        if sum(stale.values()):
            print(f"rows still on older keys: {sum(stale.values())} (run `selfcare keys rotate`)")
        return 0

    return await with_container(settings, body)


async def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from bot import keys
    from storage import rotation

    async def body(c: bootstrap.Container) -> int:
        await require_schema(c)
        last_table = ""

        def progress(p: rotation.RotationProgress) -> None:
            nonlocal last_table
            if p.table != last_table and last_table:
                print(file=sys.stderr)
            last_table = p.table
            print(
                f"\r  {p.table}: {p.rewritten} rewritten, {p.remaining} left   ",
                end="",
                file=sys.stderr,
                flush=True,
            )

        try:
            total = await keys.rotate(
                c.db.engine,
                c.cipher,
                Path(settings.keyring_file),
                batch_size=args.batch_size,
                grace_seconds=args.grace,
                say=lambda line: print(line, flush=True),
                on_progress=progress,
            )
        except (keys.KeyringBusy, KeyringError, RuntimeError) as exc:
            raise CliError(str(exc)) from None
        finally:
            if last_table:
                print(file=sys.stderr)
        active = c.cipher.keyring.active_key_id
        print(f"re-encrypted {total} rows under key {active}")
        unused = set(c.cipher.keyring.keys) - await rotation.keys_in_use(c.db.engine)
        retirable = sorted(unused - {active})
        if retirable:
            print("no row uses " + ", ".join(retirable) + "; retire with `selfcare keys retire ID`")
        return 0

    return await with_container(settings, body)


async def cmd_keys_retire(args: argparse.Namespace, settings: Settings) -> int:
    from bot import keys

    async def body(c: bootstrap.Container) -> int:
        await require_schema(c)
        try:
            await keys.retire(c.db.engine, c.cipher, Path(settings.keyring_file), args.key_id)
        except (KeyringError, keys.KeyringBusy) as exc:
            raise CliError(str(exc)) from None
        print(f"key {args.key_id} retired")
        return 0

    return await with_container(settings, body)


async def require_schema(container: bootstrap.Container) -> None:
    """Refuse to work on a database whose schema is missing or older than the code."""
    from storage import migrate

    current = await migrate.current_revision(container.db.engine)
    if current != await migrate.head_revision():
        state = "has no schema" if current is None else f"is at revision {current}"
        raise CliError(f"the database {state}; run `selfcare db upgrade` first")


# --- serve ---------------------------------------------------------------------------


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import signal
    import ssl

    from aiohttp import web

    from bot import tls
    from bot.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    context: ssl.SSLContext | None = None
    if not settings.behind_proxy:
        if settings.tls_cert and settings.tls_key:
            cert, key = settings.tls_cert, settings.tls_key
        elif settings.is_production:
            raise SettingsError(
                "SELFCARE_TLS_CERT: required in production (or SELFCARE_BEHIND_PROXY=true)"
            )
        else:
            cert, key = await asyncio.to_thread(
                tls.development_certificate, Path("var/tls"), [host]
            )
        try:
            context = await asyncio.to_thread(tls.server_context, cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"SELFCARE_TLS_CERT: cannot load the certificate: {exc}") from None

    container = await bootstrap.build(settings)
    runner: web.AppRunner | None = None
    try:
        await ensure_schema(container, settings)
        runner = web.AppRunner(
            create_app(container),
            access_log=None,
            shutdown_timeout=settings.shutdown_timeout_seconds,
            handle_signals=False,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
        await site.start()
        scheme = "https" if context else "http"
        print(f"selfcare serving on {scheme}://{host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        reloads: set[asyncio.Task[None]] = set()
        if context is not None:
            tls_context = context

            async def reload() -> None:
                try:
                    await asyncio.to_thread(tls.reload_certificate, tls_context, cert, key)
                except (OSError, ssl.SSLError) as exc:
                    log.warning(
                        "TLS certificate not reloaded; the old one stays",
                        extra={"exc_type": type(exc).__name__, "reason": str(exc)[:200]},
                    )
                else:
                    print("selfcare: TLS certificate reloaded", flush=True)

            def on_hangup() -> None:  # renewal: new handshakes get the new certificate
                task = loop.create_task(reload())
                reloads.add(task)
                task.add_done_callback(reloads.discard)

            loop.add_signal_handler(signal.SIGHUP, on_hangup)
        await stop.wait()
        print("selfcare: stopping (finishing requests in flight)", flush=True)
    finally:
        if runner is not None:
            await runner.cleanup()
        await container.close()
    return 0


# --- shell ---------------------------------------------------------------------------


async def cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    from bot.channels import console
    from bot.delivery import OutboxDelivery

    chat_id = args.chat_id.strip()
    if not chat_id or len(chat_id) > 64:
        raise CliError("--chat-id: 1 to 64 characters")
    media_dir = Path(args.media_dir or f"var/shell/{chat_id}")

    async def body(c: bootstrap.Container) -> int:
        service = c.conversation_service()
        if args.lang:
            async with c.db.uow() as uow:
                conv = await uow.conversations.load_for_update(
                    console.CHANNEL, chat_id, settings.default_language
                )
                conv.language = args.lang
                await uow.conversations.save(conv)
                await uow.commit()
        messenger = console.ConsoleMessenger(sys.stdout, media_dir)
        delivery = OutboxDelivery(c.db, {console.CHANNEL: messenger}, c.clock)
        await console.run_shell(
            service=service,
            delivery=delivery,
            messenger=messenger,
            reader=console.LineReader(sys.stdin),
            out=sys.stdout,
            chat_id=chat_id,
            clock=c.clock,
            send_start=not args.no_start,
        )
        return 0

    return await with_container(settings, body)


# --- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfcare",
        description="Self-service chat channel for a telecom's customers.",
        epilog="settings (environment variables, or a .env file):\n" + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        sub = commands.add_parser(name, help=help_text)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    def add(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        func: Command,
        help_text: str,
    ) -> argparse.ArgumentParser:
        sub = parent.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog="settings:\n" + settings_help(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(func=func)
        return sub

    serve = commands.add_parser(
        "serve",
        help="run the web server (webhooks, pages, integrations, admin API)",
        description="Serve HTTPS (TLS 1.2/1.3, Mozilla intermediate) on "
        "SELFCARE_HOST:SELFCARE_PORT; "
        "a development certificate is made when none is configured. SIGHUP reloads "
        "SELFCARE_TLS_CERT and SELFCARE_TLS_KEY (renewal without a restart); SIGTERM stops "
        "taking requests, finishes those in flight and exits.",
        epilog="settings:\n" + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.set_defaults(func=cmd_serve)
    serve.add_argument("--host", help="overrides SELFCARE_HOST")
    serve.add_argument("--port", type=int, help="overrides SELFCARE_PORT")

    shell = commands.add_parser(
        "shell",
        help="chat with the bot in this terminal (the terminal channel)",
        description="Chat as --chat-id; reads a terminal or a pipe. Buttons show as [1] label: "
        "answer with the number or the label. Images and files are written under --media-dir.",
        epilog="settings:\n" + settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shell.set_defaults(func=cmd_shell)
    shell.add_argument("--chat-id", required=True)
    shell.add_argument("--lang", choices=["th", "en"])
    shell.add_argument("--media-dir", help="default: var/shell/CHAT_ID")
    shell.add_argument("--no-start", action="store_true", help="do not send /start first")

    db = group("db", "database schema")
    add(db, "upgrade", cmd_db_upgrade, "create or upgrade the schema (safe to run twice)")

    demo = group("demo", "demo data")
    add(demo, "seed", cmd_demo_seed, "add demo customers, bills and the user demo (idempotent)")

    users = group("users", "e-service users")
    create = add(users, "create", cmd_users_create, "create an e-service user for a customer")
    create.add_argument("--user-id", required=True)
    create.add_argument("--customer", required=True, metavar="ACCOUNT", help="account number")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )

    keys = group("keys", "encryption keys")
    add(keys, "init", cmd_keys_init, "create a production keyring at SELFCARE_KEYRING_FILE")
    add(keys, "status", cmd_keys_status, "show the keys and which are still in use")
    rotate = add(keys, "rotate", cmd_keys_rotate, "make a new key active and re-encrypt everything")
    rotate.add_argument("--batch-size", type=int, default=500)
    rotate.add_argument(
        "--grace",
        type=float,
        default=6.0,
        help="seconds to let running processes load the new key (default 6)",
    )
    retire = add(keys, "retire", cmd_keys_retire, "remove an old key no row uses any more")
    retire.add_argument("key_id")

    from bot import cli_integrations

    cli_integrations.register(group, add)

    from bot import cli_channels

    cli_channels.register(commands, group, add)

    from bot import cli_staff

    cli_staff.register(group, add)

    from bot import cli_payments

    cli_payments.register(group, add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        _err(str(exc))
        return 2
    configure_logging(settings.log_level)
    try:
        code: int = asyncio.run(args.func(args, settings))
        return code
    except SettingsError as exc:
        _err(str(exc))
        return 2
    except CliError as exc:
        _err(str(exc))
        return 1
    except DecryptionError as exc:
        # Names the table, column and key id only, never a value.
        _err(f"{exc}: is SELFCARE_KEYRING_FILE this database's keyring? (`selfcare keys status`)")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
