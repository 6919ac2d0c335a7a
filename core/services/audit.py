"""The audit trail of staff actions: what is recorded, and what a broken chain looks like.

Every staff decryption of a customer's personal data, and every change staff make, is
appended to the audit log (``UnitOfWork.audit``) with who (``actor``), what (``action``,
``subject`` and the fields in ``details``), when (``at``) and why (a reason code and an
optional ticket reference). Details never hold a personal value: :func:`record` refuses
any string that looks like one, and reasons are codes rather than free text because
free text invites "called about 081-234-5678". The log is append-only and hash-chained
(``storage/repositories.py``); ``selfcare audit verify`` walks the chain.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from core.domain import AuditEntry
from core.errors import InvalidInput
from core.masking import redact
from core.ports import UnitOfWork

__all__ = [
    "CLI_ACTOR",
    "AuditAction",
    "ChainBreak",
    "ChainReport",
    "LookupReason",
    "check_ticket",
    "record",
]

#: The actor of changes made with the ``selfcare`` command (someone with the keyring).
CLI_ACTOR = "cli"

_TICKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/#:-]{0,39}")
_MAX_DETAIL_TEXT = 200


class AuditAction(enum.StrEnum):
    CUSTOMER_VIEW = "customer.view"  # personal data decrypted for a staff member
    CUSTOMER_LOOKUP_MISS = "customer.lookup_miss"  # a lookup that found nobody
    STAFF_ADD = "staff.add"
    STAFF_DISABLE = "staff.disable"
    STAFF_TOKEN = "staff.token"  # noqa: S105 (an action name)
    CAMPAIGN_CREATE = "campaign.create"
    CAMPAIGN_PREVIEW = "campaign.preview"
    CAMPAIGN_SCHEDULE = "campaign.schedule"
    CAMPAIGN_CANCEL = "campaign.cancel"


class LookupReason(enum.StrEnum):
    """Why support looks a customer up: the "why" of every look."""

    CUSTOMER_REQUEST = "customer_request"  # the customer asked us (call, chat, shop)
    CORRECTION_REQUEST = "correction_request"  # the customer reported wrong data
    BILLING_DISPUTE = "billing_dispute"
    PAYMENT_INVESTIGATION = "payment_investigation"
    COMPLAINT = "complaint"
    LEGAL_REQUEST = "legal_request"  # a data subject request or an authority's order


def check_ticket(ticket: str | None) -> str | None:
    """A ticket reference (``CASE-2026-0042``) as given, or None; raises ``InvalidInput``
    for anything else, including what looks like a phone number or national id."""
    if ticket is None or not ticket.strip():
        return None
    ticket = ticket.strip()
    if not _TICKET.fullmatch(ticket):
        raise InvalidInput("ticket", "1 to 40 letters, digits and . _ / # : -")
    if redact(ticket) != ticket:
        raise InvalidInput("ticket", "must not hold a phone number, email or national id")
    return ticket


def _check_safe(value: object, where: str) -> None:
    if isinstance(value, str):
        if len(value) > _MAX_DETAIL_TEXT or redact(value) != value:
            raise ValueError(f"audit detail {where} looks like personal data")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_safe(item, f"{where}.{key}")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_safe(item, where)
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError(f"audit detail {where} is a {type(value).__name__}")


async def record(
    uow: UnitOfWork,
    *,
    actor: str,
    action: AuditAction,
    subject: str,
    at: datetime,
    details: Mapping[str, object] | None = None,
) -> None:
    """Append one entry in ``uow`` (committed with it). Raises ``ValueError`` when a
    detail looks like a personal value: that is a bug in the caller, never stored."""
    clean = dict(details or {})
    _check_safe(clean, "details")
    await uow.audit.append(
        AuditEntry(actor=actor, action=str(action), subject=subject, details=clean, at=at)
    )


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry whose link does not hold: ``entry_id`` and why."""

    entry_id: int
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of walking the audit chain from its start. ``head_hash`` is the last
    entry's hash: keep it somewhere else to notice later that entries were cut off."""

    entries: int
    head_hash: str
    broken: ChainBreak | None = None

    @property
    def intact(self) -> bool:
        return self.broken is None
