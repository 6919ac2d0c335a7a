"""The customer's own profile: seeing it (masked, or in full on request, audited as the
owner's own view) and changing it.

Changes a customer can make in the chat:
- the postal address: 10-300 characters of Thai or Latin text with a 5-digit Thai postal
  code;
- the email address and the mobile number: the new value is confirmed by a 6-digit code
  sent to it (by email, by SMS); a code lives 10 minutes, takes 5 tries, works once and
  only in the chat that asked; at most 3 codes per customer and 3 per new value in 15
  minutes; a value another customer has is refused;
- the language of their letters and messages, and each kind of service notification.

Every change is written to the audit log (which fields, never their values) and published
as ``profile.updated`` in the same unit of work. Methods never commit.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import logging
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.domain import (
    AuditEntry,
    ContactChange,
    ContactKind,
    Customer,
    NotificationKind,
    ServiceKind,
    new_id,
)
from core.i18n import SUPPORTED_LANGUAGES, Translator
from core.identifiers import normalise_phone
from core.integration_events import profile_updated
from core.masking import mask_email, mask_phone
from core.ports import DeliveryError, EmailSender, KeyedHash, SmsSender, UnitOfWork
from core.services.throttling import ThrottlePolicy, blocked_until, record

__all__ = [
    "ADDRESS_MAX",
    "ADDRESS_MIN",
    "CODE_DIGITS",
    "AddressProblem",
    "AddressRefused",
    "CodeExhausted",
    "CodeExpired",
    "CodeMissing",
    "CodeNotSent",
    "CodeSent",
    "CodeThrottled",
    "CodeWrong",
    "ContactChanged",
    "ContactProblem",
    "ContactRefused",
    "ProfilePolicy",
    "ProfileService",
    "ProfileView",
    "address_problem",
    "contact_problem",
    "normalise_address",
    "normalise_email",
    "owner_actor",
]

logger = logging.getLogger(__name__)

ADDRESS_MIN = 10
ADDRESS_MAX = 300
EMAIL_MAX = 254
CODE_DIGITS = 6
_CODE_FIELD = "contact-code"
_THROTTLE_CUSTOMER = "contact_customer"
_THROTTLE_TARGET = "contact_target"

# Thai postal codes run from 10000 (Bangkok) to 96xxx (Narathiwat).
_POSTAL_CODE = re.compile(r"(?<![0-9])(1[0-9]|[2-8][0-9]|9[0-6])[0-9]{3}(?![0-9])")
# What an address may hold besides letters, digits and spaces: the marks Thai and Latin
# addresses use (99/1, ซ.5, Moo 3, "Soi 4, Rd.", #12-03, (อาคาร A)).
_ADDRESS_MARKS = frozenset(".,-/#()'&:;\"")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_MOBILE = re.compile(r"0[689][0-9]{8}")


async def _notification_enabled(uow: UnitOfWork, customer_id: str) -> set[NotificationKind]:
    # The reminders' own rule (on unless turned off). Imported here, not at the top: the
    # reminders module imports the flows, which import this module.
    from core.services.reminders import notification_enabled

    return await notification_enabled(uow, customer_id)


def owner_actor(customer_id: str) -> str:
    """How the audit log names a customer acting on their own data."""
    return f"customer:{customer_id}"


@dataclass(frozen=True, slots=True)
class ProfilePolicy:
    code_ttl: timedelta = timedelta(minutes=10)
    code_tries: int = 5
    per_customer: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(
            limit=3, window=timedelta(minutes=15), block=timedelta(minutes=15)
        )
    )
    per_target: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(
            limit=3, window=timedelta(minutes=15), block=timedelta(minutes=15)
        )
    )


# --- validation ----------------------------------------------------------------------------


class AddressProblem(enum.StrEnum):
    """Why an address is refused."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    CHARACTERS = "characters"
    POSTAL_CODE = "postal_code"


def _ascii_digits(text: str) -> str:
    # Thai digits (๐-๙) and full-width digits count as the digits they are.
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def normalise_address(text: str) -> str:
    """``text`` in NFC with runs of white space (line breaks too) made one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _address_character_ok(ch: str) -> bool:
    if ch == " " or ch in _ADDRESS_MARKS:
        return True
    if "\u0e00" <= ch <= "\u0e7f":  # the Thai block: letters, vowels, tone marks, digits
        return unicodedata.category(ch) != "Cn"
    if ch.isascii():
        return ch.isalnum()
    # Latin letters with accents (Rue de l'Église), nothing else.
    return ch.isalpha() and "LATIN" in unicodedata.name(ch, "")


def address_problem(text: str) -> AddressProblem | None:
    """Why ``text`` (normalised) cannot be a postal address, or None when it can."""
    address = normalise_address(text)
    if len(address) < ADDRESS_MIN:
        return AddressProblem.TOO_SHORT
    if len(address) > ADDRESS_MAX:
        return AddressProblem.TOO_LONG
    if not all(_address_character_ok(ch) for ch in address):
        return AddressProblem.CHARACTERS
    if not _POSTAL_CODE.search(_ascii_digits(address)):
        return AddressProblem.POSTAL_CODE
    return None


def normalise_email(text: str) -> str:
    """``text`` stripped, with the domain in lower case (the local part is kept as typed)."""
    local, _, domain = text.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if local else text.strip()


class ContactProblem(enum.StrEnum):
    """Why a new email address or mobile number is refused."""

    INVALID = "invalid"  # not an email address / not a Thai mobile number
    SAME = "same"  # the value on file already
    TAKEN = "taken"  # another customer's


def contact_problem(kind: ContactKind, value: str) -> ContactProblem | None:
    """Whether ``value`` (normalised) has the shape of ``kind``; uniqueness is checked
    against the data by :meth:`ProfileService.request_contact_change`."""
    if kind is ContactKind.EMAIL:
        ok = len(value) <= EMAIL_MAX and _EMAIL.fullmatch(value) is not None
    else:
        ok = _MOBILE.fullmatch(value) is not None
    return None if ok else ContactProblem.INVALID


def _normalise_contact(kind: ContactKind, raw: str) -> str | None:
    if kind is ContactKind.EMAIL:
        return normalise_email(raw[: EMAIL_MAX + 10])
    try:
        return normalise_phone(raw[:40])
    except ValueError:
        return None


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileView:
    """What the profile shows: the customer, and which notifications are on."""

    customer: Customer
    notifications: Mapping[NotificationKind, bool]


@dataclass(frozen=True, slots=True)
class AddressRefused:
    problem: AddressProblem


@dataclass(frozen=True, slots=True)
class CodeSent:
    masked: str  # where the code went: 08x-xxx-5678, s***@mail.com
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CodeThrottled:
    until: datetime


@dataclass(frozen=True, slots=True)
class CodeNotSent:
    """The email server or SMS gateway did not take the message; nothing was counted."""


@dataclass(frozen=True, slots=True)
class ContactRefused:
    reason: ContactProblem


@dataclass(frozen=True, slots=True)
class ContactChanged:
    customer: Customer


@dataclass(frozen=True, slots=True)
class CodeWrong:
    tries_left: int


@dataclass(frozen=True, slots=True)
class CodeExhausted:
    """That was the last try: the code is dead."""


@dataclass(frozen=True, slots=True)
class CodeExpired:
    pass


@dataclass(frozen=True, slots=True)
class CodeMissing:
    """The chat holds no live code of that kind."""


ContactRequestResult = CodeSent | CodeThrottled | CodeNotSent | ContactRefused
ContactConfirmResult = (
    ContactChanged | CodeWrong | CodeExhausted | CodeExpired | CodeMissing | ContactRefused
)


# --- the service ---------------------------------------------------------------------------


class ProfileService:
    """The profile use cases. ``email`` and ``sms`` are None when no sender is configured:
    that kind of change is then not offered."""

    def __init__(
        self,
        *,
        keyed_hash: KeyedHash,
        sms: SmsSender | None,
        email: EmailSender | None,
        operator_name: str,
        policy: ProfilePolicy | None = None,
    ) -> None:
        self._keyed = keyed_hash
        self._sms = sms
        self._email = email
        self._operator = operator_name
        self.policy = policy or ProfilePolicy()

    def can_change(self, kind: ContactKind) -> bool:
        return (self._email if kind is ContactKind.EMAIL else self._sms) is not None

    async def view(self, uow: UnitOfWork, customer_id: str) -> ProfileView | None:
        customer = await uow.customers.get(customer_id)
        if customer is None:
            return None
        enabled = await _notification_enabled(uow, customer_id)
        return ProfileView(customer, {kind: kind in enabled for kind in NotificationKind})

    async def record_own_view(
        self, uow: UnitOfWork, customer: Customer, *, fields: list[str], channel: str, now: datetime
    ) -> None:
        """Audit that the customer had their own data shown in full (a decryption)."""
        await uow.audit.append(
            AuditEntry(
                actor=owner_actor(customer.id),
                action="customer.view",
                subject=customer.id,
                details={"own": True, "fields": fields, "channel": channel},
                at=now,
            )
        )

    async def _changed(
        self,
        uow: UnitOfWork,
        customer: Customer,
        changes: Mapping[str, str | None],
        *,
        channel: str,
        now: datetime,
    ) -> None:
        await uow.audit.append(
            AuditEntry(
                actor=owner_actor(customer.id),
                action="profile.updated",
                subject=customer.id,
                details={"fields": sorted(changes), "channel": channel},
                at=now,
            )
        )
        await uow.events.publish(
            profile_updated(account_no=customer.account_no, changes=changes, updated_at=now),
            occurred_at=now,
        )
        logger.info("profile updated", extra={"fields": sorted(changes), "channel": channel})

    # --- address ---------------------------------------------------------------------------

    async def change_address(
        self, uow: UnitOfWork, customer: Customer, address: str, *, channel: str, now: datetime
    ) -> Customer | AddressRefused:
        """The customer with the new address, or why it was refused."""
        problem = address_problem(address)
        if problem is not None:
            return AddressRefused(problem)
        changed = dataclasses.replace(customer, address=normalise_address(address))
        if changed.address != customer.address:
            await uow.customers.update(changed)
            await self._changed(
                uow, changed, {"address": changed.address}, channel=channel, now=now
            )
        return changed

    # --- language and notifications --------------------------------------------------------

    async def set_language(
        self, uow: UnitOfWork, customer: Customer, language: str, *, channel: str, now: datetime
    ) -> Customer:
        """Raises ValueError for a language the bot does not speak."""
        if language not in SUPPORTED_LANGUAGES:
            raise ValueError(f"unsupported language {language!r}")
        if language == customer.language:
            return customer
        changed = dataclasses.replace(customer, language=language)
        await uow.customers.update(changed)
        await self._changed(uow, changed, {"language": language}, channel=channel, now=now)
        return changed

    async def set_notification(
        self,
        uow: UnitOfWork,
        customer: Customer,
        kind: NotificationKind,
        enabled: bool,
        *,
        channel: str,
        now: datetime,
    ) -> bool:
        """Turn one kind of service message on or off; False when it already was so."""
        current = await _notification_enabled(uow, customer.id)
        if (kind in current) == enabled:
            return False
        from core.services.reminders import set_notification

        await set_notification(uow, customer.id, kind, enabled, now=now)
        changes = {f"notifications.{kind.value}": "on" if enabled else "off"}
        await self._changed(uow, customer, changes, channel=channel, now=now)
        return True

    # --- email and mobile number, confirmed by a code --------------------------------------

    async def _taken(
        self, uow: UnitOfWork, customer: Customer, kind: ContactKind, value: str
    ) -> bool:
        if kind is ContactKind.EMAIL:
            owner = await uow.profile.customer_id_by_email(value)
            return owner is not None and owner != customer.id
        other = await uow.customers.find_by_phone(value)
        if other is not None and other.id != customer.id:
            return True
        account = await uow.customers.find_service_account_by_number(value)
        return (
            account is not None
            and account.customer_id != customer.id
            and account.kind is ServiceKind.MOBILE
        )

    def _current(self, customer: Customer, kind: ContactKind) -> str | None:
        if kind is ContactKind.EMAIL:
            return normalise_email(customer.email) if customer.email else None
        try:
            return normalise_phone(customer.phone)
        except ValueError:
            return None

    def _digest(self, change_id: str, code: str) -> bytes:
        return self._keyed.blind_index(_CODE_FIELD, f"{change_id}:{code}")

    async def request_contact_change(
        self,
        uow: UnitOfWork,
        customer: Customer,
        kind: ContactKind,
        raw_value: str,
        *,
        channel: str,
        chat_id: str,
        t: Translator,
        now: datetime,
    ) -> ContactRequestResult:
        """Send a code to the new email address or mobile number. Raises RuntimeError when
        no sender of that kind is configured (see :meth:`can_change`)."""
        if not self.can_change(kind):
            raise RuntimeError(f"no sender configured for {kind.value} codes")
        value = _normalise_contact(kind, raw_value)
        if value is None or contact_problem(kind, value) is not None:
            return ContactRefused(ContactProblem.INVALID)
        current = self._current(customer, kind)
        if current is not None and current.casefold() == value.casefold():
            return ContactRefused(ContactProblem.SAME)
        if await self._taken(uow, customer, kind, value):
            return ContactRefused(ContactProblem.TAKEN)
        keys = (
            (_THROTTLE_CUSTOMER, self.policy.per_customer, customer.id),
            (_THROTTLE_TARGET, self.policy.per_target, f"{kind.value}:{value.casefold()}"),
        )
        throttles = []
        for name, policy, subject in keys:
            key = self._keyed.blind_index(name, subject)
            throttles.append((name, policy, key, await uow.linking.throttle(name, key)))
        waits = [u for *_, th in throttles if (u := blocked_until(th, now)) is not None]
        if waits:
            return CodeThrottled(until=max(waits))
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        change_id = new_id()
        minutes = int(self.policy.code_ttl.total_seconds() // 60)
        try:
            if kind is ContactKind.EMAIL:
                assert self._email is not None
                await self._email.send(
                    value,
                    t._("Your {operator} confirmation code").format(operator=self._operator),
                    t._(
                        "{code} is your code to confirm this email address for your "
                        "{operator} account. It is valid for {minutes} minutes. If you did "
                        "not ask for it, you can ignore this email."
                    ).format(code=code, operator=self._operator, minutes=minutes),
                )
                masked = mask_email(value)
            else:
                assert self._sms is not None
                await self._sms.send(
                    value,
                    t._(
                        "{code} is your {operator} code to confirm this number for your "
                        "account. It is valid for {minutes} minutes. Never share it with anyone."
                    ).format(code=code, operator=self._operator, minutes=minutes),
                )
                masked = mask_phone(value)
        except DeliveryError as exc:
            logger.warning(
                "contact code not sent", extra={"kind": kind.value, "reason": exc.reason[:100]}
            )
            return CodeNotSent()
        for name, policy, key, th in throttles:
            await uow.linking.save_throttle(record(th, name, key, policy, now), now)
        expires_at = now + self.policy.code_ttl
        await uow.profile.add_contact_change(
            ContactChange(
                id=change_id,
                customer_id=customer.id,
                kind=kind,
                value=value,
                channel=channel,
                chat_id=chat_id,
                code_digest=self._digest(change_id, code),
                created_at=now,
                expires_at=expires_at,
            )
        )
        return CodeSent(masked=masked, expires_at=expires_at)

    async def confirm_contact_change(
        self,
        uow: UnitOfWork,
        customer: Customer,
        kind: ContactKind,
        code: str,
        *,
        channel: str,
        chat_id: str,
        now: datetime,
    ) -> ContactConfirmResult:
        """Check ``code`` against the chat's live code of ``kind``; every call is a try.
        A right code changes the value (unless another customer took it meanwhile)."""
        change = await uow.profile.open_contact_change(customer.id, kind, channel, chat_id)
        if change is None:
            return CodeMissing()
        if now >= change.expires_at:
            await uow.profile.update_contact_change(
                change.id, attempts=change.attempts, used_at=now
            )
            return CodeExpired()
        attempts = change.attempts + 1
        if hmac.compare_digest(self._digest(change.id, code.strip()), change.code_digest):
            await uow.profile.update_contact_change(change.id, attempts=attempts, used_at=now)
            if await self._taken(uow, customer, kind, change.value):
                return ContactRefused(ContactProblem.TAKEN)
            if kind is ContactKind.EMAIL:
                changed = dataclasses.replace(customer, email=change.value)
            else:
                changed = dataclasses.replace(customer, phone=change.value)
            await uow.customers.update(changed)
            await self._changed(uow, changed, {kind.value: change.value}, channel=channel, now=now)
            return ContactChanged(changed)
        spent = attempts >= self.policy.code_tries
        await uow.profile.update_contact_change(
            change.id, attempts=attempts, used_at=now if spent else None
        )
        if spent:
            return CodeExhausted()
        return CodeWrong(tries_left=self.policy.code_tries - attempts)
