"""Linking on both engines: the repository (page links, SMS codes, nonces, counters) and
the dialogues run through the real conversation service and storage, with a frozen
clock: sign in, lockout and its end, SMS code, nothing secret stored in clear."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.chat import ButtonPress, DeleteUserMessage, Incoming, LinkButton, TextMessage, TextReply
from core.domain import AccountLinkNonce, LinkToken, OtpChallenge, Throttle, new_id
from core.i18n import preload
from core.services.conversation import ConversationService, ConversationSettings
from core.services.linking import LinkingService, token_hash
from core.services.passwords import load_common_passwords
from storage import tables_linking as tl
from storage.crypto import Argon2PasswordHasher
from storage.uow import Database
from tests.integration import factories as f

T0 = datetime(2026, 11, 25, 7, 5, tzinfo=UTC)
FAST = {"time_cost": 1, "memory_cost_kib": 8, "parallelism": 1}  # argon2id, test-sized
PASSWORD = "ถั่วเขียว-correct-horse"
# File reads at collection, not in a test's event loop: the password list, the catalogs.
COMMON = load_common_passwords()
preload()


def token(**changes: object) -> LinkToken:
    values: dict[str, object] = {
        "token_hash": token_hash(new_id()),
        "channel": "telegram",
        "chat_id": "42",
        "language": "th",
        "notice_version": "2026-11-1",
        "purpose": "signin",
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=10),
    }
    values.update(changes)
    return LinkToken(**values)  # type: ignore[arg-type]


# --- the repository ----------------------------------------------------------------------------


async def test_a_page_link_is_found_by_its_hash_and_spent_once(db: Database) -> None:
    stored = token()
    async with db.uow() as uow:
        await uow.linking.add_link_token(stored)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.linking.find_link_token(stored.token_hash) == stored
        assert await uow.linking.use_link_token(stored.token_hash, T0)
        assert not await uow.linking.use_link_token(stored.token_hash, T0)
        await uow.commit()
    async with db.uow() as uow:
        found = await uow.linking.find_link_token(stored.token_hash)
    assert found is not None and found.used_at == T0


async def test_two_concurrent_requests_spend_a_page_link_only_once(db: Database) -> None:
    stored = token()
    async with db.uow() as uow:
        await uow.linking.add_link_token(stored)
        await uow.commit()

    async def spend() -> bool:
        async with db.uow() as uow:
            spent = await uow.linking.use_link_token(stored.token_hash, T0)
            await uow.commit()
            return spent

    assert sorted(await asyncio.gather(spend(), spend(), spend())) == [False, False, True]


async def test_a_new_sms_code_uses_up_the_chats_earlier_ones(db: Database) -> None:
    owner = f.customer()
    await f.add_customers(db, owner)
    first = OtpChallenge(
        new_id(), "telegram", "42", b"\x01" * 32, owner.id, T0, T0 + timedelta(minutes=5)
    )
    second = OtpChallenge(
        new_id(),
        "telegram",
        "42",
        b"\x02" * 32,
        None,
        T0 + timedelta(seconds=1),
        T0 + timedelta(minutes=6),
    )
    async with db.uow() as uow:
        await uow.linking.add_otp(first)
        await uow.linking.add_otp(second)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.linking.open_otp("telegram", "42") == second
        assert await uow.linking.open_otp("telegram", "other") is None
        await uow.linking.update_otp(second.id, attempts=3, used_at=None)
        await uow.commit()
    async with db.uow() as uow:
        found = await uow.linking.open_otp("telegram", "42")
    assert found is not None and found.attempts == 3


async def test_counters_are_saved_and_updated(db: Database) -> None:
    key = b"\x07" * 32
    async with db.uow() as uow:
        assert await uow.linking.throttle("signin_user", key) is None
        await uow.linking.save_throttle(Throttle("signin_user", key, 1, T0), T0)
        await uow.commit()
    blocked = Throttle("signin_user", key, 0, None, T0 + timedelta(minutes=15), 1)
    async with db.uow() as uow:
        await uow.linking.save_throttle(blocked, T0)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.linking.throttle("signin_user", key) == blocked
        assert await uow.linking.throttle("signin_chat", key) is None


async def test_linking_closes_the_chats_open_secrets_and_purge_removes_old_ones(
    db: Database,
) -> None:
    owner = f.customer()
    await f.add_customers(db, owner)
    user = f.user(owner)
    async with db.uow() as uow:
        await uow.users.add(user)
        await uow.linking.add_link_token(token())
        await uow.linking.add_otp(
            OtpChallenge(
                new_id(), "telegram", "42", b"\x01" * 32, None, T0, T0 + timedelta(minutes=5)
            )
        )
        await uow.linking.add_nonce(
            AccountLinkNonce(
                b"\x03" * 32,
                "telegram",
                "42",
                user.id,
                owner.id,
                "v",
                T0,
                T0 + timedelta(minutes=10),
            )
        )
        await uow.linking.close_open_secrets("telegram", "42", T0)
        await uow.commit()
    async with db.uow() as uow:
        assert await uow.linking.open_otp("telegram", "42") is None
        nonce = await uow.linking.find_nonce(b"\x03" * 32)
        assert nonce is not None and nonce.used_at == T0
        assert not await uow.linking.use_nonce(b"\x03" * 32, T0)
        assert await uow.linking.purge(T0 + timedelta(days=1)) == 3
        await uow.commit()


# --- the dialogues on real storage -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


class Sms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, phone: str, text: str) -> None:
        self.sent.append((phone, text))


class Bot:
    def __init__(self, db: Database, channel: str = "telegram", chat_id: str = "5551234") -> None:
        self.clock = Clock()
        self.sms = Sms()
        linking = LinkingService(
            hasher=Argon2PasswordHasher(**FAST),
            keyed_hash=db.cipher,
            sms=self.sms,
            public_url="https://selfcare.test",
            operator_name="ExampleTel",
            common_passwords=COMMON,
        )
        self.service = ConversationService(
            db.uow,
            self.clock,
            ConversationSettings(operator_name="ExampleTel"),
            services={LinkingService: linking},
        )
        self.channel, self.chat_id = channel, chat_id
        self._n = 0

    async def send(self, event: object) -> list[object]:
        self._n += 1
        handled = await self.service.handle(
            Incoming(
                channel=self.channel,
                chat_id=self.chat_id,
                event_id=f"e{self._n}",
                event=event,  # type: ignore[arg-type]
                received_at=self.clock.now(),
                message_ref=str(self._n),
            )
        )
        return list(handled.replies)

    async def say(self, text: str) -> str:
        replies = await self.send(TextMessage(text))
        return "\n".join(r.text for r in replies if isinstance(r, TextReply))

    async def press(self, payload: str) -> list[object]:
        return await self.send(ButtonPress(payload))


async def add_user(db: Database, password: str = PASSWORD) -> tuple[object, object]:
    owner = f.customer(name="สมหญิง ใจดี", phone="0812345678")
    await f.add_customers(db, owner)
    user = f.user(
        owner, user_id="somying", password_hash=await Argon2PasswordHasher(**FAST).hash(password)
    )
    async with db.uow() as uow:
        await uow.users.add(user)
        await uow.commit()
    return owner, user


async def test_sign_in_in_chat_links_and_records_the_notice_on_both_engines(db: Database) -> None:
    owner, _ = await add_user(db)
    bot = Bot(db)
    await bot.press("link:accept")
    await bot.press("link:password")
    await bot.say("SOMYING")  # User IDs compare without case
    replies = await bot.send(TextMessage(PASSWORD))
    assert isinstance(replies[0], DeleteUserMessage)
    assert "สมหญิง ใจดี" in "\n".join(r.text for r in replies if isinstance(r, TextReply))
    async with db.uow() as uow:
        link = await uow.links.get("telegram", "5551234")
        (consent,) = await uow.consent.history(owner.id)  # type: ignore[attr-defined]
    assert link is not None and link.customer_id == owner.id  # type: ignore[attr-defined]
    assert (consent.channel, consent.recorded_at) == ("telegram", T0)


async def test_the_lockout_holds_on_both_engines_and_ends_with_the_clock(db: Database) -> None:
    await add_user(db)
    bot = Bot(db)
    await bot.press("link:accept")
    await bot.press("link:password")
    await bot.say("somying")
    for _ in range(5):
        last = await bot.say("wrong-password")
    assert "25 พ.ย. 2569 14:20 น." in last  # 07:05 UTC + 15 minutes, on a Bangkok clock
    assert "25 พ.ย. 2569 14:20 น." in await bot.say(PASSWORD)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(tl.auth_throttles))).mappings().all()
    assert {r["kind"] for r in rows} == {"signin_user", "signin_chat"}
    assert all(b"somying" not in bytes(r["key"]) for r in rows)

    bot.clock.at = T0 + timedelta(minutes=15)
    await bot.press("link:accept")
    await bot.press("link:password")
    await bot.say("somying")
    assert "สมหญิง" in await bot.say(PASSWORD)


async def test_an_sms_code_links_and_is_stored_only_as_a_keyed_hash(db: Database) -> None:
    owner, _ = await add_user(db)
    bot = Bot(db)
    await bot.press("link:accept")
    await bot.press("link:otp")
    await bot.say("081-234-5678")
    ((number, text),) = bot.sms.sent
    assert number == "0812345678"
    code = re.search(r"\b(\d{6})\b", text).group(1)  # type: ignore[union-attr]
    async with db.engine.connect() as conn:
        (row,) = (await conn.execute(select(tl.otp_challenges))).mappings().all()
    assert code.encode() not in bytes(row["code_digest"]) and len(bytes(row["code_digest"])) == 32
    assert row["customer_id"] == owner.id  # type: ignore[attr-defined]
    assert "สมหญิง" in await bot.say(code)


async def test_the_page_link_the_chat_gets_is_stored_as_a_hash(db: Database) -> None:
    bot = Bot(db)
    await bot.press("link:accept")
    replies = await bot.press("link:web")
    (button,) = [b for r in replies if isinstance(r, TextReply) for row in r.buttons for b in row]
    assert isinstance(button, LinkButton)
    raw = button.url.rsplit("/", 1)[1]
    async with db.engine.connect() as conn:
        (row,) = (await conn.execute(select(tl.link_tokens))).mappings().all()
    assert bytes(row["token_hash"]) == token_hash(raw)
    assert raw.encode() not in bytes(row["token_hash"])
    assert (row["channel"], row["chat_id"]) == ("telegram", "5551234")
