"""Staff: accounts with roles, API tokens, and the support desk's audited customer lookup.

Roles are separate powers (:class:`~core.domain.StaffRole`): an admin is not a marketer
unless given that role too. A token is 256 random bits shown once; only its SHA-256 is
kept. A lookup states a reason and is written to the audit log, and committed, *before*
anything of the customer is decrypted: a look that is not on record does not happen.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.domain import Channel, ConsentPurpose, StaffMember, StaffRole, new_id
from core.errors import Conflict, InvalidInput, NotFound
from core.ports import Clock, UnitOfWorkFactory
from core.services.audit import AuditAction, LookupReason, check_ticket, record

__all__ = [
    "TOKEN_PREFIX",
    "CustomerRecord",
    "IssuedToken",
    "StaffService",
    "SupportDesk",
    "hash_token",
    "parse_chat",
]

TOKEN_PREFIX = "sc_"  # noqa: S105 (the visible prefix of every token)
_HANDLE = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")
_CHAT_ID = re.compile(r"[A-Za-z0-9_:-]{1,64}")
# base64url of 32 random bytes is 43 characters
_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{43}")


def hash_token(token: str) -> bytes:
    """The stored form of an API token (a high-entropy secret: no salt or stretching)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _check_handle(handle: str) -> str:
    handle = handle.strip().lower()
    if not _HANDLE.fullmatch(handle):
        raise InvalidInput("handle", "2 to 63 of a-z 0-9 . _ - starting with a letter or digit")
    return handle


def parse_chat(value: str) -> tuple[str, str]:
    """``telegram:12345`` → (channel, chat id); raises ``InvalidInput``."""
    channel, sep, chat_id = value.strip().partition(":")
    if not sep or channel not in {c.value for c in Channel} or not _CHAT_ID.fullmatch(chat_id):
        raise InvalidInput("chat", "CHANNEL:CHAT_ID, channel one of telegram, line, terminal")
    return channel, chat_id


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``value`` is shown once and never stored."""

    token_id: str
    value: str
    expires_at: datetime | None


class StaffService:
    """Adding, disabling and authenticating staff; every change is audited."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def add(
        self,
        handle: str,
        roles: Iterable[StaffRole | str],
        *,
        actor: str,
        chat: str | None = None,
    ) -> StaffMember:
        """Raises ``InvalidInput`` (bad handle, no or unknown role, bad chat) or
        ``Conflict`` (the handle is taken)."""
        handle = _check_handle(handle)
        try:
            wanted = frozenset(StaffRole(r) for r in roles)
        except ValueError:
            raise InvalidInput("roles", "each one of support, marketer, admin") from None
        if not wanted:
            raise InvalidInput("roles", "at least one role")
        channel, chat_id = parse_chat(chat) if chat else (None, None)
        now = self._clock.now()
        member = StaffMember(
            id=new_id(),
            handle=handle,
            roles=wanted,
            active=True,
            created_at=now,
            chat_channel=channel,
            chat_id=chat_id,
        )
        async with self._uow_factory() as uow:
            if await uow.staff.get_by_handle(handle) is not None:
                raise Conflict(f"staff handle {handle} is taken")
            await uow.staff.add(member)
            await record(
                uow,
                actor=actor,
                action=AuditAction.STAFF_ADD,
                subject=member.id,
                at=now,
                details={"handle": handle, "roles": sorted(wanted)},
            )
            await uow.commit()
        return member

    async def get(self, handle: str) -> StaffMember:
        async with self._uow_factory() as uow:
            member = await uow.staff.get_by_handle(handle.strip().lower())
        if member is None:
            raise NotFound(f"no staff member {handle}")
        return member

    async def list(self) -> list[StaffMember]:
        async with self._uow_factory() as uow:
            return await uow.staff.list()

    async def disable(self, handle: str, *, actor: str) -> StaffMember:
        """Disable the member and revoke every token they hold; raises ``NotFound``."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            member = await uow.staff.get_by_handle(handle.strip().lower())
            if member is None:
                raise NotFound(f"no staff member {handle}")
            await uow.staff.set_active(member.id, False, now)
            revoked = await uow.staff.revoke_tokens(member.id, now)
            await record(
                uow,
                actor=actor,
                action=AuditAction.STAFF_DISABLE,
                subject=member.id,
                at=now,
                details={"handle": member.handle, "tokens_revoked": revoked},
            )
            await uow.commit()
        return member

    async def issue_token(
        self, handle: str, *, actor: str, valid_for: timedelta | None = None
    ) -> IssuedToken:
        """A new API token for an active member; raises ``NotFound`` or ``Conflict``
        (the member is disabled)."""
        now = self._clock.now()
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = now + valid_for if valid_for is not None else None
        async with self._uow_factory() as uow:
            member = await uow.staff.get_by_handle(handle.strip().lower())
            if member is None:
                raise NotFound(f"no staff member {handle}")
            if not member.active:
                raise Conflict(f"staff member {member.handle} is disabled")
            token_id = await uow.staff.add_token(member.id, hash_token(value), now, expires_at)
            await record(
                uow,
                actor=actor,
                action=AuditAction.STAFF_TOKEN,
                subject=member.id,
                at=now,
                details={"handle": member.handle, "expires": expires_at is not None},
            )
            await uow.commit()
        return IssuedToken(token_id=token_id, value=value, expires_at=expires_at)

    async def authenticate(self, token: str) -> StaffMember | None:
        """The active member holding ``token`` (valid, not revoked), else None."""
        if not _TOKEN.fullmatch(token):
            return None
        async with self._uow_factory() as uow:
            return await uow.staff.by_token_hash(hash_token(token), self._clock.now())


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """What support sees of a customer. The national id shows its last four digits only:
    support confirms it with the caller, it never needs to read it out."""

    customer_id: str
    account_no: str
    name: str
    address: str
    phone: str
    email: str | None
    national_id_hint: str | None
    language: str
    numbers: tuple[tuple[str, str, str], ...]  # (number, kind, plan)
    linked_channels: tuple[tuple[str, datetime], ...]  # (channel, linked at): no chat ids
    marketing_consent: bool


def _last_four(national_id: str | None) -> str | None:
    digits = (national_id or "").replace("-", "")
    return "x" * (len(digits) - 4) + digits[-4:] if len(digits) > 4 else None


#: What a lookup decrypts: recorded in the audit entry as "what".
LOOKUP_FIELDS = ("name", "address", "phone", "email", "national_id_last4", "service_numbers")


class SupportDesk:
    """Support's view of customers: each look states why and is audited first."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def look_up(
        self,
        staff: StaffMember,
        *,
        account_no: str | None = None,
        phone: str | None = None,
        reason: str,
        ticket: str | None = None,
    ) -> CustomerRecord:
        """Find a customer by account number or phone for ``staff`` (who must hold the
        support role). The audit entry is committed before any decryption; a lookup that
        finds nobody is recorded too. Raises ``InvalidInput``, ``NotFound``."""
        if StaffRole.SUPPORT not in staff.roles or not staff.active:
            raise PermissionError("customer lookups need the support role")
        try:
            why = LookupReason(reason)
        except ValueError:
            choices = ", ".join(r.value for r in LookupReason)
            raise InvalidInput("reason", f"one of {choices}") from None
        ticket = check_ticket(ticket)
        if (account_no is None) == (phone is None):
            raise InvalidInput("query", "give either an account number or a phone number")
        by = "account_no" if account_no is not None else "phone"
        now = self._clock.now()
        details: dict[str, object] = {"reason": why.value, "by": by}
        if ticket is not None:
            details["ticket"] = ticket

        async with self._uow_factory() as uow:
            if account_no is not None:
                customer_id = await uow.staff.customer_id_by_account_no(account_no.strip())
            else:
                customer_id = await uow.staff.customer_id_by_phone(phone or "")
            if customer_id is None:
                await record(
                    uow,
                    actor=staff.actor,
                    action=AuditAction.CUSTOMER_LOOKUP_MISS,
                    subject="-",
                    at=now,
                    details=details,
                )
                await uow.commit()
                raise NotFound("no customer matches")
            await record(
                uow,
                actor=staff.actor,
                action=AuditAction.CUSTOMER_VIEW,
                subject=customer_id,
                at=now,
                details={**details, "fields": list(LOOKUP_FIELDS)},
            )
            await uow.commit()

        # On record: now, and only now, decrypt.
        async with self._uow_factory() as uow:
            customer = await uow.customers.get(customer_id)
            if customer is None:
                raise NotFound("the customer was removed")
            accounts = await uow.customers.service_accounts(customer_id)
            links = await uow.links.for_customer(customer_id)
            history = await uow.consent.history(customer_id)
        marketing = [r for r in history if r.purpose is ConsentPurpose.MARKETING]
        national_id = customer.national_id
        return CustomerRecord(
            customer_id=customer.id,
            account_no=customer.account_no,
            name=customer.name,
            address=customer.address,
            phone=customer.phone,
            email=customer.email,
            national_id_hint=_last_four(national_id),
            language=customer.language,
            numbers=tuple((a.number, a.kind.value, a.plan) for a in accounts),
            linked_channels=tuple((str(link.channel), link.linked_at) for link in links),
            marketing_consent=bool(marketing) and marketing[-1].granted,
        )
