"""Repository of the profile feature (``core.ports.ProfileRepository``): contact changes
waiting for their code, and correction requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import (
    ContactChange,
    ContactKind,
    CorrectionRequest,
    CorrectionStatus,
    ProfileField,
)
from storage import tables as t
from storage import tables_profile as tp
from storage.crypto import FieldCipher, normalise_email
from storage.repositories import _Encrypted

__all__ = ["SqlProfileRepository"]


class SqlProfileRepository(_Encrypted):
    def __init__(self, conn: AsyncConnection, cipher: FieldCipher) -> None:
        super().__init__(conn, cipher)

    # --- contact changes -------------------------------------------------------------------

    async def add_contact_change(self, change: ContactChange) -> None:
        c = tp.contact_changes.c
        await self._conn.execute(
            update(tp.contact_changes)
            .where(
                c.customer_id == change.customer_id,
                c.kind == change.kind.value,
                c.used_at.is_(None),
            )
            .values(used_at=change.created_at)
        )
        await self._conn.execute(
            insert(tp.contact_changes).values(
                id=change.id,
                customer_id=change.customer_id,
                kind=change.kind.value,
                value_enc=self._enc(change.value, "value", change.id, "contact_changes"),
                channel=change.channel,
                chat_id=change.chat_id,
                code_digest=change.code_digest,
                attempts=change.attempts,
                created_at=change.created_at,
                expires_at=change.expires_at,
                used_at=change.used_at,
            )
        )

    def _change(self, row: RowMapping) -> ContactChange:
        return ContactChange(
            id=row["id"],
            customer_id=row["customer_id"],
            kind=ContactKind(row["kind"]),
            value=self._dec(row["value_enc"], "value", row["id"], "contact_changes"),
            channel=row["channel"],
            chat_id=row["chat_id"],
            code_digest=bytes(row["code_digest"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            attempts=row["attempts"],
            used_at=row["used_at"],
        )

    async def open_contact_change(
        self, customer_id: str, kind: ContactKind, channel: str, chat_id: str
    ) -> ContactChange | None:
        c = tp.contact_changes.c
        query = (
            select(tp.contact_changes)
            .where(
                c.customer_id == customer_id,
                c.kind == kind.value,
                c.channel == channel,
                c.chat_id == chat_id,
                c.used_at.is_(None),
            )
            .order_by(c.created_at.desc(), c.id)
            .limit(1)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else self._change(row)

    async def update_contact_change(
        self, change_id: str, *, attempts: int, used_at: datetime | None
    ) -> None:
        await self._conn.execute(
            update(tp.contact_changes)
            .where(tp.contact_changes.c.id == change_id)
            .values(attempts=attempts, used_at=used_at)
        )

    async def customer_id_by_email(self, email: str) -> str | None:
        bidx = self._cipher.blind_index("email", normalise_email(email))
        query = select(t.customers.c.id).where(t.customers.c.email_bidx == bidx).limit(1)
        found: str | None = (await self._conn.execute(query)).scalar_one_or_none()
        return found

    # --- correction requests ---------------------------------------------------------------

    async def add_correction(self, request: CorrectionRequest) -> None:
        await self._conn.execute(
            insert(tp.correction_requests).values(
                id=request.id,
                customer_id=request.customer_id,
                field=request.field.value,
                text_enc=self._enc(request.text, "text", request.id, "correction_requests"),
                channel=request.channel,
                status=request.status.value,
                created_at=request.created_at,
                resolved_at=request.resolved_at,
                resolved_by=request.resolved_by,
                note_enc=None
                if request.resolution_note is None
                else self._enc(request.resolution_note, "note", request.id, "correction_requests"),
            )
        )

    def _correction(self, row: RowMapping) -> CorrectionRequest:
        rid = row["id"]
        note = row["note_enc"]
        return CorrectionRequest(
            id=rid,
            customer_id=row["customer_id"],
            field=ProfileField(row["field"]),
            text=self._dec(row["text_enc"], "text", rid, "correction_requests"),
            channel=row["channel"],
            created_at=row["created_at"],
            status=CorrectionStatus(row["status"]),
            resolved_at=row["resolved_at"],
            resolved_by=row["resolved_by"],
            resolution_note=None
            if note is None
            else self._dec(note, "note", rid, "correction_requests"),
        )

    async def get_correction(self, request_id: str) -> CorrectionRequest | None:
        query = select(tp.correction_requests).where(tp.correction_requests.c.id == request_id)
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else self._correction(row)

    async def corrections_for(self, customer_id: str) -> list[CorrectionRequest]:
        c = tp.correction_requests.c
        query = (
            select(tp.correction_requests)
            .where(c.customer_id == customer_id)
            .order_by(c.created_at, c.id)
        )
        return [self._correction(r) for r in (await self._conn.execute(query)).mappings()]

    async def open_corrections(self, limit: int = 50) -> list[CorrectionRequest]:
        c = tp.correction_requests.c
        query = (
            select(tp.correction_requests)
            .where(c.status == CorrectionStatus.OPEN.value)
            .order_by(c.created_at, c.id)
            .limit(limit)
        )
        return [self._correction(r) for r in (await self._conn.execute(query)).mappings()]

    async def resolve_correction(
        self, request_id: str, *, by: str, note: str, at: datetime
    ) -> bool:
        c = tp.correction_requests.c
        result = await self._conn.execute(
            update(tp.correction_requests)
            .where(c.id == request_id, c.status == CorrectionStatus.OPEN.value)
            .values(
                status=CorrectionStatus.RESOLVED.value,
                resolved_at=at,
                resolved_by=by,
                note_enc=self._enc(note, "note", request_id, "correction_requests"),
            )
        )
        return bool(result.rowcount)
