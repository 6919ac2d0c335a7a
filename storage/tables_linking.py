"""Tables of chat linking: one-time page links, SMS codes, LINE account-link nonces and the
counters behind sign-in lockouts and SMS rate limits.

No secret or personal value is stored: tokens and nonces as SHA-256, codes and the
subjects of counters (a User ID, a phone number, a chat) as keyed HMACs
(``FieldCipher.blind_index``). Chat ids are stored as ``chat_links`` stores them.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from storage.tables import ID, metadata
from storage.types import BigId, UTCDateTime

link_tokens = Table(
    "link_tokens",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("language", String(2), nullable=False),
    Column("notice_version", String(32), nullable=False),
    Column("purpose", String(16), nullable=False),
    # register: the customer who proved their number by SMS code
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Index("ix_link_tokens_chat", "channel", "chat_id"),
    Index("ix_link_tokens_expires_at", "expires_at"),
    Index("ix_link_tokens_customer", "customer_id"),
)

otp_challenges = Table(
    "otp_challenges",
    metadata,
    Column("id", ID, primary_key=True),  # part of the hashed value: a code fits one row
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("code_digest", LargeBinary(32), nullable=False),
    # None: the number is not on file (nothing was sent and nothing matches)
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Index("ix_otp_challenges_chat", "channel", "chat_id", "created_at"),
    Index("ix_otp_challenges_expires_at", "expires_at"),
    Index("ix_otp_challenges_customer", "customer_id"),
)

account_link_nonces = Table(
    "account_link_nonces",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("nonce_hash", LargeBinary(32), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column(
        "eservice_user_id",
        ID,
        ForeignKey("eservice_users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("notice_version", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Index("ix_account_link_nonces_chat", "channel", "chat_id"),
    Index("ix_account_link_nonces_customer", "customer_id"),
    Index("ix_account_link_nonces_eservice_user", "eservice_user_id"),
)

auth_throttles = Table(
    "auth_throttles",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("key", LargeBinary(32), nullable=False),
    Column("count", Integer, nullable=False),
    Column("window_started_at", UTCDateTime, nullable=True),
    Column("blocked_until", UTCDateTime, nullable=True),
    Column("strikes", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "key", name="uq_auth_throttles_kind_key"),
    Index("ix_auth_throttles_updated_at", "updated_at"),
)
