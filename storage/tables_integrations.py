"""Tables of the integrations: subscriber endpoints, events out and their deliveries, the
inbox of signed events in, and import checkpoints.

Events out have tables of their own rather than ``outbox`` rows of kind ``webhook``: one
event fans out to several endpoints, each delivery with its own attempts, back-off and
dead-letter state, while the event (and its id, the ``webhook-id`` of every delivery and
replay) stays one row; a replay or an endpoint added later needs the event after its
deliveries are done; and the chat relay's per-chat ordering does not apply to them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from storage.tables import ID, metadata
from storage.types import BigId, UTCDateTime

EVENT_ID = String(40)  # "msg_" + core.domain.new_id()

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", ID, primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("events", Text, nullable=False),  # JSON list of event types
    Column("secret_enc", LargeBinary, nullable=False),  # whsec_…, AAD row id = id
    Column("description", String(200), nullable=False, server_default=""),
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

integration_events = Table(
    "integration_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", EVENT_ID, nullable=False, unique=True),  # AAD row id
    Column("type", String(64), nullable=False),
    # The exact body every delivery sends (it may hold personal data: encrypted).
    Column("payload_enc", LargeBinary, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Index("ix_integration_events_type", "type", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "event_id",
        EVENT_ID,
        ForeignKey("integration_events.event_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "endpoint_id", ID, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    ),
    Column(
        "status", String(16), nullable=False, server_default="pending"
    ),  # pending|delivered|dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    # The dead-letter clock: a delivery still failing this long after it started gives up.
    Column("window_started_at", UTCDateTime, nullable=False),
    Column("last_attempt_at", UTCDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id", "status"),
)

integration_inbox = Table(
    "integration_inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(128), nullable=False, unique=True),
    Column("body_sha256", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", Text, nullable=False),  # the first answer (JSON, no personal values)
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_integration_inbox_received_at", "received_at"),
)

import_checkpoints = Table(
    "import_checkpoints",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # customers | bills
    Column("file_key", String(64), nullable=False),  # sha256 of size and first MiB
    Column("line_no", BigInteger, nullable=False),  # last line committed
    Column("byte_offset", BigInteger, nullable=False),  # where the next line starts
    Column("applied", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "file_key", name="uq_import_checkpoints_kind_file"),
)
