"""In-memory fakes for linking: the repository of page links, SMS codes, nonces and
lockout counters (``FakeUnitOfWork.linking``), an SMS sender that keeps what it sent, a
keyed hash, and a password hasher that costs nothing but counts its calls."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from core.domain import AccountLinkNonce, LinkToken, OtpChallenge, Throttle
from core.ports import DeliveryError

if TYPE_CHECKING:
    from fakes import FakeUnitOfWork


@dataclass
class LinkingState:
    tokens: dict[bytes, LinkToken] = field(default_factory=dict)
    otps: list[OtpChallenge] = field(default_factory=list)
    nonces: dict[bytes, AccountLinkNonce] = field(default_factory=dict)
    throttles: dict[tuple[str, bytes], Throttle] = field(default_factory=dict)


class FakeLinking:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    @property
    def _s(self) -> LinkingState:
        state: LinkingState = self._uow.state.linking
        return state

    async def add_link_token(self, token: LinkToken) -> None:
        self._s.tokens[token.token_hash] = token

    async def find_link_token(self, token_hash: bytes) -> LinkToken | None:
        return self._s.tokens.get(token_hash)

    async def use_link_token(self, token_hash: bytes, at: datetime) -> bool:
        token = self._s.tokens.get(token_hash)
        if token is None or token.used_at is not None:
            return False
        self._s.tokens[token_hash] = dataclasses.replace(token, used_at=at)
        return True

    async def add_otp(self, challenge: OtpChallenge) -> None:
        s = self._s
        s.otps = [
            dataclasses.replace(o, used_at=challenge.created_at)
            if (o.channel, o.chat_id) == (challenge.channel, challenge.chat_id)
            and o.used_at is None
            else o
            for o in s.otps
        ]
        s.otps.append(challenge)

    async def open_otp(self, channel: str, chat_id: str) -> OtpChallenge | None:
        found = [
            o
            for o in self._s.otps
            if (o.channel, o.chat_id) == (channel, chat_id) and o.used_at is None
        ]
        return max(found, key=lambda o: o.created_at) if found else None

    async def update_otp(
        self, challenge_id: str, *, attempts: int, used_at: datetime | None
    ) -> None:
        s = self._s
        s.otps = [
            dataclasses.replace(o, attempts=attempts, used_at=used_at)
            if o.id == challenge_id
            else o
            for o in s.otps
        ]

    async def add_nonce(self, nonce: AccountLinkNonce) -> None:
        self._s.nonces[nonce.nonce_hash] = nonce

    async def find_nonce(self, nonce_hash: bytes) -> AccountLinkNonce | None:
        return self._s.nonces.get(nonce_hash)

    async def use_nonce(self, nonce_hash: bytes, at: datetime) -> bool:
        nonce = self._s.nonces.get(nonce_hash)
        if nonce is None or nonce.used_at is not None:
            return False
        self._s.nonces[nonce_hash] = dataclasses.replace(nonce, used_at=at)
        return True

    async def close_open_secrets(self, channel: str, chat_id: str, at: datetime) -> None:
        s = self._s

        def close(item):  # type: ignore[no-untyped-def]
            if (item.channel, item.chat_id) == (channel, chat_id) and item.used_at is None:
                return dataclasses.replace(item, used_at=at)
            return item

        s.tokens = {k: close(v) for k, v in s.tokens.items()}
        s.otps = [close(o) for o in s.otps]
        s.nonces = {k: close(v) for k, v in s.nonces.items()}

    async def throttle(self, kind: str, key: bytes) -> Throttle | None:
        return self._s.throttles.get((kind, key))

    async def save_throttle(self, throttle: Throttle, now: datetime) -> None:
        self._s.throttles[(throttle.kind, throttle.key)] = throttle

    async def purge(self, before: datetime) -> int:
        s = self._s
        gone = [k for k, v in s.tokens.items() if v.expires_at < before]
        for k in gone:
            del s.tokens[k]
        kept = [o for o in s.otps if o.expires_at >= before]
        removed = len(gone) + len(s.otps) - len(kept)
        s.otps = kept
        return removed


class FakeKeyedHash:
    """HMAC-SHA256 under a fixed key per field (what FieldCipher.blind_index does)."""

    def blind_index(self, field: str, value: str) -> bytes:
        key = hashlib.sha256(b"test-key/" + field.encode()).digest()
        return hmac.new(key, value.encode(), hashlib.sha256).digest()


class FakeHasher:
    """``hash`` marks the password; ``verify`` checks the mark. Counts the calls, so a test
    can see that an unknown user costs a (dummy) verification as a known one does."""

    def __init__(self) -> None:
        self.verifies = 0
        self.dummy_verifies = 0

    @staticmethod
    def hash_of(password: str) -> str:
        return "fake$" + hashlib.sha256(password.encode()).hexdigest()

    async def hash(self, password: str) -> str:
        return self.hash_of(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verifies += 1
        return hmac.compare_digest(password_hash, await self.hash(password))

    async def dummy_verify(self, password: str) -> None:
        self.dummy_verifies += 1


_CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class SentSms:
    phone: str
    text: str

    @property
    def code(self) -> str:
        found = _CODE.search(self.text)
        assert found is not None, "no code in the SMS"
        return found.group(1)


class FakeSms:
    """Keeps every SMS; ``fail_next`` makes the next send fail like a gateway error."""

    def __init__(self) -> None:
        self.sent: list[SentSms] = []
        self.fail_next = False

    async def send(self, phone: str, text: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise DeliveryError("gateway answered 503", retry_after=5)
        self.sent.append(SentSms(phone, text))

    def last_code(self) -> str:
        assert self.sent, "no SMS was sent"
        return self.sent[-1].code
