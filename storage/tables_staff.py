"""Tables of staff and promotions: staff, their roles and API tokens; campaigns, one row
per recipient chat of each campaign, and the pacing of sends per channel.

Imported at the bottom of storage/tables.py, so the schema always includes them. Nothing
here is a customer's personal value: campaign texts are the operator's, chat ids are the
platform's (kept in clear like chat_links'), tokens are stored as SHA-256 hashes.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from storage.tables import ID, metadata
from storage.types import BigId, UTCDateTime

staff = Table(
    "staff",
    metadata,
    Column("id", ID, primary_key=True),
    Column("handle", String(64), nullable=False, unique=True),
    Column("active", Boolean, nullable=False),
    # the staff member's own chat, where previews go
    Column("chat_channel", String(16), nullable=True),
    Column("chat_id", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
)

staff_roles = Table(
    "staff_roles",
    metadata,
    Column("staff_id", ID, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    PrimaryKeyConstraint("staff_id", "role", name="pk_staff_roles"),
)

#: API tokens: 256 random bits each, so a plain SHA-256 is enough to store them.
staff_tokens = Table(
    "staff_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("staff_id", ID, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("ix_staff_tokens_staff", "staff_id"),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", ID, primary_key=True),
    Column("title", String(100), nullable=False),
    Column("text_th", Text, nullable=False),
    Column("text_en", Text, nullable=False),
    Column("image_url", String(1000), nullable=True),
    Column("link_url", String(1000), nullable=True),
    Column("link_label_th", String(40), nullable=True),
    Column("link_label_en", String(40), nullable=True),
    Column("status", String(16), nullable=False),
    Column("scheduled_at", UTCDateTime, nullable=True),
    Column("created_by", String(80), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("cancelled_at", UTCDateTime, nullable=True),
    Index("ix_campaigns_status_scheduled", "status", "scheduled_at"),
)

#: One recipient chat of one campaign. The unique key makes the audience one row per
#: chat however often it is (re)built, so a resumed campaign never messages a chat twice.
#: ``status`` ``claimed`` (not yet handed to the platform) and ``sending`` are leased to
#: ``claimed_by`` until ``lease_until``; ``retry_key``
#: names the LINE multicast request the row went out in (X-Line-Retry-Key).
campaign_deliveries = Table(
    "campaign_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", ID, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("preview", Boolean, nullable=False),
    Column("language", String(2), nullable=True),
    Column("status", String(24), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("retry_key", String(36), nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("error", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint(
        "campaign_id", "channel", "chat_id", "preview", name="uq_campaign_deliveries_recipient"
    ),
    CheckConstraint("attempt >= 0", name="attempt_not_negative"),
    Index("ix_campaign_deliveries_queue", "channel", "status", "id"),
    Index("ix_campaign_deliveries_campaign_status", "campaign_id", "status"),
    Index("ix_campaign_deliveries_customer", "customer_id", "status", "claimed_at"),
    Index("ix_campaign_deliveries_retry_key", "retry_key"),
    # Unlinking and erasure find a chat's rows by it (storage/privacy.py).
    Index("ix_campaign_deliveries_chat", "channel", "chat_id"),
)

#: Per channel, the earliest moment the next platform request may go (all workers share
#: it): Telegram's ~30 messages a second overall, and a 429's retry_after.
broadcast_pacing = Table(
    "broadcast_pacing",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("next_at", UTCDateTime, nullable=False),
)
