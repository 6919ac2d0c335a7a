"""Tables of bills and payments in the chat: payment links, notification preferences and
the ledger of bill reminders already sent.

Nothing here is personal: a payment link keeps only the SHA-256 of its token, a
preference is a customer id, a kind and a flag.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from storage.tables import ID, metadata
from storage.types import BigId, UTCDateTime

pay_links = Table(
    "pay_links",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("bill_id", ID, ForeignKey("bills.id", ondelete="CASCADE"), nullable=False),
    # The language of the chat that asked, so the page (and its 404) speak it.
    Column("language", String(2), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_pay_links_expires_at", "expires_at"),
    Index("ix_pay_links_bill", "bill_id"),  # erasure and export find them through the bill
)

notification_preferences = Table(
    "notification_preferences",
    metadata,
    Column(
        "customer_id",
        ID,
        ForeignKey("customers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", String(32), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

sent_reminders = Table(
    "sent_reminders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("bill_id", ID, ForeignKey("bills.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    # "Never twice": a second insert for the same bill and kind is a no-op.
    UniqueConstraint("bill_id", "kind", name="uq_sent_reminders_bill_kind"),
)
