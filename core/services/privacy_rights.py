"""Rights under Thailand's PDPA that the chat serves itself: a copy of everything held about
the customer (``/mydata``), and erasure of the bot's copy (``/forget``).

The export is one JSON document: every row of every table that belongs to the customer
(found through the schema's foreign keys: see ``storage/privacy.py``), values decrypted,
plus the state of their linked chats and what the audit log says was done with their
data. One-way values (blind indexes, password and code hashes) are named but not given.

Erasure unlinks every chat, deletes conversation state and message copies of those chats
and every row held about the customer, and keeps one audit entry saying it happened, with
counts and no personal value. Subscribers hear ``account.unlinked`` (reason ``forget``) for
each chat. The operator's own systems (billing, the e-service) are not this bot's copy:
the customer is told where to ask about those. Methods never commit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from core.domain import AuditEntry, Customer
from core.integration_events import account_unlinked
from core.ports import UnitOfWork
from core.services.profile import owner_actor

__all__ = [
    "EXPORT_FORMAT",
    "WITHHELD",
    "DataExport",
    "Erasure",
    "erase_customer",
    "export_customer",
]

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "selfcare.personal-data/1"
#: What the export names but does not give (see the module docstring).
WITHHELD = (
    "blind indexes (*_bidx): keyed hashes used to look values up",
    "password_hash: the one-way hash your e-service password is checked against",
    "token_hash, code_digest, nonce_hash: one-way hashes of one-time codes and links",
)


@dataclass(frozen=True, slots=True)
class DataExport:
    """The export document and its UTF-8 JSON bytes; ``counts`` is rows per section."""

    document: dict[str, object]
    content: bytes
    counts: dict[str, int]


async def export_customer(
    uow: UnitOfWork, customer: Customer, *, channel: str, now: datetime
) -> DataExport:
    """Everything held about ``customer``, audited as their own view of all of it."""
    tables = await uow.personal_data.export(customer.id)
    document: dict[str, object] = {
        "format": EXPORT_FORMAT,
        "generated_at": now.isoformat(),
        "customer_id": customer.id,
        "account_no": customer.account_no,
        "not_included": list(WITHHELD),
        "data": tables,
    }
    counts = {name: len(rows) for name, rows in tables.items()}
    content = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=False).encode("utf-8")
    await uow.audit.append(
        AuditEntry(
            actor=owner_actor(customer.id),
            action="customer.exported",
            subject=customer.id,
            details={"own": True, "channel": channel, "rows": sum(counts.values())},
            at=now,
        )
    )
    logger.info("personal data exported", extra={"channel": channel})
    return DataExport(document=document, content=content, counts=counts)


@dataclass(frozen=True, slots=True)
class Erasure:
    """What ``/forget`` did: chats unlinked and rows deleted, by table."""

    chats_unlinked: int
    deleted: dict[str, int]


async def erase_customer(
    uow: UnitOfWork, customer: Customer, *, channel: str, chat_id: str, now: datetime
) -> Erasure:
    """Erase the bot's copy of ``customer`` (asked from chat ``channel``/``chat_id``, whose
    conversation state the caller resets: it is saved after this)."""
    links = await uow.links.for_customer(customer.id)
    for link in links:
        await uow.events.publish(
            account_unlinked(
                account_no=customer.account_no,
                channel=str(link.channel),
                unlinked_at=now,
                reason="forget",
            ),
            occurred_at=now,
        )
    deleted = await uow.personal_data.erase(customer.id, keep_conversation=(channel, chat_id))
    await uow.audit.append(
        AuditEntry(
            actor=owner_actor(customer.id),
            action="customer.erased",
            subject=customer.id,
            details={"channel": channel, "chats_unlinked": len(links), "rows": deleted},
            at=now,
        )
    )
    logger.info("customer erased", extra={"channel": channel, "chats": len(links)})
    return Erasure(chats_unlinked=len(links), deleted=deleted)
