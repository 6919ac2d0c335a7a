"""Tables of the messaging channels (Telegram, LINE): who can no longer be reached, the
images and files LINE fetches by URL, and callback payloads too long for Telegram.

Imported at the bottom of storage/tables.py, so the schema always includes them.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, LargeBinary, String, Table, UniqueConstraint

from storage.tables import ID, metadata
from storage.types import BigId, UTCDateTime

#: Chats that blocked the bot (Telegram 403, LINE unfollow): nothing is sent to them until
#: they write again. ``chat_id`` is the platform's chat id, kept in clear like the
#: conversation's, because the webhook must find the row from the platform's update.
unreachable_chats = Table(
    "unreachable_chats",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("chat_id", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    UniqueConstraint("channel", "chat_id", name="uq_unreachable_chats_channel_chat"),
)

#: Images and files served at signed, expiring ``/media/{token}`` URLs (LINE fetches
#: images by HTTPS and cannot receive documents): a QR code or a data export is personal,
#: so the content and its file name are encrypted like any other personal value.
media_objects = Table(
    "media_objects",
    metadata,
    Column("id", ID, primary_key=True),
    Column("content_enc", LargeBinary, nullable=False),
    Column("filename_enc", LargeBinary, nullable=False),
    Column("mime_type", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_media_objects_expires_at", "expires_at"),
)

#: Button payloads longer than Telegram's 64-byte callback_data: the button carries
#: ``~`` + a keyed digest of the payload (the row's id), and this table maps it back.
callback_payloads = Table(
    "callback_payloads",
    metadata,
    Column("id", String(43), primary_key=True),
    Column("payload_enc", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_callback_payloads_created_at", "created_at"),
)
