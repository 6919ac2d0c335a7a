"""The linking repository: page links, SMS codes, LINE nonces and lockout counters.

Implements ``core.ports.LinkingRepository``. Values arrive hashed already (the use case
hashes them); nothing here is personal. Spending a token or nonce is one conditional
update, so two concurrent requests can never both spend it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from core.domain import AccountLinkNonce, LinkToken, OtpChallenge, Throttle
from storage.locks import advisory_xact_lock
from storage.tables_linking import account_link_nonces, auth_throttles, link_tokens, otp_challenges


def _link_token(row: RowMapping) -> LinkToken:
    return LinkToken(
        token_hash=bytes(row["token_hash"]),
        channel=row["channel"],
        chat_id=row["chat_id"],
        language=row["language"],
        notice_version=row["notice_version"],
        purpose=row["purpose"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        customer_id=row["customer_id"],
    )


def _otp(row: RowMapping) -> OtpChallenge:
    return OtpChallenge(
        id=row["id"],
        channel=row["channel"],
        chat_id=row["chat_id"],
        code_digest=bytes(row["code_digest"]),
        customer_id=row["customer_id"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        attempts=row["attempts"],
        used_at=row["used_at"],
    )


def _nonce(row: RowMapping) -> AccountLinkNonce:
    return AccountLinkNonce(
        nonce_hash=bytes(row["nonce_hash"]),
        channel=row["channel"],
        chat_id=row["chat_id"],
        eservice_user_id=row["eservice_user_id"],
        customer_id=row["customer_id"],
        notice_version=row["notice_version"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
    )


class SqlLinkingRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    # --- page links --------------------------------------------------------------------------

    async def add_link_token(self, token: LinkToken) -> None:
        await self._conn.execute(
            insert(link_tokens).values(
                token_hash=token.token_hash,
                channel=token.channel,
                chat_id=token.chat_id,
                language=token.language,
                notice_version=token.notice_version,
                purpose=token.purpose,
                customer_id=token.customer_id,
                created_at=token.created_at,
                expires_at=token.expires_at,
                used_at=token.used_at,
            )
        )

    async def find_link_token(self, token_hash: bytes) -> LinkToken | None:
        query = select(link_tokens).where(link_tokens.c.token_hash == token_hash)
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else _link_token(row)

    async def use_link_token(self, token_hash: bytes, at: datetime) -> bool:
        result = await self._conn.execute(
            update(link_tokens)
            .where(link_tokens.c.token_hash == token_hash, link_tokens.c.used_at.is_(None))
            .values(used_at=at)
        )
        return result.rowcount == 1

    # --- SMS codes ---------------------------------------------------------------------------

    async def add_otp(self, challenge: OtpChallenge) -> None:
        """Store a new code; the chat's earlier codes are used up (one live code a chat)."""
        await self._conn.execute(
            update(otp_challenges)
            .where(
                otp_challenges.c.channel == challenge.channel,
                otp_challenges.c.chat_id == challenge.chat_id,
                otp_challenges.c.used_at.is_(None),
            )
            .values(used_at=challenge.created_at)
        )
        await self._conn.execute(
            insert(otp_challenges).values(
                id=challenge.id,
                channel=challenge.channel,
                chat_id=challenge.chat_id,
                code_digest=challenge.code_digest,
                customer_id=challenge.customer_id,
                attempts=challenge.attempts,
                created_at=challenge.created_at,
                expires_at=challenge.expires_at,
                used_at=challenge.used_at,
            )
        )

    async def open_otp(self, channel: str, chat_id: str) -> OtpChallenge | None:
        query = (
            select(otp_challenges)
            .where(
                otp_challenges.c.channel == channel,
                otp_challenges.c.chat_id == chat_id,
                otp_challenges.c.used_at.is_(None),
            )
            .order_by(otp_challenges.c.created_at.desc())
            .limit(1)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else _otp(row)

    async def update_otp(
        self, challenge_id: str, *, attempts: int, used_at: datetime | None
    ) -> None:
        await self._conn.execute(
            update(otp_challenges)
            .where(otp_challenges.c.id == challenge_id)
            .values(attempts=attempts, used_at=used_at)
        )

    # --- LINE account-link nonces ------------------------------------------------------------

    async def add_nonce(self, nonce: AccountLinkNonce) -> None:
        await self._conn.execute(
            insert(account_link_nonces).values(
                nonce_hash=nonce.nonce_hash,
                channel=nonce.channel,
                chat_id=nonce.chat_id,
                eservice_user_id=nonce.eservice_user_id,
                customer_id=nonce.customer_id,
                notice_version=nonce.notice_version,
                created_at=nonce.created_at,
                expires_at=nonce.expires_at,
                used_at=nonce.used_at,
            )
        )

    async def find_nonce(self, nonce_hash: bytes) -> AccountLinkNonce | None:
        query = select(account_link_nonces).where(account_link_nonces.c.nonce_hash == nonce_hash)
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else _nonce(row)

    async def use_nonce(self, nonce_hash: bytes, at: datetime) -> bool:
        result = await self._conn.execute(
            update(account_link_nonces)
            .where(
                account_link_nonces.c.nonce_hash == nonce_hash,
                account_link_nonces.c.used_at.is_(None),
            )
            .values(used_at=at)
        )
        return result.rowcount == 1

    async def close_open_secrets(self, channel: str, chat_id: str, at: datetime) -> None:
        for table in (link_tokens, otp_challenges, account_link_nonces):
            await self._conn.execute(
                update(table)
                .where(
                    table.c.channel == channel,
                    table.c.chat_id == chat_id,
                    table.c.used_at.is_(None),
                )
                .values(used_at=at)
            )

    # --- counters ----------------------------------------------------------------------------

    async def throttle(self, kind: str, key: bytes) -> Throttle | None:
        # Serialise the read-modify-write of one counter (SQLite: its single writer).
        await advisory_xact_lock(self._conn, f"throttle:{kind}:{key.hex()}")
        query = select(auth_throttles).where(
            auth_throttles.c.kind == kind, auth_throttles.c.key == key
        )
        row = (await self._conn.execute(query)).mappings().first()
        if row is None:
            return None
        return Throttle(
            kind=row["kind"],
            key=bytes(row["key"]),
            count=row["count"],
            window_started_at=row["window_started_at"],
            blocked_until=row["blocked_until"],
            strikes=row["strikes"],
        )

    async def save_throttle(self, throttle: Throttle, now: datetime) -> None:
        values = {
            "count": throttle.count,
            "window_started_at": throttle.window_started_at,
            "blocked_until": throttle.blocked_until,
            "strikes": throttle.strikes,
            "updated_at": now,
        }
        # The caller holds the counter's lock (``throttle``), so update-else-insert is safe.
        result = await self._conn.execute(
            update(auth_throttles)
            .where(auth_throttles.c.kind == throttle.kind, auth_throttles.c.key == throttle.key)
            .values(**values)
        )
        if result.rowcount == 0:
            await self._conn.execute(
                insert(auth_throttles).values(kind=throttle.kind, key=throttle.key, **values)
            )

    async def purge(self, before: datetime) -> int:
        removed = 0
        for table in (link_tokens, otp_challenges, account_link_nonces):
            result = await self._conn.execute(delete(table).where(table.c.expires_at < before))
            removed += result.rowcount
        result = await self._conn.execute(
            delete(auth_throttles).where(
                auth_throttles.c.updated_at < before,
                or_(
                    auth_throttles.c.blocked_until.is_(None),
                    auth_throttles.c.blocked_until < before,
                ),
            )
        )
        return removed + result.rowcount
