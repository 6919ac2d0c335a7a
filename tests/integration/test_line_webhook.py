"""LINE through the real webhook route, line-bot-sdk's async client and a stub Messaging
API: signed events in, replies (reply token first, push after) out. Both databases."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels.line import LineMessenger, parse_event
from bot.delivery import ReplyToken
from bot.web.media import MediaSigner
from bot.web.webhooks import WEBHOOKS
from core.chat import (
    AccountLinkResult,
    Button,
    ButtonPress,
    CommandMessage,
    DeleteUserMessage,
    FileReply,
    ImageReply,
    LinkButton,
    TextReply,
    UnsupportedMessage,
)
from storage import tables as t
from tests.integration.channels_support import (
    PUBLIC_URL,
    FrozenClock,
    RunningApp,
    line_api_stub,
    running_app,
)
from tests.stubs import line as events
from tests.stubs.line import ACCESS_TOKEN, LineStub

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
MENU_PAYLOADS = ["bill", "pay", "profile", "consent", "lang", "help", "privacy"]


@pytest.fixture
async def ln() -> AsyncIterator[LineStub]:
    async with line_api_stub() as stub:
        yield stub


@pytest.fixture
async def app(database_url: str, keyring_path: Path, ln: LineStub) -> AsyncIterator[RunningApp]:
    async with running_app(database_url, keyring_path, line=ln) as running:
        yield running


def messenger(app: RunningApp) -> LineMessenger:
    found = app.app[WEBHOOKS].running.outbound.line
    assert found is not None
    return found


def quick_replies(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (item["action"]["label"], item["action"].get("data") or item["action"].get("uri"))
        for item in message.get("quickReply", {}).get("items", [])
    ]


async def test_following_the_bot_greets_with_the_privacy_notice_by_reply_token(
    app: RunningApp, ln: LineStub
) -> None:
    follow = events.follow("U100")
    assert (await app.line(follow)).status == 200
    await app.idle()
    [call] = ln.delivered()
    assert call.kind == "reply" and call.body["replyToken"] == follow["replyToken"]
    assert call.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    notice, greeting = call.messages
    assert "/privacy" in notice["text"]
    assert [data for _, data in quick_replies(greeting)] == MENU_PAYLOADS
    assert all(len(label) <= 20 for label, _ in quick_replies(greeting))


async def test_a_postback_runs_the_flow_named_by_its_data(app: RunningApp, ln: LineStub) -> None:
    await app.line(events.text("U101", "/start"))
    await app.idle()
    await app.line(events.postback("U101", "lang:en"))
    await app.idle()
    last = ln.delivered()[-1].messages[-1]
    assert "English" in last["text"] or "language" in last["text"].lower()


async def test_several_events_in_one_request_are_handled_and_answered_in_order(
    app: RunningApp, ln: LineStub
) -> None:
    first = events.text("U102", "/start")
    second = events.text("U102", "/lang en")
    third = events.text("U102", "/help")
    assert (await app.line(first, second, third)).status == 200
    await app.idle()
    assert await app.count("inbox") == 3
    texts = [m["text"] for m in ln.messages_to("U102", _tokens(first, second, third))]
    assert texts[0].startswith("ก่อนเริ่ม") or "/privacy" in texts[0]
    assert "/help" in texts[-1] or "help" in texts[-1].lower()
    async with app.container.db.engine.connect() as conn:
        statuses = (await conn.execute(select(t.outbox.c.status))).scalars().all()
    assert set(statuses) == {"sent"}
    assert len(texts) == len(statuses)


def _tokens(*sent: dict[str, Any]) -> dict[str, str]:
    return {e["replyToken"]: e["source"]["userId"] for e in sent if "replyToken" in e}


async def test_an_expired_reply_token_falls_back_to_push_with_a_retry_key(
    app: RunningApp, ln: LineStub
) -> None:
    event = events.text("U103", "/help")
    ln.expired_tokens.add(event["replyToken"])
    await app.line(event)
    await app.idle()
    refused, pushed = ln.calls
    assert (refused.kind, refused.status) == ("reply", 400)
    assert (pushed.kind, pushed.status) == ("push", 200)
    assert pushed.body["to"] == "U103"
    assert pushed.retry_key is not None and len(pushed.retry_key) == 36


async def test_a_push_repeated_with_the_same_retry_key_is_not_delivered_twice(
    app: RunningApp, ln: LineStub
) -> None:
    bot = messenger(app)
    key = "0f8f3c1e-2b7a-4d7e-9a51-3c5b1e2d4f60"
    await bot.send_batch("U104", [TextReply("สวัสดีค่ะ")], reply_token=None, retry_key=key)
    # We never saw LINE's answer and try again: LINE says 409, which is a success.
    await bot.send_batch("U104", [TextReply("สวัสดีค่ะ")], reply_token=None, retry_key=key)
    assert [c.status for c in ln.calls] == [200, 409]
    assert len(ln.delivered()) == 1


async def test_a_redelivered_event_is_pushed_because_its_reply_token_is_stale(
    database_url: str, keyring_path: Path, ln: LineStub
) -> None:
    async with running_app(database_url, keyring_path, line=ln) as app:
        event = events.text("U105", "/menu", redelivery=True)
        await app.line(event)
        await app.idle()
        assert [c.kind for c in ln.delivered()] == ["push"]


async def test_unfollow_marks_the_chat_unreachable_and_later_messages_are_dropped(
    app: RunningApp, ln: LineStub
) -> None:
    await app.line(events.follow("U106"))
    await app.idle()
    assert (await app.line(events.unfollow("U106"))).status == 200
    async with app.container.db.uow() as uow:
        assert await uow.reachability.is_unreachable("line", "U106")
        await uow.outbox.enqueue_replies(
            "line", "U106", [TextReply("โปรโมชันพิเศษ")], app.container.clock.now()
        )
        await uow.commit()
    assert await app.app[WEBHOOKS].running.outbound.delivery.relay_due() == 0
    assert len(ln.delivered()) == 1  # only the greeting of the first follow

    # Following again makes the chat reachable (and greets again).
    await app.line(events.follow("U106"))
    await app.idle()
    async with app.container.db.uow() as uow:
        assert not await uow.reachability.is_unreachable("line", "U106")
    assert len(ln.delivered()) == 2


async def test_a_sticker_gets_the_friendly_unsupported_reply(app: RunningApp, ln: LineStub) -> None:
    await app.line(events.sticker("U107"))
    await app.idle()
    [call] = ln.delivered()
    assert quick_replies(call.messages[-1])


def test_events_map_to_neutral_events() -> None:
    now = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    text = parse_event(events.text("U1", "/start link-abc", reply_token="tok"), now)
    assert text is not None and text.incoming is not None
    assert text.incoming.event == CommandMessage("start", "link-abc")
    assert text.reply_token == ReplyToken("tok", now + timedelta(seconds=25))
    assert text.user_chat
    press = parse_event(events.postback("U1", "bill:T1"), now)
    assert press is not None and press.incoming is not None
    assert press.incoming.event == ButtonPress("bill:T1")
    linked = parse_event(events.account_link("U1", "n0nce", ok=True), now)
    failed = parse_event(events.account_link("U1", "n0nce", ok=False), now)
    assert linked is not None and linked.incoming is not None
    assert linked.incoming.event == AccountLinkResult("n0nce", ok=True)
    assert failed is not None and failed.incoming is not None
    assert failed.incoming.event == AccountLinkResult("n0nce", ok=False)
    sticker = parse_event(events.sticker("U1"), now)
    assert sticker is not None and sticker.incoming is not None
    assert sticker.incoming.event == UnsupportedMessage("sticker")
    followed = parse_event(events.follow("U1"), now)
    assert followed is not None and followed.membership == "unblocked"
    left = parse_event(events.unfollow("U1"), now)
    assert left is not None and left.membership == "blocked" and left.incoming is None
    group = events.text("U1", "hi")
    group["source"] = {"type": "group", "groupId": "C77", "userId": "U1"}
    in_group = parse_event(group, now)
    assert in_group is not None and in_group.incoming is not None
    assert (in_group.chat_id, in_group.user_chat) == ("C77", False)
    assert in_group.incoming.event_id == group["webhookEventId"]


async def test_an_account_link_event_reaches_the_conversation_service(
    app: RunningApp, ln: LineStub
) -> None:
    assert (await app.line(events.account_link("U108", "n0nce-1"))).status == 200
    await app.idle()
    assert await app.count("inbox") == 1
    assert ln.delivered(), "the bot stayed silent"


# --- rendering -------------------------------------------------------------------------------


async def test_an_image_is_sent_as_a_signed_url_the_app_serves(
    app: RunningApp, ln: LineStub
) -> None:
    await messenger(app).send("U110", ImageReply(png=PNG, caption="QR พร้อมเพย์"))
    [call] = ln.delivered()
    image, caption = call.messages
    url = image["originalContentUrl"]
    assert url.startswith(PUBLIC_URL + "/media/") and image["previewImageUrl"] == url
    assert caption == {"type": "text", "text": "QR พร้อมเพย์"}
    path = url.removeprefix(PUBLIC_URL)
    async with app.session.get(app.url + path) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert await response.read() == PNG
    async with app.container.db.engine.connect() as conn:
        stored = (await conn.execute(select(t.metadata.tables["media_objects"]))).one()
    assert PNG not in stored.content_enc


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature
        lambda token: "f" * 32 + token[32:],  # another id
        lambda token: token.replace(".", ".9", 1),  # a later expiry
        lambda token: "../../etc/passwd",
        lambda token: token + "' OR 1=1",
    ],
)
async def test_a_forged_media_token_is_not_found(
    app: RunningApp, ln: LineStub, mangle: Any
) -> None:
    await messenger(app).send("U111", ImageReply(png=PNG))
    token = ln.delivered()[0].messages[0]["originalContentUrl"].rsplit("/", 1)[1]
    async with app.session.get(f"{app.url}/media/{mangle(token)}") as response:
        assert response.status == 404


async def test_an_expired_media_url_is_gone(app: RunningApp, ln: LineStub) -> None:
    await messenger(app).send("U112", ImageReply(png=PNG))
    token = ln.delivered()[0].messages[0]["originalContentUrl"].rsplit("/", 1)[1]
    signer = MediaSigner.from_keyring(app.container.keyring)
    later = app.container.clock.now() + timedelta(seconds=app.container.settings.media_url_ttl)
    with pytest.raises(Exception, match="expired"):
        signer.verify(token, later)
    expired = signer.sign(token.split(".")[0], datetime.now(UTC) - timedelta(seconds=1))
    async with app.session.get(f"{app.url}/media/{expired}") as response:
        assert response.status == 410


async def test_a_file_is_offered_as_a_download_link_in_a_bubble(
    app: RunningApp, ln: LineStub
) -> None:
    export = FileReply("ข้อมูลของฉัน.json", '{"ชื่อ": "ทดสอบ"}'.encode(), "application/json")
    await messenger(app).send("U113", export)
    [bubble] = ln.delivered()[0].messages
    assert bubble["type"] == "flex"
    [button] = bubble["contents"]["footer"]["contents"]
    url = button["action"]["uri"]
    async with app.session.get(app.url + url.removeprefix(PUBLIC_URL)) as response:
        assert response.status == 200
        assert "attachment" in response.headers["Content-Disposition"]
        assert await response.read() == export.content


async def test_links_and_long_menus_become_a_flex_bubble_and_deletion_is_skipped(
    app: RunningApp, ln: LineStub
) -> None:
    bot = messenger(app)
    link = TextReply(
        "เปิดลิงก์เพื่อเชื่อมบัญชีค่ะ",
        buttons=((LinkButton("🔗 เชื่อมบัญชี", "https://x.test/link/abc"),),),
    )
    many = TextReply(
        "เลือกเดือน", buttons=tuple((Button(f"เดือน {n}", f"bill:{n}"),) for n in range(14))
    )
    await bot.send_batch(
        "U114", [link, many, DeleteUserMessage("9")], reply_token=None, retry_key=_key()
    )
    [call] = ln.delivered()
    first, second = call.messages
    assert first["type"] == "flex" and first["altText"] == link.text
    assert first["contents"]["footer"]["contents"][0]["action"] == {
        "type": "uri",
        "label": "🔗 เชื่อมบัญชี",
        "uri": "https://x.test/link/abc",
    }
    assert second["type"] == "flex"
    assert len(second["contents"]["footer"]["contents"]) == 14


async def test_long_labels_are_cut_and_long_payloads_travel_as_a_digest(
    app: RunningApp, ln: LineStub
) -> None:
    payload = "consent:" + "x" * 400
    reply = TextReply("ตกลงไหมคะ", buttons=((Button("ยินยอมรับข่าวสารและโปรโมชันทั้งหมด", payload),),))
    await messenger(app).send("U115", reply)
    [(label, data)] = quick_replies(ln.delivered()[0].messages[0])
    assert len(label) == 20 and label.endswith("…")
    assert data.startswith("~") and len(data) <= 300
    await app.line(events.postback("U115", data))
    await app.idle()
    assert await app.count("inbox") == 1


async def test_more_than_five_messages_are_sent_in_several_calls_in_order(
    app: RunningApp, ln: LineStub
) -> None:
    replies = [TextReply(f"ข้อความ {n}") for n in range(7)]
    await messenger(app).send_batch("U116", replies, reply_token=None, retry_key=_key())
    calls = ln.delivered()
    assert [len(c.messages) for c in calls] == [5, 2]
    assert [m["text"] for c in calls for m in c.messages] == [r.text for r in replies]
    assert calls[0].retry_key != calls[1].retry_key


async def test_the_loading_animation_is_requested_for_a_user_chat(
    app: RunningApp, ln: LineStub
) -> None:
    await messenger(app).show_loading("U117")
    [call] = ln.calls
    assert call.kind == "loading" and call.body == {"chatId": "U117", "loadingSeconds": 20}


async def test_a_rate_limited_push_is_retried_later_and_counted(
    app: RunningApp, ln: LineStub
) -> None:
    ln.rate_limited = 1
    await app.line(events.text("U118", "/menu"))
    await app.idle()
    assert app.metric("selfcare_rate_limited_total", channel="line") == 1
    async with app.container.db.engine.connect() as conn:
        rows = (await conn.execute(select(t.outbox).order_by(t.outbox.c.id))).all()
    assert {r.status for r in rows} == {"pending"}
    clock = FrozenClock(max(r.available_at for r in rows))
    from bot.delivery import OutboxDelivery

    relay = OutboxDelivery(app.container.db, {"line": messenger(app)}, clock)
    assert await relay.relay_due() == len(rows)
    # The reply token was spent on the refused call: the retry is a push.
    assert [(c.kind, c.status) for c in ln.calls] == [("reply", 429), ("push", 200)]
    assert len(ln.calls[1].messages) == len(rows)


def _key() -> str:
    import uuid

    return str(uuid.uuid4())
