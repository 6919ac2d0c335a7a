""" "Report wrong data": a customer says in their own words what is wrong; staff fix it in
the systems of record and resolve the request; the customer is told.

A request is stored encrypted, audited (the field, never the words) and published as
``profile.correction_requested`` in the chat's unit of work (:func:`request_correction`).
Support staff list open requests and resolve them (:class:`CorrectionDesk`, used by the
admin API): reading the customer's words is a look at personal data, so it is audited
before anything is decrypted; resolving records the staff member and a note, and tells
every chat linked to the customer, in its language.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from core.chat import Button, TextReply
from core.domain import (
    AuditEntry,
    CorrectionRequest,
    CorrectionStatus,
    Customer,
    ProfileField,
    StaffMember,
    StaffRole,
    new_id,
)
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import Translator, translator
from core.integration_events import profile_correction_requested
from core.ports import Clock, UnitOfWork, UnitOfWorkFactory
from core.services.profile import owner_actor

__all__ = [
    "MAX_NOTE",
    "MAX_TEXT",
    "MIN_TEXT",
    "CorrectionDesk",
    "clean_text",
    "field_name",
    "request_correction",
    "resolved_message",
]

logger = logging.getLogger(__name__)

MIN_TEXT = 3
MAX_TEXT = 1000
MAX_NOTE = 500


def clean_text(text: str, *, limit: int) -> str | None:
    """``text`` in NFC, without control characters, white space collapsed within lines;
    None when it is too short or longer than ``limit``."""
    lines = [
        " ".join(
            "".join(ch for ch in line if unicodedata.category(ch)[0] != "C" or ch == "\t").split()
        )
        for line in unicodedata.normalize("NFC", text).splitlines()
    ]
    cleaned = "\n".join(line for line in lines if line)
    if len(cleaned) < MIN_TEXT or len(cleaned) > limit:
        return None
    return cleaned


def field_name(t: Translator, field: ProfileField) -> str:
    match field:
        case ProfileField.NAME:
            return t._("name")
        case ProfileField.ADDRESS:
            return t._("address")
        case ProfileField.PHONE:
            return t._("mobile number")
        case ProfileField.EMAIL:
            return t._("email")
        case ProfileField.OTHER:
            return t._("other details")
    return str(field)


async def request_correction(
    uow: UnitOfWork,
    customer: Customer,
    field: ProfileField,
    text: str,
    *,
    channel: str,
    now: datetime,
) -> CorrectionRequest:
    """Store the customer's report (the caller checked ``text`` with :func:`clean_text`),
    audit and publish it."""
    request = CorrectionRequest(
        id=new_id(),
        customer_id=customer.id,
        field=field,
        text=text,
        channel=channel,
        created_at=now,
    )
    await uow.profile.add_correction(request)
    await uow.audit.append(
        AuditEntry(
            actor=owner_actor(customer.id),
            action="correction.requested",
            subject=customer.id,
            details={"request_id": request.id, "field": field.value, "channel": channel},
            at=now,
        )
    )
    await uow.events.publish(
        profile_correction_requested(
            account_no=customer.account_no,
            request_id=request.id,
            field_name=field.value,
            proposed=text,
            requested_at=now,
        ),
        occurred_at=now,
    )
    logger.info("correction requested", extra={"field": field.value, "channel": channel})
    return request


def resolved_message(t: Translator, request: CorrectionRequest) -> TextReply:
    """What a linked chat is told when staff resolved the customer's report."""
    lines = [
        t._("✅ We have dealt with your report about your {field} (sent {date}).").format(
            field=field_name(t, request.field), date=t.date(request.created_at.date())
        )
    ]
    if request.resolution_note:
        lines.append(t._("Our note: {note}").format(note=request.resolution_note))
    lines.append(t._("You can check your details any time with /profile."))
    return TextReply("\n".join(lines), buttons=((Button(t._("👤 My profile"), "profile"),),))


@dataclass(frozen=True, slots=True)
class OpenCorrection:
    """An open request as support sees it: the customer's account number and words."""

    request: CorrectionRequest
    account_no: str


class CorrectionDesk:
    """Support's side of correction requests; each method runs its own unit of work."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    @staticmethod
    def _check(staff: StaffMember) -> None:
        if StaffRole.SUPPORT not in staff.roles or not staff.active:
            raise PermissionError("correction requests need the support role")

    async def open_requests(self, staff: StaffMember, *, limit: int = 50) -> list[OpenCorrection]:
        """Open requests, oldest first. The look is audited (and committed) before the
        customers' words are decrypted. Raises PermissionError without the support role."""
        self._check(staff)
        now = self._clock.now()
        async with self._uow_factory() as uow:
            await uow.audit.append(
                AuditEntry(
                    actor=staff.actor,
                    action="correction.list",
                    subject="-",
                    details={"limit": limit},
                    at=now,
                )
            )
            await uow.commit()
        async with self._uow_factory() as uow:
            requests = await uow.profile.open_corrections(limit)
            found = []
            for request in requests:
                customer = await uow.customers.get(request.customer_id)
                if customer is not None:
                    found.append(OpenCorrection(request, customer.account_no))
        return found

    async def resolve_correction(
        self, request_id: str, staff: StaffMember, note: str
    ) -> CorrectionRequest:
        """Mark the request resolved with ``note`` (shown to the customer: what was done),
        audit it and tell every chat linked to the customer, in its language.

        Raises PermissionError (no support role), InvalidInput (``note`` empty or longer
        than :data:`MAX_NOTE`), NotFound (no such request), Conflict (already resolved)."""
        self._check(staff)
        cleaned = clean_text(note, limit=MAX_NOTE)
        if cleaned is None:
            raise InvalidInput("note", f"{MIN_TEXT} to {MAX_NOTE} characters")
        now = self._clock.now()
        async with self._uow_factory() as uow:
            request = await uow.profile.get_correction(request_id)
            if request is None:
                raise NotFound("no such correction request")
            if not await uow.profile.resolve_correction(
                request_id, by=staff.actor, note=cleaned, at=now
            ):
                raise Conflict("the correction request is already resolved")
            resolved = CorrectionRequest(
                id=request.id,
                customer_id=request.customer_id,
                field=request.field,
                text=request.text,
                channel=request.channel,
                created_at=request.created_at,
                status=CorrectionStatus.RESOLVED,
                resolved_at=now,
                resolved_by=staff.actor,
                resolution_note=cleaned,
            )
            await uow.audit.append(
                AuditEntry(
                    actor=staff.actor,
                    action="correction.resolved",
                    subject=request.customer_id,
                    details={"request_id": request.id, "field": request.field.value},
                    at=now,
                )
            )
            customer = await uow.customers.get(request.customer_id)
            links = await uow.links.for_customer(request.customer_id)
            for link in links:
                channel = str(link.channel)
                language = await uow.conversations.language(channel, link.chat_id)
                if language is None and customer is not None:
                    language = customer.language
                message = resolved_message(translator(language), resolved)
                await uow.outbox.enqueue_replies(channel, link.chat_id, [message], now)
            await uow.commit()
        logger.info(
            "correction resolved", extra={"field": request.field.value, "chats": len(links)}
        )
        return resolved
