"""Tables of the profile feature: contact changes waiting for their code, and correction
requests.

A new email address or mobile number is stored encrypted until its code confirms it (the
code only as a keyed hash); what a customer says is wrong is stored encrypted, and so is
the note staff resolve it with.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Table

from storage.tables import ID, metadata
from storage.types import UTCDateTime

contact_changes = Table(
    "contact_changes",
    metadata,
    Column("id", ID, primary_key=True),  # part of the hashed code: a code fits one row
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # email | phone
    Column("value_enc", LargeBinary, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("code_digest", LargeBinary(32), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Index("ix_contact_changes_customer", "customer_id", "kind", "created_at"),
    Index("ix_contact_changes_expires_at", "expires_at"),
    # Unlinking and erasure find a chat's rows by it (storage/privacy.py).
    Index("ix_contact_changes_chat", "channel", "chat_id"),
)

correction_requests = Table(
    "correction_requests",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("field", String(16), nullable=False),
    Column("text_enc", LargeBinary, nullable=False),  # the customer's own words
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(80), nullable=True),
    Column("note_enc", LargeBinary, nullable=True),  # staff's note to the customer
    Index("ix_correction_requests_status", "status", "created_at"),
    Index("ix_correction_requests_customer", "customer_id", "created_at"),
)
