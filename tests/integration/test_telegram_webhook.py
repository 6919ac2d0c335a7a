"""Telegram through the real webhook route, python-telegram-bot and a stub Bot API.

Updates go in as Telegram posts them; what comes out is what PTB really sent to the
stub. Both databases.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.delivery import OutboxDelivery
from bot.web.webhooks import WEBHOOKS
from core.chat import (
    Button,
    ButtonPress,
    DeleteUserMessage,
    FileReply,
    ImageReply,
    LinkButton,
    SharedContact,
    TextReply,
    UnsupportedMessage,
)
from storage import tables as t
from tests.integration.channels_support import (
    FrozenClock,
    RunningApp,
    running_app,
    telegram_stub,
)
from tests.stubs import telegram as updates
from tests.stubs.telegram import TelegramStub

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub


@pytest.fixture
async def app(database_url: str, keyring_path: Path, tg: TelegramStub) -> AsyncIterator[RunningApp]:
    async with running_app(database_url, keyring_path, telegram=tg) as running:
        yield running


def messenger(app: RunningApp):  # type: ignore[no-untyped-def]
    found = app.app[WEBHOOKS].running.outbound.telegram
    assert found is not None
    return found


MENU_PAYLOADS = ["bill", "pay", "profile", "consent", "lang", "help", "privacy"]


async def test_start_is_answered_with_the_privacy_notice_then_the_menu(
    app: RunningApp, tg: TelegramStub
) -> None:
    response = await app.telegram(updates.text(7001, "/start"))
    assert response.status == 200
    await app.idle()
    notice, greeting = tg.sent("7001")
    assert "/privacy" in notice.text and "สวัสดี" in greeting.text
    assert notice.params.get("reply_markup") is None
    assert [data for _, data in greeting.buttons()] == MENU_PAYLOADS
    assert len(greeting.params["reply_markup"]["inline_keyboard"]) == 4  # rows kept


async def test_a_button_press_runs_its_flow_and_the_callback_query_is_answered(
    app: RunningApp, tg: TelegramStub
) -> None:
    await app.telegram(updates.text(7002, "/start"))
    await app.idle()
    press = updates.callback(7002, "lang:en")
    assert (await app.telegram(press)).status == 200
    await app.idle()
    [answered] = tg.calls_to("answerCallbackQuery")
    assert answered.params["callback_query_id"] == press["callback_query"]["id"]
    last = tg.sent("7002")[-1]
    assert "English" in last.text or "language" in last.text.lower()


async def test_a_deep_link_start_payload_runs_that_command(
    app: RunningApp, tg: TelegramStub
) -> None:
    await app.telegram(updates.text(7003, "/start lang-en"))
    await app.idle()
    texts = [c.text for c in tg.sent("7003")]
    assert any("English" in text for text in texts)


@pytest.mark.parametrize(
    "text",
    ["สวัสดีค่ะ 🙏😀", "'; DROP TABLE conversations; --", "ดูบิล", "x" * 4000, "   "],
)
async def test_any_text_gets_a_reply_and_nothing_typed_is_stored_in_clear(
    app: RunningApp, tg: TelegramStub, text: str
) -> None:
    await app.telegram(updates.text(7004, text))
    await app.idle()
    assert tg.sent("7004"), "the bot stayed silent"
    async with app.container.db.engine.connect() as conn:
        states = (await conn.execute(select(t.conversations.c.state_enc))).scalars().all()
        payloads = (await conn.execute(select(t.outbox.c.payload_enc))).scalars().all()
    if text.strip():
        for blob in [*states, *payloads]:
            assert text.encode() not in blob


async def test_a_photo_gets_the_friendly_unsupported_reply(
    app: RunningApp, tg: TelegramStub
) -> None:
    await app.telegram(updates.photo(7005))
    await app.idle()
    sent = tg.sent("7005")
    assert sent and any(data == "help" for _, data in sent[-1].buttons())


def test_a_contact_counts_as_own_only_when_it_is_the_senders() -> None:
    now = datetime.now(UTC)
    from bot.channels.telegram import parse_update

    own = parse_update(updates.contact(7006, "0812345678", owner_id=7006), now)
    other = parse_update(updates.contact(7006, "0899999999", owner_id=4242), now)
    card = parse_update(updates.contact(7006, "0899999999", owner_id=None), now)
    assert own is not None and own.incoming is not None
    assert own.incoming.event == SharedContact("0812345678", is_own=True)
    assert other is not None and other.incoming is not None
    assert other.incoming.event == SharedContact("0899999999", is_own=False)
    assert card is not None and card.incoming is not None
    assert card.incoming.event == SharedContact("0899999999", is_own=False)


def test_updates_map_to_neutral_events() -> None:
    from bot.channels.telegram import parse_update

    now = datetime.now(UTC)
    text = parse_update(updates.text(1, "/start@selfcare_bot link-abc", update_id=77), now)
    assert text is not None and text.incoming is not None
    assert (text.incoming.event_id, text.incoming.chat_id) == ("77", "1")
    assert text.incoming.event.name == "start"  # type: ignore[union-attr]
    assert text.incoming.message_ref is not None
    press = parse_update(updates.callback(2, "bill"), now)
    assert press is not None and press.incoming is not None
    assert press.incoming.event == ButtonPress("bill") and press.callback_query_id
    sticker = parse_update(updates.photo(3), now)
    assert sticker is not None and sticker.incoming is not None
    assert sticker.incoming.event == UnsupportedMessage("photo")


async def test_replies_render_as_telegram_messages(app: RunningApp, tg: TelegramStub) -> None:
    bot = messenger(app)
    chat = "7010"
    await bot.send(
        chat,
        TextReply(
            "ยอดชำระ ฿640.93",
            buttons=((Button("💳 จ่าย", "pay:T0001"), LinkButton("เปิดหน้าเว็บ", "https://x.test/p")),),
        ),
    )
    await bot.send(chat, TextReply("ขอเบอร์โทรค่ะ", request_contact="📱 แชร์เบอร์"))
    await bot.send(chat, ImageReply(png=PNG, caption="QR พร้อมเพย์", filename="qr.png"))
    await bot.send(
        chat, FileReply("ข้อมูลของฉัน.json", b'{"a": 1}', "application/json", caption="สำเนา")
    )
    await bot.send(chat, DeleteUserMessage(message_ref="321"))
    await bot.send(chat, DeleteUserMessage(message_ref="not-a-number"))  # ignored

    text, contact, photo, document = tg.sent(chat)
    assert text.buttons() == [("💳 จ่าย", "pay:T0001"), ("เปิดหน้าเว็บ", "https://x.test/p")]
    keyboard = contact.params["reply_markup"]["keyboard"]
    assert keyboard == [[{"text": "📱 แชร์เบอร์", "request_contact": True}]]
    assert contact.params["reply_markup"]["one_time_keyboard"] is True
    assert photo.method == "sendPhoto" and photo.files["photo"] == PNG
    assert photo.params["caption"] == "QR พร้อมเพย์"
    assert document.method == "sendDocument" and document.files["document"] == b'{"a": 1}'
    [deleted] = tg.calls_to("deleteMessage")
    assert deleted.params["message_id"] == 321


async def test_buttons_and_a_contact_request_go_in_two_messages(
    app: RunningApp, tg: TelegramStub
) -> None:
    await messenger(app).send(
        "7011", TextReply("เลือกค่ะ", buttons=((Button("ยกเลิก", "cancel"),),), request_contact="📱")
    )
    first, second = tg.sent("7011")
    assert first.buttons() == [("ยกเลิก", "cancel")]
    assert second.params["reply_markup"]["keyboard"][0][0]["request_contact"] is True


async def test_a_text_over_4096_characters_is_split(app: RunningApp, tg: TelegramStub) -> None:
    long = "\n\n".join(f"ย่อหน้า {n} " + "ก" * 900 for n in range(7))
    await messenger(app).send("7012", TextReply(long, buttons=((Button("เมนู", "menu"),),)))
    parts = tg.sent("7012")
    assert len(parts) == 2
    assert all(len(p.text) <= 4096 for p in parts)
    assert "".join(p.text for p in parts).replace("\n", "") == long.replace("\n", "")
    assert parts[0].params.get("reply_markup") is None and parts[1].buttons()


async def test_a_payload_over_64_bytes_travels_as_a_digest_and_comes_back(
    app: RunningApp, tg: TelegramStub
) -> None:
    payload = "lang:" + "ภาษา" * 20  # 245 bytes of UTF-8
    await messenger(app).send("7013", TextReply("เลือก", buttons=((Button("ไป", payload),),)))
    [(_, data)] = tg.sent("7013")[0].buttons()
    assert data.startswith("~") and len(data.encode()) <= 64 and "ภาษา" not in data

    from bot.channels.telegram import parse_update, resolve_button

    update = parse_update(updates.callback(7013, data), datetime.now(UTC))
    assert update is not None
    resolved = await resolve_button(app.container.db, update)
    assert resolved.incoming is not None and resolved.incoming.event == ButtonPress(payload)
    forged = parse_update(updates.callback(7013, "~" + "A" * 43), datetime.now(UTC))
    assert forged is not None
    unknown = await resolve_button(app.container.db, forged)
    assert unknown.incoming is not None and unknown.incoming.event == ButtonPress("")


# --- blocked chats, 429 ---------------------------------------------------------------------


async def test_a_chat_that_blocked_the_bot_is_marked_unreachable_and_skipped(
    app: RunningApp, tg: TelegramStub
) -> None:
    tg.blocked.add("7020")
    await app.telegram(updates.text(7020, "/start"))
    await app.idle()
    assert len(tg.sent("7020")) == 1  # the 403; nothing after it was tried
    async with app.container.db.uow() as uow:
        assert await uow.reachability.is_unreachable("telegram", "7020")
        await uow.outbox.enqueue_replies(
            "telegram", "7020", [TextReply("โปรโมชัน")], app.container.clock.now()
        )
        await uow.commit()
    delivery: OutboxDelivery = app.app[WEBHOOKS].running.outbound.delivery
    assert await delivery.relay_due() == 0
    assert len(tg.sent("7020")) == 1
    async with app.container.db.engine.connect() as conn:
        statuses = (await conn.execute(select(t.outbox.c.status))).scalars().all()
    assert set(statuses) == {"dead"}
    assert app.metric("selfcare_send_errors_total", channel="telegram") == 1

    # The user unblocks the bot and writes again: reachable, answered.
    tg.blocked.clear()
    await app.telegram(updates.text(7020, "/menu"))
    await app.idle()
    async with app.container.db.uow() as uow:
        assert not await uow.reachability.is_unreachable("telegram", "7020")
    assert len(tg.sent("7020")) == 2


async def test_blocking_and_unblocking_the_bot_is_tracked_from_membership_updates(
    app: RunningApp, tg: TelegramStub
) -> None:
    assert (await app.telegram(updates.membership(7021, "kicked"))).status == 200
    async with app.container.db.uow() as uow:
        assert await uow.reachability.is_unreachable("telegram", "7021")
    assert (await app.telegram(updates.membership(7021, "member"))).status == 200
    async with app.container.db.uow() as uow:
        assert not await uow.reachability.is_unreachable("telegram", "7021")
    assert await app.count("inbox") == 0
    assert tg.calls == []


async def test_a_429_is_retried_after_retry_after_and_counted(
    app: RunningApp, tg: TelegramStub
) -> None:
    tg.rate_limit["sendMessage"] = 1
    tg.retry_after = 3
    await app.telegram(updates.text(7022, "/help"))
    await app.idle()
    assert tg.sent("7022")[0].params  # the refused attempt reached the stub
    assert app.metric("selfcare_rate_limited_total", channel="telegram") == 1
    async with app.container.db.engine.connect() as conn:
        row, behind = (await conn.execute(select(t.outbox).order_by(t.outbox.c.id))).all()
    assert row.status == "pending" and row.attempts == 1
    assert row.available_at - row.created_at >= timedelta(seconds=3)
    assert (behind.status, behind.attempts) == ("pending", 0)  # waits behind it, in order

    # Not before retry_after…
    outbound = app.app[WEBHOOKS].running.outbound
    clock = FrozenClock(row.available_at - timedelta(seconds=1))
    messengers = {"telegram": messenger(app)}
    early = OutboxDelivery(app.container.db, messengers, clock)
    assert await early.relay_due() == 0
    # …and then it goes.
    clock.set(row.available_at)
    assert await OutboxDelivery(app.container.db, messengers, clock).relay_due() == 2
    assert len(tg.sent("7022")) == 3
    assert outbound.telegram is not None
