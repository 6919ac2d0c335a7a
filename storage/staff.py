"""Repositories of staff and promotions, the broadcast queue, and the audit chain check.

- :class:`SqlStaffRepository` and :class:`SqlCampaignRepository` implement the ports.
- :class:`SqlBroadcastQueue` is the worker's side (``bot/broadcast.py``): it starts due
  campaigns (one row per recipient chat), claims rows with ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, leases them to one worker, shares each channel's pace between workers, and
  takes over the leases of a worker that died.
- :func:`verify_audit_chain` walks the hash chain of ``audit_log``.

Tables: storage/tables_staff.py.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import (
    ColumnElement,
    Insert,
    bindparam,
    false,
    func,
    insert,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.domain import (
    AuditEntry,
    Campaign,
    CampaignStatus,
    ConsentPurpose,
    DeliveryCandidate,
    DeliveryStatus,
    StaffMember,
    StaffRole,
    new_id,
)
from core.errors import Conflict
from core.i18n import BANGKOK, DEFAULT_LANGUAGE
from core.services.audit import ChainBreak, ChainReport
from storage import tables as t
from storage import tables_staff as ts
from storage.crypto import FieldCipher, normalise_phone
from storage.locks import advisory_xact_lock, lock_key
from storage.repositories import AUDIT_GENESIS, audit_hash
from storage.tables_channels import unreachable_chats

__all__ = [
    "ClaimedRow",
    "SqlBroadcastQueue",
    "SqlCampaignRepository",
    "SqlStaffRepository",
    "StoredAuditEntry",
    "recent_audit",
    "verify_audit_chain",
]

_staff = ts.staff
_roles = ts.staff_roles
_tokens = ts.staff_tokens
_campaigns = ts.campaigns
_rows = ts.campaign_deliveries
_pacing = ts.broadcast_pacing
#: Rows a worker holds, and rows not settled yet.
_LEASED = (DeliveryStatus.CLAIMED.value, DeliveryStatus.SENDING.value)
_PENDING = (DeliveryStatus.QUEUED.value, *_LEASED)


# --- staff -------------------------------------------------------------------------------


class SqlStaffRepository:
    """Implements ``core.ports.StaffRepository``."""

    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    async def add(self, member: StaffMember) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(_staff).values(
                        id=member.id,
                        handle=member.handle,
                        active=member.active,
                        chat_channel=member.chat_channel,
                        chat_id=member.chat_id,
                        created_at=member.created_at,
                    )
                )
        except IntegrityError:
            raise Conflict(f"staff handle {member.handle} is taken") from None
        if member.roles:
            await self._conn.execute(
                insert(_roles), [{"staff_id": member.id, "role": r.value} for r in member.roles]
            )

    async def _members(self, rows: Sequence[RowMapping]) -> list[StaffMember]:
        ids = [r["id"] for r in rows]
        roles: dict[str, set[StaffRole]] = {i: set() for i in ids}
        if ids:
            found = await self._conn.execute(
                select(_roles.c.staff_id, _roles.c.role).where(_roles.c.staff_id.in_(ids))
            )
            for staff_id, role in found:
                roles[staff_id].add(StaffRole(role))
        return [
            StaffMember(
                id=r["id"],
                handle=r["handle"],
                roles=frozenset(roles[r["id"]]),
                active=r["active"],
                created_at=r["created_at"],
                chat_channel=r["chat_channel"],
                chat_id=r["chat_id"],
            )
            for r in rows
        ]

    async def get_by_handle(self, handle: str) -> StaffMember | None:
        rows = (
            await self._conn.execute(select(_staff).where(_staff.c.handle == handle))
        ).mappings()
        found = await self._members(list(rows))
        return found[0] if found else None

    async def list(self) -> list[StaffMember]:
        rows = (await self._conn.execute(select(_staff).order_by(_staff.c.handle))).mappings()
        return await self._members(list(rows))

    async def set_active(self, staff_id: str, active: bool, at: datetime) -> None:
        await self._conn.execute(
            update(_staff)
            .where(_staff.c.id == staff_id)
            .values(active=active, disabled_at=None if active else at)
        )

    async def add_token(
        self, staff_id: str, token_hash: bytes, created_at: datetime, expires_at: datetime | None
    ) -> str:
        token_id = new_id()
        await self._conn.execute(
            insert(_tokens).values(
                id=token_id,
                staff_id=staff_id,
                token_hash=token_hash,
                created_at=created_at,
                expires_at=expires_at,
            )
        )
        return token_id

    async def revoke_tokens(self, staff_id: str, at: datetime) -> int:
        result = await self._conn.execute(
            update(_tokens)
            .where(_tokens.c.staff_id == staff_id, _tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)

    async def by_token_hash(self, token_hash: bytes, now: datetime) -> StaffMember | None:
        query = (
            select(_staff)
            .join(_tokens, _tokens.c.staff_id == _staff.c.id)
            .where(
                _tokens.c.token_hash == token_hash,
                _tokens.c.revoked_at.is_(None),
                (_tokens.c.expires_at.is_(None)) | (_tokens.c.expires_at > now),
                _staff.c.active == true(),
            )
        )
        found = await self._members(list((await self._conn.execute(query)).mappings()))
        return found[0] if found else None

    async def customer_id_by_account_no(self, account_no: str) -> str | None:
        query = select(t.customers.c.id).where(t.customers.c.account_no == account_no)
        return (await self._conn.execute(query)).scalar_one_or_none()

    async def customer_id_by_phone(self, phone: str) -> str | None:
        try:
            bidx = self._cipher.blind_index("phone", normalise_phone(phone))
        except ValueError:
            return None
        query = select(t.customers.c.id).where(t.customers.c.phone_bidx == bidx).limit(1)
        return (await self._conn.execute(query)).scalar_one_or_none()


# --- campaigns ---------------------------------------------------------------------------


def _campaign(row: RowMapping) -> Campaign:
    return Campaign(
        id=row["id"],
        title=row["title"],
        text_th=row["text_th"],
        text_en=row["text_en"],
        status=CampaignStatus(row["status"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        image_url=row["image_url"],
        link_url=row["link_url"],
        link_label_th=row["link_label_th"],
        link_label_en=row["link_label_en"],
        scheduled_at=row["scheduled_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        cancelled_at=row["cancelled_at"],
    )


class SqlCampaignRepository:
    """Implements ``core.ports.CampaignRepository``."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, campaign: Campaign) -> None:
        await self._conn.execute(
            insert(_campaigns).values(
                id=campaign.id,
                title=campaign.title,
                text_th=campaign.text_th,
                text_en=campaign.text_en,
                image_url=campaign.image_url,
                link_url=campaign.link_url,
                link_label_th=campaign.link_label_th,
                link_label_en=campaign.link_label_en,
                status=campaign.status.value,
                scheduled_at=campaign.scheduled_at,
                created_by=campaign.created_by,
                created_at=campaign.created_at,
                updated_at=campaign.created_at,
            )
        )

    async def get(self, campaign_id: str) -> Campaign | None:
        query = select(_campaigns).where(_campaigns.c.id == campaign_id)
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else _campaign(row)

    async def list(self, limit: int = 50) -> list[Campaign]:
        query = (
            select(_campaigns)
            .order_by(_campaigns.c.created_at.desc(), _campaigns.c.id)
            .limit(limit)
        )
        return [_campaign(r) for r in (await self._conn.execute(query)).mappings()]

    async def change_status(
        self,
        campaign_id: str,
        allowed: Collection[CampaignStatus],
        status: CampaignStatus,
        at: datetime,
        *,
        scheduled_at: datetime | None = None,
    ) -> bool:
        values: dict[str, object] = {"status": status.value, "updated_at": at}
        if scheduled_at is not None:
            values["scheduled_at"] = scheduled_at
        if status is CampaignStatus.CANCELLED:
            values["cancelled_at"] = at
        elif status is CampaignStatus.DONE:
            values["finished_at"] = at
        elif status is CampaignStatus.SENDING:
            values["started_at"] = at
        result = await self._conn.execute(
            update(_campaigns)
            .where(
                _campaigns.c.id == campaign_id, _campaigns.c.status.in_([a.value for a in allowed])
            )
            .values(**values)
        )
        return bool(result.rowcount)

    async def counts(self, campaign_id: str) -> dict[DeliveryStatus, int]:
        query = (
            select(_rows.c.status, func.count())
            .where(_rows.c.campaign_id == campaign_id, _rows.c.preview == false())
            .group_by(_rows.c.status)
        )
        return {DeliveryStatus(s): int(n) for s, n in await self._conn.execute(query)}

    async def queue_preview(
        self, campaign_id: str, channel: str, chat_id: str, now: datetime
    ) -> None:
        where = (
            _rows.c.campaign_id == campaign_id,
            _rows.c.channel == channel,
            _rows.c.chat_id == chat_id,
            _rows.c.preview == true(),
        )
        again = await self._conn.execute(
            update(_rows)
            .where(*where, _rows.c.status.not_in(_LEASED))
            .values(
                status=DeliveryStatus.QUEUED.value,
                attempt=0,
                error=None,
                sent_at=None,
                retry_key=None,
                claimed_by=None,
                lease_until=None,
            )
        )
        if again.rowcount:
            return
        exists = (await self._conn.execute(select(_rows.c.id).where(*where))).first()
        if exists is None:  # else: a preview of it is on its way right now
            await self._conn.execute(
                insert(_rows).values(
                    campaign_id=campaign_id,
                    customer_id=None,
                    channel=channel,
                    chat_id=chat_id,
                    preview=True,
                    status=DeliveryStatus.QUEUED.value,
                    attempt=0,
                    created_at=now,
                )
            )


# --- the broadcast queue (worker side) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """A row leased to this worker: what it takes to send it (again)."""

    id: int
    campaign_id: str
    channel: str
    chat_id: str
    language: str
    attempt: int
    retry_key: str | None


def bangkok_day_start(now: datetime) -> datetime:
    """Midnight in Bangkok on ``now``'s Bangkok date, as an aware datetime."""
    local = now.astimezone(BANGKOK)
    return datetime.combine(local.date(), time(0), tzinfo=BANGKOK)


def _upsert_ignore(conn: AsyncConnection, table: object) -> Insert:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt: Insert = dialect.insert(table).on_conflict_do_nothing()
    return stmt


class SqlBroadcastQueue:
    """The recipient rows of campaigns as a work queue shared by any number of workers."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @property
    def _pg(self) -> bool:
        return self._conn.dialect.name == "postgresql"

    # --- campaigns starting and finishing ------------------------------------------

    async def due_campaigns(self, now: datetime) -> list[str]:
        query = select(_campaigns.c.id).where(
            _campaigns.c.status == CampaignStatus.SCHEDULED.value,
            _campaigns.c.scheduled_at <= now,
        )
        return list((await self._conn.execute(query.order_by(_campaigns.c.scheduled_at))).scalars())

    async def start(self, campaign_id: str, channels: Collection[str], now: datetime) -> int | None:
        """Move a due campaign to ``sending`` and build its audience; None when another
        worker started it first. Returns how many recipient rows were made."""
        moved = await self._conn.execute(
            update(_campaigns)
            .where(
                _campaigns.c.id == campaign_id,
                _campaigns.c.status == CampaignStatus.SCHEDULED.value,
                _campaigns.c.scheduled_at <= now,
            )
            .values(status=CampaignStatus.SENDING.value, started_at=now, updated_at=now)
        )
        if not moved.rowcount:
            return None
        return await self.add_audience(campaign_id, channels, now)

    async def add_audience(self, campaign_id: str, channels: Collection[str], now: datetime) -> int:
        """One queued row for every linked chat (of ``channels``) whose customer's latest
        marketing consent is granted, unless the chat has a row already."""
        ledger = t.consent_ledger
        latest_grant = (
            select(ledger.c.granted)
            .where(
                ledger.c.customer_id == t.chat_links.c.customer_id,
                ledger.c.purpose == ConsentPurpose.MARKETING.value,
            )
            .order_by(ledger.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        has_row = (
            select(_rows.c.id)
            .where(
                _rows.c.campaign_id == campaign_id,
                _rows.c.channel == t.chat_links.c.channel,
                _rows.c.chat_id == t.chat_links.c.chat_id,
                _rows.c.preview == false(),
            )
            .exists()
        )
        audience = select(
            literal(campaign_id),
            t.chat_links.c.customer_id,
            t.chat_links.c.channel,
            t.chat_links.c.chat_id,
            false(),
            literal(DeliveryStatus.QUEUED.value),
            literal(0),
            literal(now, type_=_rows.c.created_at.type),
        ).where(
            t.chat_links.c.channel.in_(list(channels)),
            latest_grant == true(),
            ~has_row,
        )
        stmt = _upsert_ignore(self._conn, _rows).from_select(
            [
                "campaign_id",
                "customer_id",
                "channel",
                "chat_id",
                "preview",
                "status",
                "attempt",
                "created_at",
            ],
            audience,
        )
        return int((await self._conn.execute(stmt)).rowcount)

    async def sending_campaigns_without_work(self) -> list[str]:
        """Campaigns in ``sending`` with nothing queued or being sent."""
        busy = (
            select(_rows.c.id)
            .where(
                _rows.c.campaign_id == _campaigns.c.id,
                _rows.c.preview == false(),
                _rows.c.status.in_(_PENDING),
            )
            .exists()
        )
        query = select(_campaigns.c.id).where(
            _campaigns.c.status == CampaignStatus.SENDING.value, ~busy
        )
        return list((await self._conn.execute(query)).scalars())

    async def finish(self, campaign_id: str, channels: Collection[str], now: datetime) -> bool:
        """Mark a campaign whose rows are all settled ``done`` — unless customers who
        opted in meanwhile got rows now (then it goes on). True when it is done."""
        await advisory_xact_lock(self._conn, f"campaign:{campaign_id}")
        busy = (
            select(_rows.c.id)
            .where(
                _rows.c.campaign_id == campaign_id,
                _rows.c.preview == false(),
                _rows.c.status.in_(_PENDING),
            )
            .limit(1)
        )
        if (await self._conn.execute(busy)).first() is not None:
            return False
        if await self.add_audience(campaign_id, channels, now):
            return False
        result = await self._conn.execute(
            update(_campaigns)
            .where(
                _campaigns.c.id == campaign_id,
                _campaigns.c.status == CampaignStatus.SENDING.value,
            )
            .values(status=CampaignStatus.DONE.value, finished_at=now, updated_at=now)
        )
        return bool(result.rowcount)

    # --- claiming --------------------------------------------------------------------

    async def claim(self, channel: str, limit: int, now: datetime) -> list[DeliveryCandidate]:
        """Lock up to ``limit`` queued rows of ``channel`` (previews first, then the rows
        of campaigns that are sending, oldest first) that no other worker holds, with
        what is true of each now. The rows stay queued until :meth:`lease` or
        :meth:`settle_unsent` in the same transaction."""
        query = (
            select(
                _rows.c.id,
                _rows.c.campaign_id,
                _rows.c.customer_id,
                _rows.c.chat_id,
                _rows.c.preview,
                _rows.c.attempt,
            )
            .join(_campaigns, _campaigns.c.id == _rows.c.campaign_id)
            .where(
                _rows.c.channel == channel,
                _rows.c.status == DeliveryStatus.QUEUED.value,
                (_rows.c.preview == true()) | (_campaigns.c.status == CampaignStatus.SENDING.value),
            )
            .order_by(_rows.c.preview.desc(), _rows.c.id)
            .limit(limit)
        )
        if self._pg:
            query = query.with_for_update(skip_locked=True, of=_rows)
        rows = (await self._conn.execute(query)).mappings().all()
        if not rows:
            return []
        customers = sorted({r["customer_id"] for r in rows if r["customer_id"] is not None})
        chats = sorted({r["chat_id"] for r in rows})
        if self._pg and customers:
            # Two workers deciding on one customer's daily cap at once take turns.
            keys = sorted(lock_key(f"promotions:{c}") for c in customers)
            await self._conn.execute(
                text(
                    "SELECT count(pg_advisory_xact_lock(k)) FROM "
                    "(SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY 1) AS ordered"
                ),
                {"keys": keys},
            )
        granted = await self._consent(customers)
        today = await self._promotions_today(customers, now)
        linked = await self._links(channel, chats)
        unreachable = await self._unreachable(channel, chats)
        languages = await self._languages(channel, chats, customers)
        return [
            DeliveryCandidate(
                id=r["id"],
                campaign_id=r["campaign_id"],
                customer_id=r["customer_id"],
                channel=channel,
                chat_id=r["chat_id"],
                language=languages.get(r["chat_id"])
                or languages.get(r["customer_id"] or "")
                or DEFAULT_LANGUAGE,
                preview=bool(r["preview"]),
                attempt=r["attempt"],
                consent_granted=granted.get(r["customer_id"] or "", False),
                promotions_today=len(today.get(r["customer_id"] or "", set()) - {r["campaign_id"]}),
                linked=(r["chat_id"], r["customer_id"]) in linked,
                reachable=r["chat_id"] not in unreachable,
            )
            for r in rows
        ]

    async def _consent(self, customers: Sequence[str]) -> dict[str, bool]:
        if not customers:
            return {}
        ledger = t.consent_ledger
        latest = (
            select(func.max(ledger.c.id))
            .where(
                ledger.c.customer_id.in_(customers),
                ledger.c.purpose == ConsentPurpose.MARKETING.value,
            )
            .group_by(ledger.c.customer_id)
        )
        query = select(ledger.c.customer_id, ledger.c.granted).where(ledger.c.id.in_(latest))
        return {c: bool(g) for c, g in await self._conn.execute(query)}

    async def _promotions_today(
        self, customers: Sequence[str], now: datetime
    ) -> dict[str, set[str]]:
        """The campaigns each customer was sent (or is being sent) since Bangkok midnight."""
        if not customers:
            return {}
        query = (
            select(_rows.c.customer_id, _rows.c.campaign_id)
            .where(
                _rows.c.customer_id.in_(customers),
                _rows.c.preview == false(),
                _rows.c.status.in_([DeliveryStatus.SENT.value, *_LEASED]),
                _rows.c.claimed_at >= bangkok_day_start(now),
            )
            .distinct()
        )
        found: dict[str, set[str]] = {}
        for customer_id, campaign_id in await self._conn.execute(query):
            found.setdefault(customer_id, set()).add(campaign_id)
        return found

    async def _links(self, channel: str, chats: Sequence[str]) -> set[tuple[str, str]]:
        links = t.chat_links
        query = select(links.c.chat_id, links.c.customer_id).where(
            links.c.channel == channel, links.c.chat_id.in_(chats)
        )
        return {(chat, customer) for chat, customer in await self._conn.execute(query)}

    async def _unreachable(self, channel: str, chats: Sequence[str]) -> set[str]:
        u = unreachable_chats
        query = select(u.c.chat_id).where(u.c.channel == channel, u.c.chat_id.in_(chats))
        return set((await self._conn.execute(query)).scalars())

    async def _languages(
        self, channel: str, chats: Sequence[str], customers: Sequence[str]
    ) -> dict[str, str]:
        """The chat's own language (what it chose in the conversation), else the
        customer's, keyed by chat id or customer id."""
        found: dict[str, str] = {}
        if customers:
            query = select(t.customers.c.id, t.customers.c.language).where(
                t.customers.c.id.in_(customers)
            )
            found.update({k: v for k, v in await self._conn.execute(query)})
        conv = t.conversations
        query = select(conv.c.chat_id, conv.c.language).where(
            conv.c.channel == channel, conv.c.chat_id.in_(chats)
        )
        found.update({k: v for k, v in await self._conn.execute(query)})
        return found

    # --- after the decision ----------------------------------------------------------

    async def settle_unsent(self, decisions: dict[int, DeliveryStatus], now: datetime) -> None:
        """Give claimed (still queued) rows their final status without sending."""
        by_status: dict[DeliveryStatus, list[int]] = {}
        for row_id, status in decisions.items():
            by_status.setdefault(status, []).append(row_id)
        for status, ids in by_status.items():
            await self._conn.execute(
                update(_rows)
                .where(_rows.c.id.in_(ids))
                .values(status=status.value, claimed_at=now, lease_until=None)
            )

    async def lease(
        self,
        rows: Iterable[tuple[int, str, str | None]],
        worker: str,
        now: datetime,
        until: datetime,
    ) -> None:
        """Lease (row id, language, retry key) rows to ``worker``: status ``sending``,
        one more attempt."""
        params = [{"row_id": i, "lang": lang, "key": key} for i, lang, key in rows]
        if not params:
            return
        await self._conn.execute(
            update(_rows)
            .where(_rows.c.id == bindparam("row_id"))
            .values(
                status=DeliveryStatus.CLAIMED.value,
                attempt=_rows.c.attempt + 1,
                language=bindparam("lang"),
                retry_key=bindparam("key"),
                claimed_by=worker,
                claimed_at=now,
                lease_until=until,
            ),
            params,
        )

    def _mine(self, ids: Collection[int], worker: str) -> tuple[ColumnElement[bool], ...]:
        return (
            _rows.c.id.in_(list(ids)),
            _rows.c.status.in_(_LEASED),
            _rows.c.claimed_by == worker,
        )

    async def launching(self, ids: Collection[int], worker: str) -> None:
        """Rows about to be handed to the platform (``sending``): from now on a crash
        leaves them in doubt. Committed before the request goes."""
        if ids:
            await self._conn.execute(
                update(_rows)
                .where(*self._mine(ids, worker))
                .values(status=DeliveryStatus.SENDING.value)
            )

    async def record(
        self,
        ids: Collection[int],
        worker: str,
        status: DeliveryStatus,
        now: datetime,
        error: str | None = None,
    ) -> int:
        """Settle rows this worker holds (a row taken over by another worker meanwhile is
        left to that one)."""
        if not ids:
            return 0
        values: dict[str, object] = {"status": status.value, "lease_until": None}
        if status is DeliveryStatus.SENT:
            values["sent_at"] = now
        if error is not None:
            values["error"] = error[:200]
        result = await self._conn.execute(
            update(_rows).where(*self._mine(ids, worker)).values(**values)
        )
        return int(result.rowcount)

    async def release(
        self, ids: Collection[int], worker: str, *, attempted: bool, error: str | None = None
    ) -> None:
        """Hand rows this worker holds back to the queue, certainly unsent. Without
        ``attempted`` (never handed to the platform) the attempt is not counted."""
        if not ids:
            return
        values: dict[str, object] = {
            "status": DeliveryStatus.QUEUED.value,
            "retry_key": None,
            "claimed_by": None,
            "lease_until": None,
        }
        if not attempted:
            values["attempt"] = _rows.c.attempt - 1
        if error is not None:
            values["error"] = error[:200]
        await self._conn.execute(update(_rows).where(*self._mine(ids, worker)).values(**values))

    async def extend(self, ids: Collection[int], worker: str, until: datetime) -> None:
        if ids:
            await self._conn.execute(
                update(_rows).where(*self._mine(ids, worker)).values(lease_until=until)
            )

    # --- leases of workers that died -------------------------------------------------

    async def requeue_expired_claims(self, channel: str, now: datetime) -> int:
        """Rows a vanished worker had claimed but not handed to the platform: queued again
        (their attempt not counted)."""
        result = await self._conn.execute(
            update(_rows)
            .where(
                _rows.c.channel == channel,
                _rows.c.status == DeliveryStatus.CLAIMED.value,
                _rows.c.lease_until < now,
            )
            .values(
                status=DeliveryStatus.QUEUED.value,
                attempt=_rows.c.attempt - 1,
                retry_key=None,
                claimed_by=None,
                lease_until=None,
            )
        )
        return int(result.rowcount)

    async def fail_expired(self, channel: str, now: datetime, error: str) -> int:
        """Rows of a channel that cannot be sent twice safely, whose worker vanished
        mid-send: they may have been delivered, so they are never sent again."""
        result = await self._conn.execute(
            update(_rows)
            .where(
                _rows.c.channel == channel,
                _rows.c.status == DeliveryStatus.SENDING.value,
                _rows.c.lease_until < now,
            )
            .values(status=DeliveryStatus.FAILED.value, error=error[:200], lease_until=None)
        )
        return int(result.rowcount)

    async def expired_requests(self, channel: str, now: datetime, limit: int = 20) -> list[str]:
        """Retry keys of requests whose worker vanished mid-send (idempotent channels)."""
        query = (
            select(_rows.c.retry_key)
            .where(
                _rows.c.channel == channel,
                _rows.c.status == DeliveryStatus.SENDING.value,
                _rows.c.lease_until < now,
                _rows.c.retry_key.is_not(None),
            )
            .distinct()
            .limit(limit)
        )
        return [k for k in (await self._conn.execute(query)).scalars() if k]

    async def take_over(
        self, retry_key: str, worker: str, now: datetime, until: datetime
    ) -> list[ClaimedRow]:
        """Take every row of one expired request at once (all or nothing), to send it
        again with the same retry key."""
        taken = await self._conn.execute(
            update(_rows)
            .where(
                _rows.c.retry_key == retry_key,
                _rows.c.status == DeliveryStatus.SENDING.value,
                _rows.c.lease_until < now,
            )
            .values(claimed_by=worker, lease_until=until, attempt=_rows.c.attempt + 1)
            .returning(
                _rows.c.id,
                _rows.c.campaign_id,
                _rows.c.channel,
                _rows.c.chat_id,
                _rows.c.language,
                _rows.c.attempt,
            )
        )
        return [
            ClaimedRow(
                id=r.id,
                campaign_id=r.campaign_id,
                channel=r.channel,
                chat_id=r.chat_id,
                language=r.language or DEFAULT_LANGUAGE,
                attempt=r.attempt,
                retry_key=retry_key,
            )
            for r in taken
        ]

    # --- pacing shared by all workers ------------------------------------------------

    async def _pacing_row(self, channel: str, now: datetime) -> datetime:
        await self._conn.execute(
            _upsert_ignore(self._conn, _pacing).values(channel=channel, next_at=now)
        )
        query = select(_pacing.c.next_at).where(_pacing.c.channel == channel)
        if self._pg:
            query = query.with_for_update()
        value: datetime = (await self._conn.execute(query)).scalar_one()
        return value

    async def reserve(
        self, channel: str, requests: int, per_second: float, now: datetime
    ) -> datetime:
        """Reserve the next ``requests`` sending slots of ``channel`` at ``per_second``;
        returns when the first may go (the others follow every 1/``per_second`` s)."""
        start = max(await self._pacing_row(channel, now), now)
        await self._conn.execute(
            update(_pacing)
            .where(_pacing.c.channel == channel)
            .values(next_at=start + timedelta(seconds=requests / per_second))
        )
        return start

    async def pause(self, channel: str, until: datetime, now: datetime) -> None:
        """Nobody sends on ``channel`` before ``until`` (a platform's retry_after)."""
        current = await self._pacing_row(channel, now)
        if until > current:
            await self._conn.execute(
                update(_pacing).where(_pacing.c.channel == channel).values(next_at=until)
            )

    async def paused_until(self, channel: str) -> datetime | None:
        query = select(_pacing.c.next_at).where(_pacing.c.channel == channel)
        value: datetime | None = (await self._conn.execute(query)).scalar_one_or_none()
        return value

    # --- housekeeping ----------------------------------------------------------------

    async def campaigns(self, ids: Collection[str]) -> dict[str, Campaign]:
        if not ids:
            return {}
        query = select(_campaigns).where(_campaigns.c.id.in_(list(ids)))
        return {r["id"]: _campaign(r) for r in (await self._conn.execute(query)).mappings()}


# --- the audit chain ---------------------------------------------------------------------


async def verify_audit_chain(engine: AsyncEngine, *, batch_size: int = 1000) -> ChainReport:
    """Walk ``audit_log`` from its first entry: each must name the previous entry's hash
    and hash to its own. Returns the first entry where that fails (an entry edited,
    removed or inserted), or the chain's length and head."""
    audit = t.audit_log
    expected_prev = AUDIT_GENESIS
    last_id = 0
    checked = 0
    async with engine.connect() as conn:
        while True:
            query = select(audit).where(audit.c.id > last_id).order_by(audit.c.id).limit(batch_size)
            rows = (await conn.execute(query)).mappings().all()
            if not rows:
                return ChainReport(entries=checked, head_hash=expected_prev)
            for row in rows:
                broken = _check_link(row, expected_prev, last_id)
                if broken is not None:
                    return ChainReport(entries=checked, head_hash=expected_prev, broken=broken)
                expected_prev = row["hash"]
                last_id = row["id"]
                checked += 1


def _check_link(row: RowMapping, expected_prev: str, previous_id: int) -> ChainBreak | None:
    where = (row["id"], row["at"])
    if row["prev_hash"] != expected_prev:
        before = f"entry {previous_id}" if previous_id else "the start of the log"
        return ChainBreak(
            *where,
            reason=f"it does not follow {before}: an entry between them was removed, "
            "inserted or changed",
        )
    try:
        details = json.loads(row["details"])
    except ValueError:
        return ChainBreak(*where, reason="its details are not valid JSON: it was edited")
    entry = AuditEntry(
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        details=details,
        at=row["at"],
    )
    if audit_hash(row["prev_hash"], entry) != row["hash"]:
        return ChainBreak(*where, reason="its hash does not match its contents: it was edited")
    return None


@dataclass(frozen=True, slots=True)
class StoredAuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, object]


async def recent_audit(
    engine: AsyncEngine, *, limit: int = 50, before_id: int | None = None
) -> list[StoredAuditEntry]:
    """The newest audit entries (before ``before_id``), newest first."""
    audit = t.audit_log
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit.c.id < before_id)
    async with engine.connect() as conn:
        found = (await conn.execute(query)).mappings().all()
    return [
        StoredAuditEntry(
            id=r["id"],
            at=r["at"],
            actor=r["actor"],
            action=r["action"],
            subject=r["subject"],
            details=json.loads(r["details"]),
        )
        for r in found
    ]
