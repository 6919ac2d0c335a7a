"""Repositories of the integrations: subscriber endpoints, events out and their deliveries,
the inbox of signed events in, and import checkpoints.

- :class:`SqlWebhookSubscriptions` and :class:`SqlEventPublisher` implement the core's
  ``WebhookSubscriptions`` and ``EventPublisher`` ports;
- :class:`SqlWebhookDeliveries` is the worker's side: claim what is due, record outcomes;
- :class:`SqlIntegrationInbox` makes ``webhook-id`` an idempotency key;
- :class:`SqlImportCheckpoints` lets ``selfcare import`` resume after the last commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import new_id
from core.integration_events import (
    DeliveryStatus,
    EndpointSummary,
    OutboundEvent,
    WebhookEndpoint,
)
from storage import tables_integrations as ti
from storage.crypto import FieldCipher

__all__ = [
    "DueDelivery",
    "ImportCheckpoint",
    "SqlEventPublisher",
    "SqlImportCheckpoints",
    "SqlIntegrationInbox",
    "SqlWebhookDeliveries",
    "SqlWebhookSubscriptions",
    "StoredAnswer",
    "event_body",
]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event_body(event: OutboundEvent, occurred_at: datetime) -> str:
    """The JSON body subscribers receive (Standard Webhooks' ``type``/``timestamp``/``data``)."""
    return json.dumps(
        {"type": event.type, "timestamp": _iso(occurred_at), "data": dict(event.data)},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _events_of(raw: str) -> tuple[str, ...]:
    return tuple(json.loads(raw))


# --- endpoints -----------------------------------------------------------------------------


class SqlWebhookSubscriptions:
    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    async def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        assert endpoint.created_at is not None
        await self._conn.execute(
            insert(ti.webhook_endpoints).values(
                id=endpoint.id,
                url=endpoint.url,
                events=json.dumps(list(endpoint.events)),
                secret_enc=self._cipher.encrypt(
                    endpoint.secret, table="webhook_endpoints", column="secret", row_id=endpoint.id
                ),
                description=endpoint.description,
                active=True,
                created_at=endpoint.created_at,
            )
        )

    async def get_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        e = ti.webhook_endpoints
        row = (await self._conn.execute(select(e).where(e.c.id == endpoint_id))).mappings().first()
        if row is None:
            return None
        return WebhookEndpoint(
            id=row["id"],
            url=row["url"],
            events=_events_of(row["events"]),
            secret=self._cipher.decrypt(
                row["secret_enc"], table="webhook_endpoints", column="secret", row_id=row["id"]
            ),
            description=row["description"],
            created_at=row["created_at"],
        )

    async def list_endpoints(self) -> list[EndpointSummary]:
        e, d = ti.webhook_endpoints, ti.webhook_deliveries

        def count(status: DeliveryStatus) -> Any:
            return func.coalesce(func.sum(case((d.c.status == status.value, 1), else_=0)), 0)

        query = (
            select(
                e.c.id,
                e.c.url,
                e.c.events,
                e.c.description,
                e.c.created_at,
                count(DeliveryStatus.PENDING).label("pending"),
                count(DeliveryStatus.DELIVERED).label("delivered"),
                count(DeliveryStatus.DEAD).label("dead"),
            )
            .select_from(e.outerjoin(d, d.c.endpoint_id == e.c.id))
            .group_by(e.c.id, e.c.url, e.c.events, e.c.description, e.c.created_at)
            .order_by(e.c.created_at, e.c.id)
        )
        return [
            EndpointSummary(
                id=r["id"],
                url=r["url"],
                events=_events_of(r["events"]),
                description=r["description"],
                created_at=r["created_at"],
                pending=int(r["pending"]),
                delivered=int(r["delivered"]),
                dead=int(r["dead"]),
            )
            for r in (await self._conn.execute(query)).mappings()
        ]

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        e = ti.webhook_endpoints
        # Its deliveries go with it (ON DELETE CASCADE; SQLite runs with foreign keys on).
        result = await self._conn.execute(e.delete().where(e.c.id == endpoint_id))
        return bool(result.rowcount)

    async def replay(
        self,
        *,
        now: datetime,
        event_ids: Sequence[str] = (),
        endpoint_id: str | None = None,
        dead_only: bool = False,
        since: datetime | None = None,
    ) -> int:
        if not (event_ids or endpoint_id or dead_only or since):
            raise ValueError("replay needs a selection: events, an endpoint, dead, or since")
        d, ev = ti.webhook_deliveries, ti.integration_events
        created = 0
        if event_ids and endpoint_id:
            have = set(
                (
                    await self._conn.execute(
                        select(d.c.event_id).where(
                            d.c.endpoint_id == endpoint_id, d.c.event_id.in_(list(event_ids))
                        )
                    )
                ).scalars()
            )
            known = (
                await self._conn.execute(
                    select(ev.c.event_id).where(ev.c.event_id.in_(list(event_ids)))
                )
            ).scalars()
            missing = [event_id for event_id in known if event_id not in have]
            if missing:
                await self._conn.execute(
                    insert(d),
                    [_new_delivery(event_id, endpoint_id, now) for event_id in missing],
                )
                created = len(missing)
        conditions: list[ColumnElement[bool]] = []
        if event_ids:
            conditions.append(d.c.event_id.in_(list(event_ids)))
        if endpoint_id:
            conditions.append(d.c.endpoint_id == endpoint_id)
        if dead_only:
            conditions.append(d.c.status == DeliveryStatus.DEAD.value)
        if since is not None:
            conditions.append(
                d.c.event_id.in_(select(ev.c.event_id).where(ev.c.occurred_at >= since))
            )
        result = await self._conn.execute(
            update(d)
            .where(and_(*conditions))
            .values(
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                window_started_at=now,
                finished_at=None,
            )
        )
        return max(int(result.rowcount), created)


def _new_delivery(event_id: str, endpoint_id: str, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "endpoint_id": endpoint_id,
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "window_started_at": now,
    }


# --- events out ----------------------------------------------------------------------------


class SqlEventPublisher:
    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    async def publish(self, event: OutboundEvent, *, occurred_at: datetime) -> str:
        event_id = f"msg_{new_id()}"
        body = event_body(event, occurred_at)
        await self._conn.execute(
            insert(ti.integration_events).values(
                event_id=event_id,
                type=event.type,
                payload_enc=self._cipher.encrypt(
                    body, table="integration_events", column="payload", row_id=event_id
                ),
                occurred_at=occurred_at,
            )
        )
        e = ti.webhook_endpoints
        rows = await self._conn.execute(select(e.c.id, e.c.events).where(e.c.active.is_(True)))
        subscribed = [eid for eid, events in rows if event.type in _events_of(events)]
        if subscribed:
            await self._conn.execute(
                insert(ti.webhook_deliveries),
                [_new_delivery(event_id, eid, occurred_at) for eid in subscribed],
            )
        return event_id


# --- deliveries (the worker) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """One event for one endpoint, ready to send: ``body`` is the exact JSON to POST."""

    id: int
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    secret: str
    body: str
    attempts: int
    window_started_at: datetime


class SqlWebhookDeliveries:
    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        self._conn = conn
        self._cipher = cipher

    async def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[DueDelivery]:
        """Deliveries whose time has come, oldest first; each is leased (its next attempt
        moved to ``now + lease``) so another worker skips it and a crash retries it."""
        d, e, ev = ti.webhook_deliveries, ti.webhook_endpoints, ti.integration_events
        query = (
            select(
                d.c.id,
                d.c.event_id,
                d.c.endpoint_id,
                d.c.attempts,
                d.c.window_started_at,
                e.c.url,
                e.c.secret_enc,
                ev.c.type,
                ev.c.payload_enc,
            )
            .join(e, e.c.id == d.c.endpoint_id)
            .join(ev, ev.c.event_id == d.c.event_id)
            .where(
                d.c.status == DeliveryStatus.PENDING.value,
                d.c.next_attempt_at <= now,
                e.c.active.is_(True),
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=d)
        rows = (await self._conn.execute(query)).mappings().all()
        if not rows:
            return []
        await self._conn.execute(
            update(d).where(d.c.id.in_([r["id"] for r in rows])).values(next_attempt_at=now + lease)
        )
        return [
            DueDelivery(
                id=r["id"],
                event_id=r["event_id"],
                event_type=r["type"],
                endpoint_id=r["endpoint_id"],
                url=r["url"],
                secret=self._cipher.decrypt(
                    r["secret_enc"],
                    table="webhook_endpoints",
                    column="secret",
                    row_id=r["endpoint_id"],
                ),
                body=self._cipher.decrypt(
                    r["payload_enc"],
                    table="integration_events",
                    column="payload",
                    row_id=r["event_id"],
                ),
                attempts=r["attempts"],
                window_started_at=r["window_started_at"],
            )
            for r in rows
        ]

    async def mark_delivered(self, delivery_id: int, now: datetime, status_code: int) -> None:
        d = ti.webhook_deliveries
        await self._conn.execute(
            update(d)
            .where(d.c.id == delivery_id)
            .values(
                status=DeliveryStatus.DELIVERED.value,
                attempts=d.c.attempts + 1,
                last_attempt_at=now,
                last_status=status_code,
                last_error=None,
                finished_at=now,
            )
        )

    async def mark_failed(
        self,
        delivery_id: int,
        now: datetime,
        *,
        status_code: int | None,
        error: str,
        retry_at: datetime | None,
    ) -> None:
        """Record a failed attempt; ``retry_at=None`` dead-letters the delivery."""
        d = ti.webhook_deliveries
        values: dict[str, Any] = {
            "attempts": d.c.attempts + 1,
            "last_attempt_at": now,
            "last_status": status_code,
            "last_error": error[:200],
        }
        if retry_at is None:
            values.update(status=DeliveryStatus.DEAD.value, finished_at=now)
        else:
            values["next_attempt_at"] = retry_at
        await self._conn.execute(update(d).where(d.c.id == delivery_id).values(**values))

    async def statuses(self, event_id: str) -> dict[str, tuple[str, int]]:
        """Status and attempts of each endpoint's delivery of ``event_id``."""
        d = ti.webhook_deliveries
        rows = await self._conn.execute(
            select(d.c.endpoint_id, d.c.status, d.c.attempts).where(d.c.event_id == event_id)
        )
        return {endpoint: (status, attempts) for endpoint, status, attempts in rows}


# --- events in: the idempotency inbox ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status_code: int
    body: dict[str, Any]
    body_sha256: str


class SqlIntegrationInbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim(
        self, webhook_id: str, body_sha256: str, event_type: str, now: datetime
    ) -> StoredAnswer | None:
        """Claim ``webhook_id`` for this unit of work: None when it is new (handle it, then
        :meth:`answer`); else the first answer. A concurrent claim of the same id waits
        for this transaction and then gets its answer (or the claim, after a rollback)."""
        i = ti.integration_inbox
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(i).values(
                        webhook_id=webhook_id,
                        body_sha256=body_sha256,
                        event_type=event_type,
                        status_code=0,
                        response="{}",
                        received_at=now,
                    )
                )
        except IntegrityError:
            row = (
                (await self._conn.execute(select(i).where(i.c.webhook_id == webhook_id)))
                .mappings()
                .one()
            )
            return StoredAnswer(row["status_code"], json.loads(row["response"]), row["body_sha256"])
        return None

    async def purge_older_than(self, before: datetime) -> int:
        """Forget webhook ids received before ``before``; returns how many."""
        i = ti.integration_inbox
        result = await self._conn.execute(i.delete().where(i.c.received_at < before))
        return int(result.rowcount)

    async def answer(self, webhook_id: str, status_code: int, body: dict[str, Any]) -> None:
        i = ti.integration_inbox
        await self._conn.execute(
            update(i)
            .where(i.c.webhook_id == webhook_id)
            .values(status_code=status_code, response=json.dumps(body, ensure_ascii=False))
        )


# --- import checkpoints --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportCheckpoint:
    """Where an import stands: ``line_no`` lines are done, the next starts at ``byte_offset``."""

    line_no: int
    byte_offset: int
    applied: int
    rejected: int


class SqlImportCheckpoints:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, kind: str, file_key: str) -> ImportCheckpoint | None:
        c = ti.import_checkpoints
        row = (
            (await self._conn.execute(select(c).where(c.c.kind == kind, c.c.file_key == file_key)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        return ImportCheckpoint(row["line_no"], row["byte_offset"], row["applied"], row["rejected"])

    async def save(
        self, kind: str, file_key: str, checkpoint: ImportCheckpoint, now: datetime
    ) -> None:
        c = ti.import_checkpoints
        values = {
            "line_no": checkpoint.line_no,
            "byte_offset": checkpoint.byte_offset,
            "applied": checkpoint.applied,
            "rejected": checkpoint.rejected,
            "updated_at": now,
        }
        result = await self._conn.execute(
            update(c).where(c.c.kind == kind, c.c.file_key == file_key).values(**values)
        )
        if not result.rowcount:
            await self._conn.execute(insert(c).values(kind=kind, file_key=file_key, **values))

    async def clear(self, kind: str, file_key: str) -> None:
        c = ti.import_checkpoints
        await self._conn.execute(c.delete().where(c.c.kind == kind, c.c.file_key == file_key))
