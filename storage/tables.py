"""The schema, as SQLAlchemy Core tables. Alembic migrations are generated from it.

Columns ending in ``_enc`` hold AES-GCM ciphertexts (see storage/crypto.py) whose
associated data is ``table.column.id``; columns ending in ``_bidx`` hold blind indexes
(HMAC) used for lookups. Nothing personal is stored in clear.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from storage.types import BigId, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

ID = String(32)  # core.domain.new_id(): 128 random bits in hex

customers = Table(
    "customers",
    metadata,
    Column("id", ID, primary_key=True),
    Column("account_no", String(20), nullable=False, unique=True),
    Column("name_enc", LargeBinary, nullable=False),
    Column("address_enc", LargeBinary, nullable=False),
    Column("phone_enc", LargeBinary, nullable=False),
    Column("phone_bidx", LargeBinary(32), nullable=False, index=True),
    Column("email_enc", LargeBinary, nullable=True),
    Column("email_bidx", LargeBinary(32), nullable=True, index=True),
    Column("national_id_enc", LargeBinary, nullable=True),
    Column("national_id_bidx", LargeBinary(32), nullable=True, index=True),
    Column("language", String(2), nullable=False, server_default="th"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

service_accounts = Table(
    "service_accounts",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("number_enc", LargeBinary, nullable=False),
    Column("number_bidx", LargeBinary(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("plan", String(80), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_service_accounts_customer", "customer_id"),
)

eservice_users = Table(
    "eservice_users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("user_id_enc", LargeBinary, nullable=False),
    Column("user_id_bidx", LargeBinary(32), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_eservice_users_customer", "customer_id"),
)

chat_links = Table(
    "chat_links",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column(
        "eservice_user_id",
        ID,
        ForeignKey("eservice_users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("linked_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "chat_id", name="uq_chat_links_channel_chat"),
    Index("ix_chat_links_customer", "customer_id"),
    Index("ix_chat_links_eservice_user", "eservice_user_id"),
)

bills = Table(
    "bills",
    metadata,
    Column("id", ID, primary_key=True),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column(
        "service_account_id",
        ID,
        ForeignKey("service_accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("reference", String(20), nullable=False, unique=True),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("amount_satang", BigInteger, nullable=False),
    Column("paid_satang", BigInteger, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("amount_satang >= 0", name="amount_not_negative"),
    CheckConstraint("paid_satang >= 0", name="paid_not_negative"),
    Index("ix_bills_customer_period", "customer_id", "period_start"),
    Index("ix_bills_service_account", "service_account_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("external_id", String(64), nullable=False, unique=True),
    Column("bill_id", ID, ForeignKey("bills.id", ondelete="SET NULL"), nullable=True),
    Column("amount_satang", BigInteger, nullable=False),
    Column("method", String(32), nullable=False),
    Column("ref1", String(20), nullable=True),
    Column("ref2", String(20), nullable=True),
    Column("status", String(16), nullable=False, server_default="succeeded"),
    Column("paid_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("amount_satang > 0", name="amount_positive"),
    # A bill's payments (erasure, export, a bill deleted: SET NULL), and the payments that
    # matched no bill but name an account number (ref1), which erasure deletes with it.
    Index("ix_payments_bill", "bill_id"),
    Index("ix_payments_ref1", "ref1"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("language", String(2), nullable=False),
    # flow, step, data, privacy-notice flag: may hold what a customer typed, so encrypted
    Column("state_enc", LargeBinary, nullable=False),
    Column("deadline", UTCDateTime, nullable=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "chat_id", name="uq_conversations_channel_chat"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "event_id", name="uq_inbox_channel_event"),
    Index("ix_inbox_received_at", "received_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("uid", ID, nullable=False, unique=True),  # stable id, the ciphertext's row id
    Column("kind", String(16), nullable=False),  # chat | webhook
    Column("channel", String(16), nullable=True),
    Column("chat_id", String(64), nullable=True),
    Column("payload_enc", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("last_error", String(200), nullable=True),
    # status "sending": claimed by the process named lease_owner until lease_until
    Column("lease_until", UTCDateTime, nullable=True),
    Column("lease_owner", String(32), nullable=True),
    Index("ix_outbox_pending", "status", "available_at"),
    Index("ix_outbox_chat", "channel", "chat_id", "id"),
)

consent_ledger = Table(
    "consent_ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("granted", Boolean, nullable=False),
    Column("notice_version", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_consent_customer_purpose", "customer_id", "purpose", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("details", Text, nullable=False),  # JSON without personal values
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

#: Every encrypted column, by table: what ``selfcare keys rotate`` re-encrypts.
ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("name_enc", "address_enc", "phone_enc", "email_enc", "national_id_enc"),
    "service_accounts": ("number_enc",),
    "eservice_users": ("user_id_enc",),
    "conversations": ("state_enc",),
    "outbox": ("payload_enc",),
    "media_objects": ("content_enc", "filename_enc"),
    "callback_payloads": ("payload_enc",),
    "webhook_endpoints": ("secret_enc",),
    "integration_events": ("payload_enc",),
    "contact_changes": ("value_enc",),
    "correction_requests": ("text_enc", "note_enc"),
}


def aad_column(column: str) -> str:
    """The column name used in a ciphertext's associated data (without ``_enc``)."""
    return column.removesuffix("_enc")


# Each feature keeps its own tables in storage/tables_<feature>.py on the same metadata;
# they are imported here so that the schema (and Alembic) always sees all of them.
# (imports at the bottom on purpose: those modules import `metadata` from this one)
import storage.tables_channels  # noqa: E402
import storage.tables_integrations as _integrations  # noqa: E402, F401
import storage.tables_linking  # noqa: E402
import storage.tables_profile  # noqa: E402
import storage.tables_staff  # noqa: E402, F401
from storage import tables_billing  # noqa: E402, F401
