"""Campaigns through the real worker code, the real SDKs and the stub platforms, on both
databases: who gets a promotion (and who does not), what it looks like, previews,
blocked chats, 429s and cancelling."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot import bootstrap
from bot.broadcast import Broadcaster, BroadcastSettings, open_broadcaster
from bot.channels.telegram_bulk import open_telegram_bulk
from core.domain import CampaignStatus, Channel, DeliveryStatus, StaffRole
from core.services.campaigns import CampaignService
from storage.uow import Database
from tests.integration.broadcast_support import (
    Recipient,
    add_customer,
    add_staff,
    broadcast_values,
    create_campaign,
    record_consent,
    settings_of,
    statuses,
)
from tests.stubs.broadcast_line import BroadcastLineStub
from tests.stubs.broadcast_telegram import BroadcastTelegramStub

TELEGRAM = Channel.TELEGRAM.value
LINE = Channel.LINE.value


@pytest.fixture
async def telegram() -> AsyncIterator[BroadcastTelegramStub]:
    stub = BroadcastTelegramStub()
    await stub.start()
    try:
        yield stub
    finally:
        stub.open_gate()
        await stub.close()


@pytest.fixture
async def line() -> AsyncIterator[BroadcastLineStub]:
    stub = BroadcastLineStub()
    await stub.start()
    try:
        yield stub
    finally:
        stub.release()
        await stub.close()


@pytest.fixture
async def container(
    db: Database,
    database_url: str,
    keyring_path: Path,
    telegram: BroadcastTelegramStub,
    line: BroadcastLineStub,
) -> AsyncIterator[bootstrap.Container]:
    values = broadcast_values(
        database_url, keyring_path, telegram_url=telegram.base_url, line_url=line.url
    )
    built = await bootstrap.build(await asyncio.to_thread(settings_of, values))
    try:
        yield built
    finally:
        await built.close()


async def send_now(container: bootstrap.Container, campaign_id: str) -> None:
    service = CampaignService(container.db.uow, container.clock)
    await service.schedule(campaign_id, actor="test")


async def run_until_done(
    broadcaster: Broadcaster, container: bootstrap.Container, cid: str
) -> None:
    service = CampaignService(container.db.uow, container.clock)
    for _ in range(50):
        await broadcaster.run_once()
        if (await service.report(cid)).finished:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the campaign did not finish")


# --- who gets it ---------------------------------------------------------------------------


async def test_only_customers_whose_consent_stands_at_send_time_and_under_the_cap_get_it(
    container: bootstrap.Container, telegram: BroadcastTelegramStub, line: BroadcastLineStub
) -> None:
    db = container.db
    # Earlier today: one customer got another promotion (the daily cap is 1).
    capped = await add_customer(db, channels=[TELEGRAM, LINE])
    earlier = await create_campaign(db, container.clock, title="earlier")
    await send_now(container, earlier.id)
    async with open_broadcaster(container) as broadcaster:
        await run_until_done(broadcaster, container, earlier.id)
    assert telegram.per_chat()[capped.chats[TELEGRAM]] == 1

    both = await add_customer(db, channels=[TELEGRAM, LINE])
    english = await add_customer(db, channels=[LINE], language="en")
    withdrew_before = await add_customer(db, channels=[TELEGRAM], consents=[True, False])
    never = await add_customer(db, channels=[TELEGRAM, LINE], consents=[])
    withdraws_during = await add_customer(db, channels=[TELEGRAM, LINE])
    campaign = await create_campaign(db, container.clock)
    await send_now(container, campaign.id)
    now = container.clock.now()
    async with db.uow() as uow:  # the worker builds the audience…
        made = await uow.broadcast.start(campaign.id, [TELEGRAM, LINE], now)
        await uow.commit()
    assert made == 2 + 2 + 1 + 2  # capped, both, english, withdraws_during
    # …and one customer taps "stop promotions" on another chat before the send.
    await record_consent(db, withdraws_during.customer_id, False, now + timedelta(seconds=1))

    telegram_before, line_before = telegram.per_chat(), line.per_user()
    async with open_broadcaster(container) as broadcaster:
        await run_until_done(broadcaster, container, campaign.id)

    got = (telegram.per_chat() - telegram_before) + (line.per_user() - line_before)
    expected = {both.chats[TELEGRAM]: 1, both.chats[LINE]: 1, english.chats[LINE]: 1}
    assert dict(got) == expected
    rows = await statuses(db, campaign.id)
    assert rows == {
        **{chat: DeliveryStatus.SENT for chat in expected},
        **{chat: DeliveryStatus.SKIPPED_CAPPED for chat in capped.chats.values()},
        **{chat: DeliveryStatus.SKIPPED_NO_CONSENT for chat in withdraws_during.chats.values()},
    }
    for nobody in (withdrew_before, never):
        assert not set(nobody.chats.values()) & set(rows)
    report = await CampaignService(db.uow, container.clock).report(campaign.id)
    assert report.campaign.status is CampaignStatus.DONE
    assert report.counts[DeliveryStatus.SENT] == 3


async def test_each_recipient_reads_the_promotion_in_their_language_with_opt_out_button(
    container: bootstrap.Container, telegram: BroadcastTelegramStub, line: BroadcastLineStub
) -> None:
    db = container.db
    thai = await add_customer(db, channels=[TELEGRAM])
    english = await add_customer(db, channels=[LINE], language="en")
    campaign = await create_campaign(
        db, container.clock, image_url="https://example.co.th/promo.png"
    )
    await send_now(container, campaign.id)
    async with open_broadcaster(container) as broadcaster:
        await run_until_done(broadcaster, container, campaign.id)

    (photo,) = telegram.accepted()
    assert photo.method == "sendPhoto" and photo.chat_id == thai.chats[TELEGRAM]
    assert photo.params["photo"] == "https://example.co.th/promo.png"
    assert photo.text.startswith("เน็ตไม่อั้น 30 วัน ลด 50% 🎉")
    assert photo.buttons() == [
        ("ดูรายละเอียด", "https://example.co.th/promo?id=12"),
        ("🚫 ไม่รับโปรโมชันอีก", f"optout:{campaign.id}"),
    ]
    (multicast,) = line.accepted()
    assert multicast.to == (english.chats[LINE],)
    image, bubble = multicast.messages
    assert image["type"] == "image"
    assert image["originalContentUrl"] == "https://example.co.th/promo.png"
    body = bubble["contents"]["body"]["contents"][0]["text"]
    assert body.startswith("Unlimited data for 30 days, 50% off 🎉")
    actions = [b["action"] for b in bubble["contents"]["footer"]["contents"]]
    assert actions[0] == {
        "type": "uri",
        "label": "Details",
        "uri": "https://example.co.th/promo?id=12",
    }
    assert actions[1]["type"] == "postback"
    assert actions[1]["data"] == f"optout:{campaign.id}"
    assert multicast.retry_key is not None


async def test_a_preview_goes_to_the_staff_members_own_chat_and_counts_for_nobody(
    container: bootstrap.Container, telegram: BroadcastTelegramStub
) -> None:
    db = container.db
    customer = await add_customer(db, channels=[TELEGRAM])
    marketer = await add_staff(db, "anna", StaffRole.MARKETER, chat="telegram:555001")
    campaign = await create_campaign(db, container.clock)
    service = CampaignService(db.uow, container.clock)
    await service.preview(campaign.id, marketer, actor=marketer.actor)
    async with open_broadcaster(container) as broadcaster:
        await broadcaster.run_once()

    assert dict(telegram.per_chat()) == {"555001": 1}
    assert customer.chats[TELEGRAM] not in telegram.per_chat()
    report = await service.report(campaign.id)
    assert report.campaign.status is CampaignStatus.DRAFT
    assert report.total == 0


# --- platforms pushing back ------------------------------------------------------------------


async def test_a_429_is_honoured_for_retry_after_and_nobody_is_messaged_twice(
    container: bootstrap.Container, telegram: BroadcastTelegramStub
) -> None:
    db = container.db
    recipients = [await add_customer(db, channels=[TELEGRAM]) for _ in range(6)]
    telegram.rate_limit["sendMessage"] = 1
    telegram.retry_after = 1
    campaign = await create_campaign(db, container.clock)
    await send_now(container, campaign.id)
    # One request at a time, so that "after the 429" is every request that follows it.
    settings = BroadcastSettings.from_settings(container.settings)
    async with open_telegram_bulk(container.settings) as sender:
        broadcaster = Broadcaster(
            db,
            {TELEGRAM: sender},
            container.clock,
            dataclasses.replace(settings, concurrency=1),
        )
        await run_until_done(broadcaster, container, campaign.id)

    answers = telegram.answers
    (limited,) = (i for i, a in enumerate(answers) if a.status == 429)
    assert limited < len(answers) - 1, "nothing was sent after the 429"
    assert answers[limited + 1].at - answers[limited].at >= telegram.retry_after
    assert dict(telegram.per_chat()) == {r.chats[TELEGRAM]: 1 for r in recipients}
    assert set((await statuses(db, campaign.id)).values()) == {DeliveryStatus.SENT}


async def test_a_long_retry_after_holds_no_rows_while_every_worker_waits(
    container: bootstrap.Container, telegram: BroadcastTelegramStub
) -> None:
    db = container.db
    recipients = [await add_customer(db, channels=[TELEGRAM]) for _ in range(4)]
    telegram.rate_limit["sendMessage"] = 1
    telegram.retry_after = 3
    campaign = await create_campaign(db, container.clock)
    await send_now(container, campaign.id)
    async with open_broadcaster(container) as broadcaster:
        await broadcaster.run_once()
        rows = await statuses(db, campaign.id)
        assert DeliveryStatus.SENDING not in rows.values()
        assert DeliveryStatus.QUEUED in rows.values()
        async with db.uow() as uow:
            paused = await uow.broadcast.paused_until(TELEGRAM)
        assert paused is not None and paused > container.clock.now() + timedelta(seconds=2)
        # Another worker starting now waits too: the pause is shared.
        async with open_broadcaster(container) as other:
            assert await other.run_once() == 0
        await asyncio.sleep((paused - container.clock.now()).total_seconds())
        await run_until_done(broadcaster, container, campaign.id)
    assert dict(telegram.per_chat()) == {r.chats[TELEGRAM]: 1 for r in recipients}


async def test_a_chat_that_blocked_the_bot_is_marked_and_skipped_by_later_campaigns(
    container: bootstrap.Container, telegram: BroadcastTelegramStub
) -> None:
    db = container.db
    blocker = await add_customer(db, channels=[TELEGRAM])
    telegram.blocked.add(blocker.chats[TELEGRAM])
    first = await create_campaign(db, container.clock)
    await send_now(container, first.id)
    async with open_broadcaster(container) as broadcaster:
        await run_until_done(broadcaster, container, first.id)
    assert await statuses(db, first.id) == {blocker.chats[TELEGRAM]: DeliveryStatus.BLOCKED}
    async with db.uow() as uow:
        assert await uow.reachability.is_unreachable(TELEGRAM, blocker.chats[TELEGRAM])

    calls = len(telegram.answers)
    second = await create_campaign(db, container.clock)
    await send_now(container, second.id)
    async with open_broadcaster(container) as broadcaster:
        await run_until_done(broadcaster, container, second.id)
    assert len(telegram.answers) == calls
    assert await statuses(db, second.id) == {blocker.chats[TELEGRAM]: DeliveryStatus.BLOCKED}


async def test_cancelling_a_campaign_mid_send_stops_it(
    db: Database,
    database_url: str,
    keyring_path: Path,
    telegram: BroadcastTelegramStub,
) -> None:
    values = broadcast_values(
        database_url, keyring_path, telegram_url=telegram.base_url, broadcast_telegram_per_second=30
    )
    container = await bootstrap.build(await asyncio.to_thread(settings_of, values))
    try:
        recipients: list[Recipient] = [
            await add_customer(db, channels=[TELEGRAM]) for _ in range(40)
        ]
        campaign = await create_campaign(db, container.clock)
        await send_now(container, campaign.id)
        telegram.hold_after = 3
        async with open_broadcaster(container) as broadcaster:
            running = asyncio.create_task(broadcaster.run_once())
            await telegram.wait_until(lambda: telegram.held > 0)
            service = CampaignService(db.uow, container.clock)
            await service.cancel(campaign.id, actor="test")
            telegram.open_gate()
            await running
            await broadcaster.run_once()
        sent = sum(telegram.per_chat().values())
        assert 3 <= sent <= 30  # the batch on its way when it was cancelled: 1 s at 30/s
        report = await service.report(campaign.id)
        assert report.campaign.status is CampaignStatus.CANCELLED
        assert report.counts.get(DeliveryStatus.SENT) == sent
        assert report.counts.get(DeliveryStatus.QUEUED) == len(recipients) - sent
    finally:
        await container.close()


async def test_the_workers_campaigns_job_sends_what_is_due(
    container: bootstrap.Container, telegram: BroadcastTelegramStub
) -> None:
    from bot.broadcast import run_campaigns
    from bot.worker import JOBS

    assert run_campaigns in [job.run for job in JOBS]
    recipient = await add_customer(container.db, channels=[TELEGRAM])
    campaign = await create_campaign(container.db, container.clock)
    await send_now(container, campaign.id)
    assert await run_campaigns(container) == 1
    assert telegram.per_chat()[recipient.chats[TELEGRAM]] == 1
    report = await CampaignService(container.db.uow, container.clock).report(campaign.id)
    assert report.campaign.status is CampaignStatus.DONE
