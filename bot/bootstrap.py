"""The composition root: the one place where concrete classes meet.

Everything a process needs is built here from :class:`~bot.settings.Settings` and
handed out; nothing else reads settings or opens the database on its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.email import DevelopmentEmail, SmtpEmail, email_sender
from bot.keys import KeyringWatcher
from bot.settings import Settings, SettingsError
from bot.sms import DevelopmentSms, HttpSmsGateway, sms_sender
from core.i18n import preload
from core.services.after_commit import DeferredEmail, DeferredSms
from core.services.billing import PaymentSettings
from core.services.conversation import ConversationService, ConversationSettings
from core.services.corrections import CorrectionDesk
from core.services.linking import LinkingService
from core.services.passwords import load_common_passwords
from core.services.profile import ProfileService
from core.services.reminders import ReminderSettings
from core.services.retention import RetentionPolicy
from storage.crypto import Argon2PasswordHasher, FieldCipher, Keyring, KeyringError
from storage.db import ensure_sqlite_folder, is_database_outage
from storage.uow import Database

#: Used outside production when no PromptPay id is configured (see README).
DEMO_BILLER_ID = "010555999999901"


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
    # Linking: the SMS sender (None: no SMS codes) and the common-password list.
    sms: HttpSmsGateway | DevelopmentSms | None = None
    common_passwords: frozenset[str] = frozenset()
    # Profile: the sender of email confirmation codes (None: email changes not offered).
    email: SmtpEmail | DevelopmentEmail | None = None
    # Reloads the keyring when `keys rotate` changes it (started by `build`).
    keyring_watcher: KeyringWatcher | None = None

    def linking_service(self) -> LinkingService:
        s = self.settings
        return LinkingService(
            hasher=self.hasher,
            keyed_hash=self.cipher,
            sms=None if self.sms is None else DeferredSms(self.sms),
            public_url=s.public_url,
            operator_name=s.operator_name,
            common_passwords=self.common_passwords,
        )

    def profile_service(self) -> ProfileService:
        return ProfileService(
            keyed_hash=self.cipher,
            sms=None if self.sms is None else DeferredSms(self.sms),
            email=None if self.email is None else DeferredEmail(self.email),
            operator_name=self.settings.operator_name,
        )

    def correction_desk(self) -> CorrectionDesk:
        """Support's side of "report wrong data" (the admin API resolves requests)."""
        return CorrectionDesk(self.db.uow, self.clock)

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(keep=timedelta(days=self.settings.retention_days))

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
                payments=self.payment_settings(),
            ),
            services={
                LinkingService: self.linking_service(),
                ProfileService: self.profile_service(),
            },
            storage_unavailable=is_database_outage,
        )

    def payment_settings(self) -> PaymentSettings:
        """PromptPay ids and payment pages. Outside production, with no id configured, a
        demo biller id makes the QR codes (valid payloads that no bank will credit)."""
        s = self.settings
        biller_id = s.promptpay_biller_id
        if biller_id is None and s.promptpay_id is None and not s.is_production:
            biller_id = DEMO_BILLER_ID
        return PaymentSettings(
            public_url=s.public_url,
            biller_id=biller_id,
            promptpay_id=s.promptpay_id,
            pay_link_ttl=timedelta(minutes=s.pay_link_ttl_minutes),
        )

    def reminder_settings(self) -> ReminderSettings:
        return ReminderSettings(days_before_due=self.settings.reminder_days)

    async def close(self) -> None:
        if self.keyring_watcher is not None:
            await self.keyring_watcher.stop()
        if self.sms is not None:
            await self.sms.close()
        if self.email is not None:
            await self.email.close()
        await self.db.dispose()


async def build(settings: Settings) -> Container:
    keyring = await asyncio.to_thread(load_keyring, settings)
    await asyncio.to_thread(preload)  # gettext catalogs: read once, off the event loop
    await asyncio.to_thread(ensure_sqlite_folder, settings.database_url)
    cipher = FieldCipher(keyring)
    container = Container(
        settings=settings,
        keyring=keyring,
        cipher=cipher,
        db=Database.connect(settings.database_url, cipher, pool_size=settings.database_pool_size),
        hasher=Argon2PasswordHasher(),
        clock=SystemClock(),
        sms=sms_sender(settings),
        email=email_sender(settings),
        common_passwords=await asyncio.to_thread(load_common_passwords),
        keyring_watcher=KeyringWatcher(Path(settings.keyring_file), cipher),
    )
    assert container.keyring_watcher is not None
    await container.keyring_watcher.start()
    return container
