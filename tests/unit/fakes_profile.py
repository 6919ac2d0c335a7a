"""In-memory fakes for the profile feature: the repository of contact changes and
correction requests (``FakeUnitOfWork.profile``), the personal-data store behind /mydata
and /forget (``FakeUnitOfWork.personal_data``), and an email sender that keeps what it
sent. The SQL versions are tested against both databases in tests/integration."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.domain import ContactChange, ContactKind, CorrectionRequest, CorrectionStatus
from core.ports import DeliveryError

if TYPE_CHECKING:
    from fakes import FakeUnitOfWork


@dataclass
class ProfileState:
    changes: list[ContactChange] = field(default_factory=list)
    corrections: dict[str, CorrectionRequest] = field(default_factory=dict)


class FakeProfile:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _s(self) -> ProfileState:
        state: ProfileState = self._uow.state.profile
        return state

    async def add_contact_change(self, change: ContactChange) -> None:
        s = self._s
        s.changes = [
            dataclasses.replace(c, used_at=change.created_at)
            if (c.customer_id, c.kind) == (change.customer_id, change.kind) and c.used_at is None
            else c
            for c in s.changes
        ]
        s.changes.append(change)

    async def open_contact_change(
        self, customer_id: str, kind: ContactKind, channel: str, chat_id: str
    ) -> ContactChange | None:
        found = [
            c
            for c in self._s.changes
            if (c.customer_id, c.kind, c.channel, c.chat_id)
            == (customer_id, kind, channel, chat_id)
            and c.used_at is None
        ]
        return max(found, key=lambda c: c.created_at) if found else None

    async def update_contact_change(
        self, change_id: str, *, attempts: int, used_at: datetime | None
    ) -> None:
        s = self._s
        s.changes = [
            dataclasses.replace(c, attempts=attempts, used_at=used_at) if c.id == change_id else c
            for c in s.changes
        ]

    async def customer_id_by_email(self, email: str) -> str | None:
        wanted = email.strip().casefold()
        for customer in self._uow.state.customers.values():
            if customer.email and customer.email.strip().casefold() == wanted:
                return customer.id
        return None

    async def add_correction(self, request: CorrectionRequest) -> None:
        self._s.corrections[request.id] = request

    async def get_correction(self, request_id: str) -> CorrectionRequest | None:
        return self._s.corrections.get(request_id)

    async def corrections_for(self, customer_id: str) -> list[CorrectionRequest]:
        found = [r for r in self._s.corrections.values() if r.customer_id == customer_id]
        return sorted(found, key=lambda r: r.created_at)

    async def open_corrections(self, limit: int = 50) -> list[CorrectionRequest]:
        found = [r for r in self._s.corrections.values() if r.status is CorrectionStatus.OPEN]
        return sorted(found, key=lambda r: r.created_at)[:limit]

    async def resolve_correction(
        self, request_id: str, *, by: str, note: str, at: datetime
    ) -> bool:
        request = self._s.corrections.get(request_id)
        if request is None or request.status is not CorrectionStatus.OPEN:
            return False
        self._s.corrections[request_id] = dataclasses.replace(
            request,
            status=CorrectionStatus.RESOLVED,
            resolved_by=by,
            resolution_note=note,
            resolved_at=at,
        )
        return True


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


class FakePersonalData:
    """What the SQL store does, over the fake's state (no schema walk here)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    async def export(self, customer_id: str) -> dict[str, list[dict[str, object]]]:
        s = self._uow.state
        owned = {
            "customers": [c for c in s.customers.values() if c.id == customer_id],
            "service_accounts": [
                a for a in s.service_accounts.values() if a.customer_id == customer_id
            ],
            "eservice_users": [u for u in s.users.values() if u.customer_id == customer_id],
            "chat_links": [lk for lk in s.links.values() if lk.customer_id == customer_id],
            "bills": [b for b in s.bills.values() if b.customer_id == customer_id],
            "consent_ledger": [r for r in s.consent if r.customer_id == customer_id],
            "correction_requests": [
                r for r in s.profile.corrections.values() if r.customer_id == customer_id
            ],
            "contact_changes": [c for c in s.profile.changes if c.customer_id == customer_id],
            "audit_log": [e for e in s.audit if e.subject == customer_id],
        }
        out = {name: [_plain(row) for row in rows] for name, rows in owned.items()}
        for row in out["eservice_users"]:
            row.pop("password_hash", None)
        return out

    async def erase(
        self, customer_id: str, *, keep_conversation: tuple[str, str] | None = None
    ) -> dict[str, int]:
        s = self._uow.state
        chats = [key for key, link in s.links.items() if link.customer_id == customer_id]
        deleted: dict[str, int] = {}

        def drop(name: str, count: int) -> None:
            if count:
                deleted[name] = deleted.get(name, 0) + count

        for key in chats:
            del s.links[key]
        drop("chat_links", len(chats))
        before = len(s.outbox)
        s.outbox = [row for row in s.outbox if (row.channel, row.chat_id) not in chats]
        drop("outbox", before - len(s.outbox))
        for key in [k for k in s.conversations if k in chats and k != keep_conversation]:
            del s.conversations[key]
            drop("conversations", 1)
        for name, table in (
            ("service_accounts", s.service_accounts),
            ("eservice_users", s.users),
            ("bills", s.bills),
            ("correction_requests", s.profile.corrections),
        ):
            gone = [k for k, v in table.items() if v.customer_id == customer_id]
            for key in gone:
                del table[key]
            drop(name, len(gone))
        before = len(s.consent)
        s.consent = [r for r in s.consent if r.customer_id != customer_id]
        drop("consent_ledger", before - len(s.consent))
        s.profile.changes = [c for c in s.profile.changes if c.customer_id != customer_id]
        if s.customers.pop(customer_id, None) is not None:
            drop("customers", 1)
        return deleted


_CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class SentEmail:
    to: str
    subject: str
    text: str

    @property
    def code(self) -> str:
        found = _CODE.search(self.text)
        assert found is not None, "no code in the email"
        return found.group(1)


class FakeEmail:
    """Keeps every email; ``fail_next`` makes the next send fail like a refused SMTP."""

    def __init__(self) -> None:
        self.sent: list[SentEmail] = []
        self.fail_next = False

    async def send(self, to: str, subject: str, text: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise DeliveryError("SMTP failed: SMTPServerDisconnected")
        self.sent.append(SentEmail(to, subject, text))

    def last_code(self) -> str:
        assert self.sent, "no email was sent"
        return self.sent[-1].code
