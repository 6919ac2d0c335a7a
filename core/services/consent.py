"""Consents a customer gives or withdraws: marketing, personalisation and disclosure to
partners (``/consent``).

The ledger is append-only: each grant or withdrawal is a new record with the notice
version in force, the time and the channel; the latest record of a purpose is its state
(none: not given). Granting and withdrawing are the same one call, so neither is harder
than the other. Each change is audited and published as ``consent.changed`` in the same
unit of work; methods never commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from core.domain import AuditEntry, ConsentPurpose, ConsentRecord, Customer
from core.integration_events import consent_changed
from core.ports import UnitOfWork
from core.services.profile import owner_actor

__all__ = ["PURPOSES", "ConsentState", "consent_state", "set_consent"]

logger = logging.getLogger(__name__)

#: The purposes a customer chooses in ``/consent``, in the order shown. (Accepting the
#: privacy notice is recorded in the same ledger when a chat links, but is no choice here.)
PURPOSES: tuple[ConsentPurpose, ...] = (
    ConsentPurpose.MARKETING,
    ConsentPurpose.PERSONALISATION,
    ConsentPurpose.PARTNER_DISCLOSURE,
)


@dataclass(frozen=True, slots=True)
class ConsentState:
    """Where each purpose stands (its latest record, None if never given) and the whole
    history, oldest first."""

    latest: dict[ConsentPurpose, ConsentRecord | None]
    history: list[ConsentRecord]

    def granted(self, purpose: ConsentPurpose) -> bool:
        record = self.latest.get(purpose)
        return record is not None and record.granted


async def consent_state(uow: UnitOfWork, customer_id: str) -> ConsentState:
    history = await uow.consent.history(customer_id)
    latest: dict[ConsentPurpose, ConsentRecord | None] = dict.fromkeys(ConsentPurpose)
    for record in history:
        latest[record.purpose] = record
    return ConsentState(latest=latest, history=history)


async def set_consent(
    uow: UnitOfWork,
    customer: Customer,
    purpose: ConsentPurpose,
    granted: bool,
    *,
    channel: str,
    notice_version: str,
    now: datetime,
) -> bool:
    """Grant or withdraw ``purpose``; False (nothing recorded) when it already stands so,
    e.g. a button pressed twice. Raises ValueError for a purpose not chosen here."""
    if purpose not in PURPOSES:
        raise ValueError(f"{purpose.value} is not a consent the customer toggles")
    state = await consent_state(uow, customer.id)
    if state.granted(purpose) == granted:
        return False
    record = ConsentRecord(
        customer_id=customer.id,
        purpose=purpose,
        granted=granted,
        notice_version=notice_version,
        channel=channel,
        recorded_at=now,
    )
    await uow.consent.record(record)
    await uow.audit.append(
        AuditEntry(
            actor=owner_actor(customer.id),
            action="consent.granted" if granted else "consent.withdrawn",
            subject=customer.id,
            details={
                "purpose": purpose.value,
                "notice_version": notice_version,
                "channel": channel,
            },
            at=now,
        )
    )
    await uow.events.publish(
        consent_changed(
            account_no=customer.account_no,
            purpose=purpose.value,
            granted=granted,
            notice_version=notice_version,
            channel=channel,
            recorded_at=now,
        ),
        occurred_at=now,
    )
    logger.info("consent changed", extra={"purpose": purpose.value, "granted": granted})
    return True
