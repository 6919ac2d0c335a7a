"""The composition root: the one place where concrete classes meet.

Everything a process needs is built here from :class:`~bot.settings.Settings` and
handed out; nothing else reads settings or opens the database on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.settings import Settings, SettingsError
from core.i18n import preload
from core.services.conversation import ConversationService, ConversationSettings
from storage.crypto import Argon2PasswordHasher, FieldCipher, Keyring, KeyringError
from storage.db import ensure_sqlite_folder
from storage.uow import Database


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def load_keyring(settings: Settings) -> Keyring:
    """The keyring for ``settings`` (blocking file I/O: call it in a thread).

    Development creates one when the file is missing; production never does, and
    refuses a keyring that was generated for development."""
    path = Path(settings.keyring_file)
    try:
        if settings.is_production:
            keyring = Keyring.load(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            keyring = Keyring.load_or_create(path)
    except KeyringError as exc:
        raise SettingsError(f"SELFCARE_KEYRING_FILE: {exc}") from None
    if settings.is_production and keyring.generated_for_development:
        raise SettingsError(
            "SELFCARE_KEYRING_FILE: a generated development keyring is refused in production; "
            "create a production keyring with `selfcare keys init`"
        )
    return keyring


@dataclass
class Container:
    settings: Settings
    keyring: Keyring
    cipher: FieldCipher
    db: Database
    hasher: Argon2PasswordHasher
    clock: SystemClock

    def conversation_service(self) -> ConversationService:
        s = self.settings
        return ConversationService(
            self.db.uow,
            self.clock,
            ConversationSettings(
                operator_name=s.operator_name,
                timeout=timedelta(minutes=s.conversation_timeout_minutes),
                default_language=s.default_language,
                privacy_contact=s.operator_contact,
            ),
        )

    async def close(self) -> None:
        await self.db.dispose()


async def build(settings: Settings) -> Container:
    keyring = await asyncio.to_thread(load_keyring, settings)
    await asyncio.to_thread(preload)  # gettext catalogs: read once, off the event loop
    await asyncio.to_thread(ensure_sqlite_folder, settings.database_url)
    cipher = FieldCipher(keyring)
    return Container(
        settings=settings,
        keyring=keyring,
        cipher=cipher,
        db=Database.connect(settings.database_url, cipher),
        hasher=Argon2PasswordHasher(),
        clock=SystemClock(),
    )
