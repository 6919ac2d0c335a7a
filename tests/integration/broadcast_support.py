"""Helpers for the broadcast tests: an audience of customers with linked chats and
marketing consents, the stub platforms, settings pointing at them, and a campaign."""

from __future__ import annotations

import itertools
import os
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.settings import Settings
from core.domain import (
    Campaign,
    Channel,
    ChatLink,
    ConsentPurpose,
    ConsentRecord,
    DeliveryStatus,
    StaffMember,
    StaffRole,
    new_id,
)
from core.services.campaigns import CampaignDraft, CampaignService
from storage.uow import Database
from tests.integration import factories
from tests.stubs.line import ACCESS_TOKEN
from tests.stubs.telegram import TOKEN

_telegram_ids = itertools.count(7_000_000_001)


def telegram_chat() -> str:
    return str(next(_telegram_ids))


def line_chat() -> str:
    return "U" + secrets.token_hex(16)


@dataclass
class Recipient:
    customer_id: str
    chats: dict[str, str] = field(default_factory=dict)  # channel → chat id


@dataclass
class Audience:
    opted_in: list[Recipient] = field(default_factory=list)
    others: list[Recipient] = field(default_factory=list)

    def chats(self, channel: str, group: Iterable[Recipient] | None = None) -> set[str]:
        members = self.opted_in if group is None else group
        return {r.chats[channel] for r in members if channel in r.chats}


async def add_customer(
    db: Database,
    *,
    channels: Iterable[str],
    consents: Iterable[bool] = (True,),
    at: datetime = factories.T0,
    language: str = "th",
) -> Recipient:
    """A customer with an e-service user, a chat on each channel and marketing consent
    records in order (the last one counts)."""
    customer = factories.customer(language=language)
    user = factories.user(customer)
    recipient = Recipient(customer.id)
    async with db.uow() as uow:
        await uow.customers.add(customer)
        await uow.users.add(user)
        for channel in channels:
            chat = telegram_chat() if channel == Channel.TELEGRAM else line_chat()
            await uow.links.link(
                ChatLink(
                    channel=Channel(channel),
                    chat_id=chat,
                    eservice_user_id=user.id,
                    customer_id=customer.id,
                    linked_at=at,
                )
            )
            recipient.chats[channel] = chat
        for n, granted in enumerate(consents):
            await uow.consent.record(
                ConsentRecord(
                    customer_id=customer.id,
                    purpose=ConsentPurpose.MARKETING,
                    granted=granted,
                    notice_version="2026-11-1",
                    channel="telegram",
                    recorded_at=at + timedelta(seconds=n),
                )
            )
        await uow.commit()
    return recipient


async def record_consent(db: Database, customer_id: str, granted: bool, at: datetime) -> None:
    async with db.uow() as uow:
        await uow.consent.record(
            ConsentRecord(
                customer_id=customer_id,
                purpose=ConsentPurpose.MARKETING,
                granted=granted,
                notice_version="2026-11-1",
                channel="line",
                recorded_at=at,
            )
        )
        await uow.commit()


async def add_staff(
    db: Database, handle: str, *roles: StaffRole, chat: str | None = None
) -> StaffMember:
    channel, chat_id = chat.split(":", 1) if chat else (None, None)
    member = StaffMember(
        id=new_id(),
        handle=handle,
        roles=frozenset(roles),
        active=True,
        created_at=factories.T0,
        chat_channel=channel,
        chat_id=chat_id,
    )
    async with db.uow() as uow:
        await uow.staff.add(member)
        await uow.commit()
    return member


DRAFT = {
    "title": "โปรเน็ตธันวาคม",
    "text_th": "เน็ตไม่อั้น 30 วัน ลด 50% 🎉",
    "text_en": "Unlimited data for 30 days, 50% off 🎉",
    "link_url": "https://example.co.th/promo?id=12",
    "link_label_th": "ดูรายละเอียด",
    "link_label_en": "Details",
}


async def create_campaign(db: Database, clock: Any, **fields: object) -> Campaign:
    service = CampaignService(db.uow, clock)
    return await service.create(CampaignDraft.from_mapping({**DRAFT, **fields}), actor="test")


async def statuses(db: Database, campaign_id: str) -> dict[str, DeliveryStatus]:
    """Chat id → status of every (non-preview) row of the campaign."""
    from sqlalchemy import select

    from storage.tables_staff import campaign_deliveries as rows

    async with db.engine.connect() as conn:
        found = await conn.execute(
            select(rows.c.chat_id, rows.c.status).where(
                rows.c.campaign_id == campaign_id, rows.c.preview.is_(False)
            )
        )
        return {chat: DeliveryStatus(status) for chat, status in found}


def broadcast_values(
    database_url: str,
    keyring_path: Path,
    *,
    telegram_url: str | None = None,
    line_url: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Settings for a worker that sends to the stubs (fast: 500 Telegram messages/s)."""
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "keyring_file": str(keyring_path),
        "broadcast_telegram_per_second": 500,
    }
    if telegram_url is not None:
        values.update(telegram_token=TOKEN, telegram_api_url=telegram_url)
    if line_url is not None:
        values.update(line_channel_access_token=ACCESS_TOKEN, line_api_url=line_url)
    values.update(overrides)
    return values


def settings_of(values: dict[str, Any]) -> Settings:
    return Settings(**values)


def worker_env(values: dict[str, Any]) -> dict[str, str]:
    """The environment of a `selfcare` subprocess with these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFCARE_")}
    env.update({f"SELFCARE_{name.upper()}": str(value) for name, value in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


WORKER_COMMAND = (sys.executable, "-m", "bot", "broadcast", "run", "--poll", "0.1")
