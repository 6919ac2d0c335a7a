"""``selfcare staff …``, ``selfcare audit verify`` and ``selfcare broadcast …``.

Changes made here are audited under the actor ``cli`` (whoever holds the keyring and the
database URL). Nothing printed names a customer.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.cli_common import CliError, ensure_schema, with_container
from bot.settings import Settings
from core.domain import CampaignStatus, DeliveryStatus
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import BANGKOK
from core.services.audit import CLI_ACTOR

if TYPE_CHECKING:
    from bot.bootstrap import Container
    from core.services.campaigns import CampaignReport

Group = Callable[[str, str], "argparse._SubParsersAction[argparse.ArgumentParser]"]
Add = Callable[..., argparse.ArgumentParser]

FOLLOW_POLL_SECONDS = 0.5


async def _run(settings: Settings, body: Callable[[Container], Any]) -> int:
    """``body`` with a container, the schema checked, core errors as one-line errors."""

    async def guarded(c: Container) -> int:
        await ensure_schema(c, settings)
        try:
            result: int = await body(c)
        except InvalidInput as exc:
            raise CliError(f"{exc.field}: {exc.reason}") from None
        except (NotFound, Conflict) as exc:
            raise CliError(str(exc)) from None
        return result

    return await with_container(settings, guarded)


# --- staff -------------------------------------------------------------------------------


async def cmd_staff_add(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.staff import StaffService

    async def body(c: Container) -> int:
        member = await StaffService(c.db.uow, c.clock).add(
            args.handle, args.role, actor=CLI_ACTOR, chat=args.chat
        )
        print(f"staff {member.handle} added with roles {', '.join(sorted(member.roles))}")
        print(f"give them a token: selfcare staff token {member.handle}")
        return 0

    return await _run(settings, body)


async def cmd_staff_disable(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.staff import StaffService

    async def body(c: Container) -> int:
        member = await StaffService(c.db.uow, c.clock).disable(args.handle, actor=CLI_ACTOR)
        print(f"staff {member.handle} disabled; every token of theirs is revoked")
        return 0

    return await _run(settings, body)


async def cmd_staff_token(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.staff import StaffService

    if args.days is not None and not 1 <= args.days <= 3650:
        raise CliError("--days: 1 to 3650")

    async def body(c: Container) -> int:
        valid_for = timedelta(days=args.days) if args.days else None
        issued = await StaffService(c.db.uow, c.clock).issue_token(
            args.handle, actor=CLI_ACTOR, valid_for=valid_for
        )
        until = (
            f"until {issued.expires_at.astimezone(BANGKOK):%Y-%m-%d %H:%M} (Bangkok)"
            if issued.expires_at
            else "until revoked"
        )
        print(f"API token for {args.handle}, valid {until}; shown once:", file=sys.stderr)
        print(issued.value)
        return 0

    return await _run(settings, body)


async def cmd_staff_list(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.staff import StaffService

    async def body(c: Container) -> int:
        for m in await StaffService(c.db.uow, c.clock).list():
            state = "active" if m.active else "disabled"
            chat = f"  preview chat: {m.chat_channel}" if m.chat_channel else ""
            print(f"{m.handle:24} {state:8} {', '.join(sorted(m.roles))}{chat}")
        return 0

    return await _run(settings, body)


# --- audit -------------------------------------------------------------------------------


async def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from storage.staff import verify_audit_chain

    async def body(c: Container) -> int:
        report = await verify_audit_chain(c.db.engine)
        if report.broken is not None:
            b = report.broken
            raise CliError(
                f"audit log broken at entry {b.entry_id} "
                f"({b.at.astimezone(BANGKOK):%Y-%m-%d %H:%M:%S} Bangkok): {b.reason}; "
                f"the {report.entries} entries before it are intact"
            )
        print(f"audit log intact: {report.entries} entries, head {report.head_hash}")
        return 0

    return await _run(settings, body)


# --- broadcast ---------------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    """ISO 8601; a time without a zone is Bangkok time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError("--at: an ISO date-time like 2026-12-01T09:00") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=BANGKOK)


def _summary(report: CampaignReport) -> str:
    c = report.campaign
    counts = report.counts
    parts = [f"{s.value} {counts[s]}" for s in DeliveryStatus if counts.get(s)]
    detail = ", ".join(parts) if parts else "no recipients yet"
    return f"campaign {c.id} ({c.status.value}): {report.total} recipients: {detail}"


async def cmd_broadcast_create(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.campaigns import CampaignDraft, CampaignService

    try:
        draft = CampaignDraft.from_mapping(
            {
                "title": args.title,
                "text_th": args.text_th,
                "text_en": args.text_en,
                "image_url": args.image_url,
                "link_url": args.link_url,
                "link_label_th": args.link_label_th,
                "link_label_en": args.link_label_en,
            }
        )
    except InvalidInput as exc:
        raise CliError(f"--{exc.field.replace('_', '-')}: {exc.reason}") from None

    async def body(c: Container) -> int:
        campaign = await CampaignService(c.db.uow, c.clock).create(draft, actor=CLI_ACTOR)
        print(campaign.id)
        print(
            f"draft created; preview with `selfcare broadcast preview {campaign.id} --staff "
            f"HANDLE`, send with `selfcare broadcast send {campaign.id}`",
            file=sys.stderr,
        )
        return 0

    return await _run(settings, body)


async def cmd_broadcast_preview(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.campaigns import CampaignService
    from core.services.staff import StaffService

    async def body(c: Container) -> int:
        member = await StaffService(c.db.uow, c.clock).get(args.staff)
        await CampaignService(c.db.uow, c.clock).preview(args.campaign, member, actor=CLI_ACTOR)
        print(
            f"preview queued to {member.handle}'s {member.chat_channel} chat (the worker sends it)"
        )
        return 0

    return await _run(settings, body)


async def cmd_broadcast_send(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.campaigns import CampaignService

    at = _parse_time(args.at) if args.at else None

    async def body(c: Container) -> int:
        service = CampaignService(c.db.uow, c.clock)
        campaign = await service.schedule(args.campaign, actor=CLI_ACTOR, at=at)
        when = campaign.scheduled_at or c.clock.now()
        print(
            f"campaign {campaign.id} scheduled for "
            f"{when.astimezone(BANGKOK):%Y-%m-%d %H:%M} (Bangkok); `selfcare worker` sends it"
        )
        if args.follow:
            return await _follow(service, campaign.id)
        return 0

    return await _run(settings, body)


async def _follow(service: Any, campaign_id: str) -> int:
    """A live progress bar until the campaign is done or cancelled (Ctrl-C stops watching,
    not the campaign)."""
    from tqdm import tqdm

    report = await service.report(campaign_id)
    bar = tqdm(total=max(report.total, 1), unit="msg", desc="sending", dynamic_ncols=True)
    try:
        while True:
            report = await service.report(campaign_id)
            bar.total = max(report.total, 1)
            bar.n = report.total - report.pending
            counts = report.counts
            bar.set_postfix(
                sent=counts.get(DeliveryStatus.SENT, 0),
                failed=counts.get(DeliveryStatus.FAILED, 0) + counts.get(DeliveryStatus.BLOCKED, 0),
                skipped=sum(v for k, v in counts.items() if k.value.startswith("skipped")),
                refresh=False,
            )
            bar.set_description(report.campaign.status.value)
            bar.refresh()
            if report.finished:
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    except (KeyboardInterrupt, asyncio.CancelledError):
        bar.close()
        print(f"stopped watching; stop the campaign with `selfcare broadcast cancel {campaign_id}`")
        return 130
    bar.close()
    print(_summary(report))
    return 0 if report.campaign.status is CampaignStatus.DONE else 1


async def cmd_broadcast_status(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.campaigns import CampaignService

    async def body(c: Container) -> int:
        report = await CampaignService(c.db.uow, c.clock).report(args.campaign)
        print(f"{report.campaign.title}")
        print(_summary(report))
        return 0

    return await _run(settings, body)


async def cmd_broadcast_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.campaigns import CampaignService

    async def body(c: Container) -> int:
        service = CampaignService(c.db.uow, c.clock)
        await service.cancel(args.campaign, actor=CLI_ACTOR)
        report = await service.report(args.campaign)
        print(f"cancelled: nothing more is sent. {_summary(report)}")
        return 0

    return await _run(settings, body)


async def cmd_broadcast_list(args: argparse.Namespace, settings: Settings) -> int:
    from core.services.campaigns import CampaignService

    async def body(c: Container) -> int:
        for campaign in await CampaignService(c.db.uow, c.clock).list(args.limit):
            created = campaign.created_at.astimezone(BANGKOK)
            when = f"{created:%Y-%m-%d %H:%M}"
            print(f"{campaign.id}  {campaign.status.value:9}  {when}  {campaign.title}")
        return 0

    return await _run(settings, body)


async def cmd_broadcast_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.broadcast import open_broadcaster

    async def body(c: Container) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with open_broadcaster(c) as broadcaster:
            print(
                f"campaign sender {broadcaster.worker} running on "
                f"{', '.join(broadcaster.channels)} (SIGTERM stops it)",
                flush=True,
            )
            if args.until_idle:
                await _until_idle(c, broadcaster, stop, args.poll)
            else:
                await broadcaster.run_forever(stop, args.poll)
        print("campaign sender stopped", flush=True)
        return 0

    return await _run(settings, body)


async def _until_idle(c: Container, broadcaster: Any, stop: asyncio.Event, poll: float) -> None:
    """Passes until no campaign is due or sending and no preview waits."""
    from sqlalchemy import func, select

    from storage import tables_staff as ts

    while not stop.is_set():
        await broadcaster.run_once(stop)
        now = c.clock.now()
        campaigns, rows = ts.campaigns, ts.campaign_deliveries
        async with c.db.engine.connect() as conn:
            busy = (
                await conn.execute(
                    select(func.count())
                    .select_from(campaigns)
                    .where(
                        (campaigns.c.status == CampaignStatus.SENDING.value)
                        | (
                            (campaigns.c.status == CampaignStatus.SCHEDULED.value)
                            & (campaigns.c.scheduled_at <= now)
                        )
                    )
                )
            ).scalar_one()
            previews = (
                await conn.execute(
                    select(func.count())
                    .select_from(rows)
                    .where(
                        rows.c.preview.is_(True),
                        rows.c.channel.in_(broadcaster.channels),
                        rows.c.status.in_(
                            [
                                DeliveryStatus.QUEUED.value,
                                DeliveryStatus.CLAIMED.value,
                                DeliveryStatus.SENDING.value,
                            ]
                        ),
                    )
                )
            ).scalar_one()
        if not busy and not previews:
            return
        await asyncio.sleep(poll)


# --- the parser ----------------------------------------------------------------------------


def register(group: Group, add: Add) -> None:
    """Add ``staff``, ``audit`` and ``broadcast`` to the parser (called by bot.cli)."""
    staff = group("staff", "staff accounts, roles and API tokens")
    sa = add(staff, "add", cmd_staff_add, "add a staff member with one or more roles")
    sa.add_argument("handle", help="login name: a-z 0-9 . _ -")
    sa.add_argument(
        "--role",
        action="append",
        required=True,
        choices=["support", "marketer", "admin"],
        help="repeat for several roles; each is a separate power",
    )
    sa.add_argument(
        "--chat", metavar="CHANNEL:CHAT_ID", help="their own chat, for campaign previews"
    )
    sd = add(staff, "disable", cmd_staff_disable, "disable a member and revoke their tokens")
    sd.add_argument("handle")
    st = add(staff, "token", cmd_staff_token, "issue an API token (printed once, stored hashed)")
    st.add_argument("handle")
    st.add_argument("--days", type=int, help="valid this many days (default: until revoked)")
    add(staff, "list", cmd_staff_list, "list staff, their roles and state")

    audit = group("audit", "the audit trail")
    add(audit, "verify", cmd_audit_verify, "check the hash chain; report the first broken link")

    broadcast = group("broadcast", "promotion campaigns to customers who opted in")
    bc = add(broadcast, "create", cmd_broadcast_create, "create a draft campaign; prints its id")
    bc.add_argument("--title", required=True, help="for staff only")
    bc.add_argument("--text-th", required=True, help="the promotion in Thai")
    bc.add_argument("--text-en", required=True, help="the promotion in English")
    bc.add_argument("--image-url", help="https URL of an image (JPEG or PNG)")
    bc.add_argument("--link-url", help="https URL of the link button")
    bc.add_argument("--link-label-th", help="the link button's label in Thai (≤20 characters)")
    bc.add_argument("--link-label-en", help="the link button's label in English (≤20)")
    bp = add(broadcast, "preview", cmd_broadcast_preview, "send the campaign to a staff chat")
    bp.add_argument("campaign")
    bp.add_argument("--staff", required=True, metavar="HANDLE", help="whose chat gets it")
    bs = add(broadcast, "send", cmd_broadcast_send, "send now, or schedule with --at")
    bs.add_argument("campaign")
    bs.add_argument("--at", help="ISO date-time; without a zone it is Bangkok time")
    bs.add_argument("--follow", action="store_true", help="watch it go with a progress bar")
    bt = add(broadcast, "status", cmd_broadcast_status, "recipients by status")
    bt.add_argument("campaign")
    bx = add(broadcast, "cancel", cmd_broadcast_cancel, "stop a campaign: nothing more is sent")
    bx.add_argument("campaign")
    bl = add(broadcast, "list", cmd_broadcast_list, "the newest campaigns")
    bl.add_argument("--limit", type=int, default=20)
    br = add(
        broadcast,
        "run",
        cmd_broadcast_run,
        "run only the campaign sender (`selfcare worker` runs it too)",
    )
    br.add_argument("--poll", type=float, default=1.0, help="seconds between passes")
    br.add_argument(
        "--until-idle", action="store_true", help="stop when no campaign is due or sending"
    )
