"""``GET /media/{token}``: images and files at signed, expiring URLs.

LINE fetches images by HTTPS and cannot receive documents, so an image (a PromptPay QR,
a usage chart) or a file (a data export) for a LINE chat is stored encrypted in
``media_objects`` and sent as a link to this route. A token is
``<media id>.<expiry>.<signature>``: the id is 128 random bits, the signature an
HMAC-SHA256 over id and expiry under a key derived (HKDF, its own label) from the
keyring's index root, which is not rotated; so a URL cannot be guessed, altered or
extended, and it stops working at its expiry (``SELFCARE_MEDIA_URL_TTL``) even before
the worker purges the row. No new secret to manage.

Answers: 200 with the content, 404 for a token that is malformed, forged or unknown,
410 for one that has expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.app import CONTAINER, json_error
from core.ports import Clock
from storage.crypto import Keyring
from storage.uow import Database

__all__ = ["MEDIA_SIGNER", "MediaPublisher", "MediaSigner", "setup"]

MEDIA_KEY_INFO = b"selfcare/media-url/v1"
_TOKEN = re.compile(r"([0-9a-f]{32})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


class MediaTokenError(Exception):
    """A media token is not valid (``expired`` tells why)."""

    def __init__(self, *, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


class MediaSigner:
    """Signs and checks media tokens."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> MediaSigner:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=MEDIA_KEY_INFO).derive(
            keyring.index_key
        )
        return cls(key)

    def _mac(self, media_id: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{media_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def sign(self, media_id: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        return f"{media_id}.{expires}.{self._mac(media_id, expires)}"

    def verify(self, token: str, now: datetime) -> str:
        """The media id ``token`` grants; raises :class:`MediaTokenError`."""
        found = _TOKEN.fullmatch(token)
        if found is None:
            raise MediaTokenError()
        media_id, expires, mac = found.group(1), int(found.group(2)), found.group(3)
        if not hmac.compare_digest(mac, self._mac(media_id, expires)):
            raise MediaTokenError()
        if now.timestamp() >= expires:
            raise MediaTokenError(expired=True)
        return media_id


class MediaPublisher:
    """Stores content and returns its signed URL under ``public_url``."""

    def __init__(
        self, db: Database, clock: Clock, signer: MediaSigner, public_url: str, ttl: timedelta
    ) -> None:
        self._db = db
        self._clock = clock
        self._signer = signer
        self._base = public_url.rstrip("/")
        self._ttl = ttl

    async def publish(self, content: bytes, *, filename: str, mime_type: str) -> str:
        now = self._clock.now()
        expires_at = now + self._ttl
        async with self._db.uow() as uow:
            media_id = await uow.media.put(
                content, filename=filename, mime_type=mime_type, now=now, expires_at=expires_at
            )
            await uow.commit()
        return f"{self._base}/media/{self._signer.sign(media_id, expires_at)}"


MEDIA_SIGNER = web.AppKey("media_signer", MediaSigner)


async def serve_media(request: web.Request) -> web.StreamResponse:
    container = request.app[CONTAINER]
    now = container.clock.now()
    try:
        media_id = request.app[MEDIA_SIGNER].verify(request.match_info["token"], now)
    except MediaTokenError as exc:
        if exc.expired:
            return json_error(410, "expired", "This link has expired.")
        return json_error(404, "not_found", "Not found.")
    async with container.db.uow() as uow:
        media = await uow.media.get(media_id, now)
    if media is None:
        return json_error(404, "not_found", "Not found.")
    inline = media.mime_type.startswith("image/")
    disposition = "inline" if inline else "attachment"
    ascii_name = "".join(
        c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in media.filename
    )
    headers = {
        "Content-Type": media.mime_type,
        "Content-Disposition": (
            f'{disposition}; filename="{ascii_name or "file"}"; '
            f"filename*=UTF-8''{quote(media.filename, safe='')}"
        ),
        "Cache-Control": "private, no-store",
        "Expires": media.expires_at.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }
    return web.Response(body=media.content, headers=headers)


def setup(app: web.Application) -> None:
    """Add ``GET /media/{token}`` (needs ``app[CONTAINER]``)."""
    app[MEDIA_SIGNER] = MediaSigner.from_keyring(app[CONTAINER].keyring)
    app.router.add_get("/media/{token}", serve_media)
