"""Linking a chat to an e-service user: the use cases behind /link, /unlink and the
one-time sign-in page.

Three ways in: User ID and password (typed in chat, or on the ``/link/{token}`` page),
and a 6-digit SMS code to the number on file (which also opens registration for a
customer without a User ID). LINE chats may finish on LINE's own account-link dialog.

Abuse resistance:
- no enumeration: an unknown User ID and a wrong password get the same answer after the
  same work (``dummy_verify``); an SMS code is "sent" to a number not on file too (it is
  not, and no answer matches it);
- 5 failed sign-ins per User ID or per chat within 15 minutes pause sign-in for 15
  minutes, doubling with each pause (up to a day);
- SMS codes: at most 3 per number per 15 minutes and 5 per chat per hour; a code lives 5
  minutes, takes 5 tries, works once and only in the chat that asked for it;
- page links and nonces: 256 random bits, stored as SHA-256, 10 minutes, single use,
  bound to the chat.

Every method takes the caller's unit of work and never commits: a flow's changes commit
with the conversation, a page's with its own transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from core.domain import (
    AccountLinkNonce,
    AuditEntry,
    Channel,
    ChatLink,
    ConsentPurpose,
    ConsentRecord,
    Customer,
    EServiceUser,
    LinkToken,
    OtpChallenge,
    Throttle,
    new_id,
)
from core.i18n import Translator
from core.identifiers import normalise_phone, normalise_user_id
from core.integration_events import account_linked, account_unlinked
from core.masking import mask_phone
from core.ports import DeliveryError, KeyedHash, PasswordHasher, SmsSender, UnitOfWork
from core.services import passwords
from core.services.throttling import ThrottlePolicy, blocked_until, record

__all__ = [
    "AccountLinkDeclined",
    "AccountLinkInvalid",
    "LinkingPolicy",
    "LinkingService",
    "OtpExhausted",
    "OtpExpired",
    "OtpMissing",
    "OtpNotSent",
    "OtpSent",
    "OtpThrottled",
    "OtpVerified",
    "OtpWrong",
    "PageLinkProblem",
    "Registered",
    "RegistrationRefused",
    "SignInPaused",
    "SignedIn",
    "WrongCredentials",
    "token_hash",
]

logger = logging.getLogger(__name__)

PURPOSE_SIGNIN = "signin"
PURPOSE_REGISTER = "register"
# Longer input is no User ID or password of ours; it is refused before any lookup or hash
# (but after the same dummy hash, so its answer takes as long as any other).
MAX_USER_ID_INPUT = 128
MAX_PASSWORD_INPUT = 1024
OTP_DIGITS = 6
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OTP_FIELD = "otp-code"
_SIGNIN_USER, _SIGNIN_CHAT = "signin_user", "signin_chat"
_OTP_NUMBER, _OTP_CHAT = "otp_number", "otp_chat"


@dataclass(frozen=True, slots=True)
class LinkingPolicy:
    page_link_ttl: timedelta = timedelta(minutes=10)
    nonce_ttl: timedelta = timedelta(minutes=10)
    otp_ttl: timedelta = timedelta(minutes=5)
    otp_tries: int = 5
    signin: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(
            limit=5, window=timedelta(minutes=15), block=timedelta(minutes=15), growing=True
        )
    )
    otp_per_number: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(
            limit=3, window=timedelta(minutes=15), block=timedelta(minutes=15)
        )
    )
    otp_per_chat: ThrottlePolicy = field(
        default_factory=lambda: ThrottlePolicy(
            limit=5, window=timedelta(hours=1), block=timedelta(hours=1)
        )
    )


def token_hash(token: str) -> bytes:
    """How a page link's token (or a LINE nonce) is stored: its SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


# --- outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: EServiceUser


@dataclass(frozen=True, slots=True)
class WrongCredentials:
    """Unknown User ID or wrong password: deliberately the same."""


@dataclass(frozen=True, slots=True)
class SignInPaused:
    """Sign-in is paused until ``until``; ``now`` says this very attempt caused it."""

    until: datetime
    now: bool = False


SignInResult = SignedIn | WrongCredentials | SignInPaused


@dataclass(frozen=True, slots=True)
class PageLinkProblem:
    """Why a page link cannot be used: ``unknown``, ``expired`` or ``used``."""

    reason: str


@dataclass(frozen=True, slots=True)
class OtpSent:
    """A code went to ``masked_phone`` if that number is on file (the chat is told the same
    either way)."""

    masked_phone: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class OtpThrottled:
    until: datetime


@dataclass(frozen=True, slots=True)
class OtpNotSent:
    """The SMS gateway did not take the message; nothing was counted."""


OtpSendResult = OtpSent | OtpThrottled | OtpNotSent


@dataclass(frozen=True, slots=True)
class OtpVerified:
    customer_id: str


@dataclass(frozen=True, slots=True)
class OtpWrong:
    tries_left: int


@dataclass(frozen=True, slots=True)
class OtpExhausted:
    """That was the last try: the code is dead."""


@dataclass(frozen=True, slots=True)
class OtpExpired:
    pass


@dataclass(frozen=True, slots=True)
class OtpMissing:
    """The chat holds no live code (never asked, used, or used up)."""


OtpCheckResult = OtpVerified | OtpWrong | OtpExhausted | OtpExpired | OtpMissing


@dataclass(frozen=True, slots=True)
class Registered:
    user: EServiceUser


@dataclass(frozen=True, slots=True)
class RegistrationRefused:
    """``reason``: ``user_id_format``, ``user_id_taken``, ``has_user`` or a
    :class:`~core.services.passwords.PasswordProblem` value."""

    reason: str


@dataclass(frozen=True, slots=True)
class AccountLinkInvalid:
    """Unknown, used or expired nonce, or one issued for another chat."""


@dataclass(frozen=True, slots=True)
class AccountLinkDeclined:
    """The customer said no in LINE's dialog."""


# --- the service ---------------------------------------------------------------------------


class LinkingService:
    """The linking use cases. ``sms`` is None when no SMS gateway is configured: SMS codes
    and registration are then not offered."""

    def __init__(
        self,
        *,
        hasher: PasswordHasher,
        keyed_hash: KeyedHash,
        sms: SmsSender | None,
        public_url: str,
        operator_name: str,
        common_passwords: frozenset[str] = frozenset(),
        policy: LinkingPolicy | None = None,
    ) -> None:
        self._hasher = hasher
        self._keyed = keyed_hash
        self._sms = sms
        self._public_url = public_url.rstrip("/")
        self._operator = operator_name
        self._common = common_passwords
        self.policy = policy or LinkingPolicy()

    @property
    def sms_available(self) -> bool:
        return self._sms is not None

    def page_url(self, token: str) -> str:
        return f"{self._public_url}/link/{quote(token, safe='')}"

    # --- sign-in and lockout ---------------------------------------------------------------

    def _signin_keys(
        self, channel: str, chat_id: str, user_id: str | None
    ) -> list[tuple[str, bytes]]:
        keys = [(_SIGNIN_CHAT, self._keyed.blind_index(_SIGNIN_CHAT, f"{channel}:{chat_id}"))]
        if user_id is not None:
            subject = normalise_user_id(user_id[:MAX_USER_ID_INPUT])
            keys.append((_SIGNIN_USER, self._keyed.blind_index(_SIGNIN_USER, subject)))
        return keys

    async def signin_paused_until(
        self, uow: UnitOfWork, channel: str, chat_id: str, now: datetime
    ) -> datetime | None:
        """When the chat may try again, if its sign-in is paused now."""
        ((kind, key),) = self._signin_keys(channel, chat_id, None)
        return blocked_until(await uow.linking.throttle(kind, key), now)

    async def sign_in(
        self,
        uow: UnitOfWork,
        *,
        channel: str,
        chat_id: str,
        user_id: str,
        password: str,
        now: datetime,
    ) -> SignInResult:
        """Check a User ID and password typed by the chat (or on its page).

        A paused chat or User ID is refused before any check. A failure counts against the
        chat and the User ID (known or not); a success clears both counters."""
        keys = self._signin_keys(channel, chat_id, user_id)
        throttles = {kind: await uow.linking.throttle(kind, key) for kind, key in keys}
        paused = [u for t in throttles.values() if (u := blocked_until(t, now)) is not None]
        if paused:
            return SignInPaused(until=max(paused))
        user = None
        if 0 < len(user_id.strip()) <= MAX_USER_ID_INPUT:
            user = await uow.users.get_by_user_id(user_id.strip())
        attempt = password[:MAX_PASSWORD_INPUT]
        if user is None:
            await self._hasher.dummy_verify(attempt)
            ok = False
        else:
            ok = await self._hasher.verify(user.password_hash, attempt)
        ok = ok and len(password) <= MAX_PASSWORD_INPUT
        if ok and user is not None:
            for kind, key in keys:
                if throttles[kind] is not None:  # a success wipes the slate, strikes too
                    await uow.linking.save_throttle(Throttle(kind=kind, key=key), now)
            return SignedIn(user)
        until: list[datetime] = []
        for kind, key in keys:
            counted = record(throttles[kind], kind, key, self.policy.signin, now)
            await uow.linking.save_throttle(counted, now)
            if (blocked := blocked_until(counted, now)) is not None:
                until.append(blocked)
        logger.info("sign-in failed", extra={"channel": channel, "paused": bool(until)})
        if until:
            return SignInPaused(until=max(until), now=True)
        return WrongCredentials()

    # --- linking ---------------------------------------------------------------------------

    async def link(
        self,
        uow: UnitOfWork,
        *,
        channel: str,
        chat_id: str,
        eservice_user_id: str,
        customer_id: str,
        notice_version: str,
        method: str,
        now: datetime,
    ) -> Customer | None:
        """Link the chat (replacing any earlier link of it), record the accepted privacy
        notice, use up the chat's open codes and page links, audit and publish it.
        Returns the customer (None only if they were deleted meanwhile)."""
        await uow.links.link(
            ChatLink(
                channel=Channel(channel),
                chat_id=chat_id,
                eservice_user_id=eservice_user_id,
                customer_id=customer_id,
                linked_at=now,
            )
        )
        await uow.consent.record(
            ConsentRecord(
                customer_id=customer_id,
                purpose=ConsentPurpose.PRIVACY_NOTICE,
                granted=True,
                notice_version=notice_version,
                channel=channel,
                recorded_at=now,
            )
        )
        await uow.linking.close_open_secrets(channel, chat_id, now)
        await uow.audit.append(
            AuditEntry(
                actor=f"customer:{customer_id}",
                action="chat.linked",
                subject=customer_id,
                details={"channel": channel, "method": method},
                at=now,
            )
        )
        customer = await uow.customers.get(customer_id)
        if customer is not None:
            await uow.events.publish(
                account_linked(account_no=customer.account_no, channel=channel, linked_at=now),
                occurred_at=now,
            )
        logger.info("chat linked", extra={"channel": channel, "method": method})
        return customer

    async def unlink(
        self, uow: UnitOfWork, *, channel: str, chat_id: str, by_customer: str, now: datetime
    ) -> bool:
        """Remove the link of chat (``channel``, ``chat_id``) if it belongs to customer
        ``by_customer``; False when there is no such link."""
        current = await uow.links.get(channel, chat_id)
        if current is None or current.customer_id != by_customer:
            return False
        await uow.links.unlink(channel, chat_id)
        await uow.audit.append(
            AuditEntry(
                actor=f"customer:{by_customer}",
                action="chat.unlinked",
                subject=by_customer,
                details={"channel": channel},
                at=now,
            )
        )
        customer = await uow.customers.get(by_customer)
        if customer is not None:
            await uow.events.publish(
                account_unlinked(
                    account_no=customer.account_no,
                    channel=channel,
                    unlinked_at=now,
                    reason="customer",
                ),
                occurred_at=now,
            )
        logger.info("chat unlinked", extra={"channel": channel})
        return True

    # --- the one-time page -----------------------------------------------------------------

    async def issue_page_link(
        self,
        uow: UnitOfWork,
        *,
        channel: str,
        chat_id: str,
        language: str,
        notice_version: str,
        now: datetime,
        purpose: str = PURPOSE_SIGNIN,
        customer_id: str | None = None,
    ) -> str:
        """A new page URL for the chat (valid ``page_link_ttl``, once)."""
        token = secrets.token_urlsafe(32)
        await uow.linking.add_link_token(
            LinkToken(
                token_hash=token_hash(token),
                channel=channel,
                chat_id=chat_id,
                language=language,
                notice_version=notice_version,
                purpose=purpose,
                created_at=now,
                expires_at=now + self.policy.page_link_ttl,
                customer_id=customer_id,
            )
        )
        return self.page_url(token)

    async def open_page_link(
        self, uow: UnitOfWork, token: str, now: datetime
    ) -> LinkToken | PageLinkProblem:
        """The live page link ``token`` names, or why it is not usable."""
        found = await uow.linking.find_link_token(token_hash(token))
        if found is None:
            return PageLinkProblem("unknown")
        if found.used_at is not None:
            return PageLinkProblem("used")
        if now >= found.expires_at:
            return PageLinkProblem("expired")
        return found

    async def use_page_link(self, uow: UnitOfWork, link: LinkToken, now: datetime) -> bool:
        """Spend the link; False when a concurrent request spent it first."""
        return await uow.linking.use_link_token(link.token_hash, now)

    # --- SMS codes -------------------------------------------------------------------------

    async def _customers_for_number(self, uow: UnitOfWork, phone: str) -> list[str]:
        """The customers ``phone`` names (as contact or mobile number); more than one means
        a shared number, which cannot say whose chat it is linking."""
        return await uow.customers.customer_ids_for_number(phone, limit=2)

    async def send_otp(
        self,
        uow: UnitOfWork,
        *,
        channel: str,
        chat_id: str,
        phone: str,
        t: Translator,
        now: datetime,
    ) -> OtpSendResult:
        """Send a code to ``phone`` if it is on file (``phone`` must be valid: see
        :func:`core.identifiers.normalise_phone`). Raises RuntimeError without SMS."""
        if self._sms is None:
            raise RuntimeError("no SMS gateway configured")
        number = normalise_phone(phone)
        keys = (
            (_OTP_NUMBER, self.policy.otp_per_number, number),
            (_OTP_CHAT, self.policy.otp_per_chat, f"{channel}:{chat_id}"),
        )
        throttles = []
        for kind, policy, subject in keys:
            key = self._keyed.blind_index(kind, subject)
            throttles.append((kind, policy, key, await uow.linking.throttle(kind, key)))
        waits = [u for *_, th in throttles if (u := blocked_until(th, now)) is not None]
        if waits:
            return OtpThrottled(until=max(waits))
        owners = await self._customers_for_number(uow, number)
        customer_id = owners[0] if len(owners) == 1 else None
        code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        challenge_id = new_id()
        text: str | None = None
        if customer_id is not None:
            text = t._(
                "{code} is your {operator} code to link your chat. It is valid for 5 minutes. "
                "Never share it with anyone."
            ).format(code=code, operator=self._operator)
        elif owners:
            # A shared number: a code would have to pick one account. The chat hears the
            # usual answer (no enumeration); the number's owner learns what to do instead.
            text = t._(
                "This number is on more than one {operator} account, so a code cannot tell "
                "which one to link. Please link with your User ID and password, or contact "
                "{operator} to get one."
            ).format(operator=self._operator)
        if text is not None:
            try:
                await self._sms.send(number, text)
            except DeliveryError as exc:
                logger.warning("sms not sent", extra={"reason": exc.reason[:100]})
                return OtpNotSent()
        for kind, policy, key, th in throttles:
            await uow.linking.save_throttle(record(th, kind, key, policy, now), now)
        await uow.linking.add_otp(
            OtpChallenge(
                id=challenge_id,
                channel=channel,
                chat_id=chat_id,
                code_digest=self._otp_digest(challenge_id, code),
                customer_id=customer_id,
                created_at=now,
                expires_at=now + self.policy.otp_ttl,
            )
        )
        return OtpSent(masked_phone=mask_phone(number), expires_at=now + self.policy.otp_ttl)

    def _otp_digest(self, challenge_id: str, code: str) -> bytes:
        return self._keyed.blind_index(_OTP_FIELD, f"{challenge_id}:{code}")

    async def verify_otp(
        self, uow: UnitOfWork, *, channel: str, chat_id: str, code: str, now: datetime
    ) -> OtpCheckResult:
        """Check the chat's live code against ``code`` (6 digits); every call is a try."""
        challenge = await uow.linking.open_otp(channel, chat_id)
        if challenge is None:
            return OtpMissing()
        if now >= challenge.expires_at:
            await uow.linking.update_otp(challenge.id, attempts=challenge.attempts, used_at=now)
            return OtpExpired()
        attempts = challenge.attempts + 1
        matches = hmac.compare_digest(self._otp_digest(challenge.id, code), challenge.code_digest)
        if matches and challenge.customer_id is not None:
            await uow.linking.update_otp(challenge.id, attempts=attempts, used_at=now)
            return OtpVerified(customer_id=challenge.customer_id)
        spent = attempts >= self.policy.otp_tries
        await uow.linking.update_otp(
            challenge.id, attempts=attempts, used_at=now if spent else None
        )
        if spent:
            return OtpExhausted()
        return OtpWrong(tries_left=self.policy.otp_tries - attempts)

    async def first_user(self, uow: UnitOfWork, customer_id: str) -> EServiceUser | None:
        """The customer's oldest e-service user: the one an SMS code links a chat to."""
        users = await uow.users.for_customer(customer_id)
        if not users:
            return None
        return min(users, key=lambda u: (u.created_at or _EPOCH, u.id))

    # --- registration ----------------------------------------------------------------------

    def password_problem(self, password: str, user_id: str) -> passwords.PasswordProblem | None:
        return passwords.password_problem(password, user_id=user_id, common=self._common)

    async def user_id_problem(self, uow: UnitOfWork, user_id: str) -> str | None:
        """``user_id_format`` or ``user_id_taken``, or None when it can be chosen."""
        if not passwords.valid_user_id(user_id):
            return "user_id_format"
        if await uow.users.get_by_user_id(user_id) is not None:
            return "user_id_taken"
        return None

    async def register(
        self,
        uow: UnitOfWork,
        *,
        customer_id: str,
        user_id: str,
        password: str,
        now: datetime,
    ) -> Registered | RegistrationRefused:
        """Create the customer's e-service user (they proved their number by SMS code)."""
        user_id = user_id.strip()
        problem = await self.user_id_problem(uow, user_id)
        if problem is not None:
            return RegistrationRefused(problem)
        if (pw_problem := self.password_problem(password, user_id)) is not None:
            return RegistrationRefused(pw_problem.value)
        if await uow.users.for_customer(customer_id):
            return RegistrationRefused("has_user")
        user = EServiceUser(
            id=new_id(),
            user_id=user_id,
            customer_id=customer_id,
            password_hash=await self._hasher.hash(password),
            created_at=now,
        )
        await uow.users.add(user)
        await uow.audit.append(
            AuditEntry(
                actor=f"customer:{customer_id}",
                action="eservice_user.registered",
                subject=customer_id,
                details={},
                at=now,
            )
        )
        return Registered(user)

    # --- LINE account link -----------------------------------------------------------------

    async def start_account_link(
        self, uow: UnitOfWork, *, link: LinkToken, user: EServiceUser, now: datetime
    ) -> str:
        """A nonce for LINE's account-link dialog, bound to the page's chat and ``user``."""
        nonce = secrets.token_urlsafe(32)
        await uow.linking.add_nonce(
            AccountLinkNonce(
                nonce_hash=token_hash(nonce),
                channel=link.channel,
                chat_id=link.chat_id,
                eservice_user_id=user.id,
                customer_id=user.customer_id,
                notice_version=link.notice_version,
                created_at=now,
                expires_at=now + self.policy.nonce_ttl,
            )
        )
        return nonce

    async def finish_account_link(
        self,
        uow: UnitOfWork,
        *,
        channel: str,
        chat_id: str,
        nonce: str,
        ok: bool,
        now: datetime,
    ) -> Customer | AccountLinkInvalid | AccountLinkDeclined | None:
        """LINE's ``accountLink`` event: link the chat to the user the nonce was issued for.
        Returns the customer (or None if deleted meanwhile) on success."""
        if not nonce or len(nonce) > 255:
            return AccountLinkInvalid()
        found = await uow.linking.find_nonce(token_hash(nonce))
        if (
            found is None
            or found.used_at is not None
            or now >= found.expires_at
            or (found.channel, found.chat_id) != (channel, chat_id)
        ):
            return AccountLinkInvalid()
        if not await uow.linking.use_nonce(found.nonce_hash, now):
            return AccountLinkInvalid()
        if not ok:
            return AccountLinkDeclined()
        return await self.link(
            uow,
            channel=channel,
            chat_id=chat_id,
            eservice_user_id=found.eservice_user_id,
            customer_id=found.customer_id,
            notice_version=found.notice_version,
            method="line_account_link",
            now=now,
        )
