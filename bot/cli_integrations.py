"""``selfcare integrations …`` (subscriber endpoints, replays) and ``selfcare import …``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli_common import CliError, with_container
from bot.settings import Settings
from core.errors import InvalidInput, NotFound
from core.integration_events import OUTBOUND_EVENT_TYPES

if TYPE_CHECKING:
    from bot.bootstrap import Container

ACTOR = "cli:operator"
Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]
Add = Callable[..., argparse.ArgumentParser]


async def cmd_add_endpoint(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.integrations import add_endpoint

    events = [part for value in args.events for part in value.split(",")]
    secret = sys.stdin.readline().strip() if args.secret_stdin else None

    async def body(c: Container) -> int:
        async with c.db.uow() as uow:
            try:
                endpoint = await add_endpoint(
                    uow,
                    args.url,
                    events,
                    now=c.clock.now(),
                    description=args.description or "",
                    secret=secret,
                    allow_http=args.allow_http,
                    actor=ACTOR,
                )
            except InvalidInput as exc:
                raise CliError(f"--{exc.field}: {exc.reason}") from None
            await uow.commit()
        print(f"endpoint {endpoint.id} added for {', '.join(endpoint.events)}")
        if secret is None:
            print(f"signing secret (shown once, keep it safe): {endpoint.secret}")
        return 0

    return await with_container(settings, body)


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def body(c: Container) -> int:
        async with c.db.uow() as uow:
            endpoints = await uow.webhooks.list_endpoints()
        if not endpoints:
            print("no endpoints; add one with `selfcare integrations add-endpoint URL --events …`")
        for e in endpoints:
            print(f"{e.id}  {e.url}")
            print(f"    events: {', '.join(e.events)}")
            if e.description:
                print(f"    {e.description}")
            print(f"    deliveries: {e.pending} pending, {e.delivered} delivered, {e.dead} dead")
        return 0

    return await with_container(settings, body)


async def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.integrations import remove_endpoint

    async def body(c: Container) -> int:
        async with c.db.uow() as uow:
            try:
                await remove_endpoint(uow, args.endpoint_id, now=c.clock.now(), actor=ACTOR)
            except NotFound:
                raise CliError(f"no endpoint {args.endpoint_id}") from None
            await uow.commit()
        print(f"endpoint {args.endpoint_id} removed with its pending deliveries")
        return 0

    return await with_container(settings, body)


async def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.integrations import replay_deliveries

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise CliError("--since: an ISO date-time like 2026-11-25T00:00:00+07:00") from None

    async def body(c: Container) -> int:
        async with c.db.uow() as uow:
            try:
                count = await replay_deliveries(
                    uow,
                    now=c.clock.now(),
                    event_ids=args.event_ids,
                    endpoint_id=args.endpoint,
                    dead_only=args.dead,
                    since=since,
                    actor=ACTOR,
                )
            except InvalidInput as exc:
                if exc.field == "selection":
                    raise CliError(
                        "say what to replay: EVENT_ID…, --endpoint ID, --dead or --since"
                    ) from None
                raise CliError(f"--{exc.field}: {exc.reason}") from None
            except NotFound as exc:
                raise CliError(str(exc)) from None
            await uow.commit()
        print(f"{count} deliveries queued again (same event ids); the worker sends them")
        return 0

    return await with_container(settings, body)


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from bot.imports import import_file

    path = Path(args.file)
    if args.batch_size < 1:
        raise CliError("--batch-size: at least 1")

    async def body(c: Container) -> int:
        show_bar = sys.stderr.isatty()
        bar: tqdm[Any] | None = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if not show_bar:
                return
            if bar is None:
                bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=args.kind)
            else:
                bar.update(done - bar.n)

        def bad_line(number: int, reason: str) -> None:
            line = f"line {number}: {reason}"
            if bar is None:
                print(line, file=sys.stderr)
            else:
                bar.write(line, file=sys.stderr)

        try:
            report = await import_file(
                c.db,
                args.kind,
                path,
                clock=c.clock,
                batch_size=args.batch_size,
                restart=args.restart,
                on_bad_line=bad_line,
                on_progress=progress,
            )
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}") from None
        finally:
            if bar is not None:
                bar.close()
        if report.resumed_after:
            print(f"resumed after line {report.resumed_after} (committed by an earlier run)")
        print(
            f"{args.kind}: {report.applied} imported, {report.rejected} refused, "
            f"{report.lines} lines read"
        )
        return 1 if report.rejected else 0

    return await with_container(settings, body)


def register(group: Group, add: Add) -> None:
    """Add ``integrations`` and ``import`` to the parser (called by bot.cli)."""
    integrations = group("integrations", "subscriber endpoints for events out, and replays")
    endpoint = add(
        integrations,
        "add-endpoint",
        cmd_add_endpoint,
        "register a subscriber URL; events to it are signed with its own whsec_ secret",
    )
    endpoint.add_argument("url")
    endpoint.add_argument(
        "--events",
        action="append",
        required=True,
        metavar="TYPE[,TYPE…]",
        help=f"event types (or *): {', '.join(OUTBOUND_EVENT_TYPES)}",
    )
    endpoint.add_argument("--description", help="a note for operators")
    endpoint.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the whsec_ secret from stdin instead of generating one",
    )
    endpoint.add_argument(
        "--allow-http", action="store_true", help="allow plain http (a private network)"
    )
    add(integrations, "list", cmd_list, "list endpoints with their delivery counts")
    remove = add(integrations, "remove", cmd_remove, "remove an endpoint")
    remove.add_argument("endpoint_id")
    replay = add(
        integrations,
        "replay",
        cmd_replay,
        "send events again (same event ids): given ones, an endpoint's, dead-lettered ones",
    )
    replay.add_argument("event_ids", nargs="*", metavar="EVENT_ID")
    replay.add_argument("--endpoint", metavar="ID", help="only this endpoint's deliveries")
    replay.add_argument("--dead", action="store_true", help="only dead-lettered deliveries")
    replay.add_argument("--since", metavar="ISO", help="only events that occurred since then")

    imports = group("import", "bulk import from JSON Lines files")
    for kind, schema in (("customers", "customer.upserted"), ("bills", "bill.issued")):
        sub = add(
            imports,
            kind,
            cmd_import,
            f"import {kind}: one JSON object a line, the data of {schema}; resumable; "
            "bad lines are reported and skipped (exit 1 if any)",
        )
        sub.set_defaults(kind=kind)
        sub.add_argument("file", metavar="FILE.jsonl")
        sub.add_argument("--batch-size", type=int, default=1000, help="lines per transaction")
        sub.add_argument(
            "--restart", action="store_true", help="ignore a checkpoint and start at line 1"
        )
