"""The one-tap opt-out button under every promotion, on every channel, in both languages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from factories import CHANNELS, chat_link, customer
from fakes import FakeDatabase
from harness import Chat, assert_in_language, ends_with_menu, joined

from core.domain import ConsentPurpose, ConsentRecord
from core.flows.context import PRIVACY_NOTICE_VERSION
from core.i18n import Translator
from core.services.campaigns import optout_payload
from core.services.conversation import ConversationService

CAMPAIGN = "c0ffee00c0ffee00c0ffee00c0ffee00"
EARLIER = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=CHANNELS)
def channel(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def linked_chat(
    service: ConversationService, db: FakeDatabase, clock: object, lang: str, channel: str
) -> Chat:
    """A chat in ``lang`` on ``channel``, linked to a customer who opted in to promotions."""
    chat = Chat(service, db, clock, channel=channel, chat_id="chat-9")  # type: ignore[arg-type]
    chat.seed(language=lang)
    owner = customer()
    db.state.customers[owner.id] = owner
    db.state.links[(channel, "chat-9")] = chat_link(owner, channel=channel, chat_id="chat-9")
    db.state.consent.append(
        ConsentRecord(owner.id, ConsentPurpose.MARKETING, True, "2026-10-1", "line", EARLIER)
    )
    return chat


def _marketing(db: FakeDatabase) -> list[ConsentRecord]:
    return [r for r in db.state.consent if r.purpose is ConsentPurpose.MARKETING]


async def test_one_tap_withdraws_marketing_consent_with_notice_channel_and_time(
    linked_chat: Chat, db: FakeDatabase, t: Translator, lang: str, channel: str
) -> None:
    replies = await linked_chat.press(optout_payload(CAMPAIGN))

    withdrawal = _marketing(db)[-1]
    assert withdrawal.granted is False
    assert withdrawal.notice_version == PRIVACY_NOTICE_VERSION
    assert withdrawal.channel == channel
    assert withdrawal.recorded_at == linked_chat.clock.now()
    assert_in_language(replies, lang)
    done = t._(
        "Done: you will get no more promotions from us, on any chat. "
        "Messages about your own bills still come. To opt in again any time: /consent."
    )
    assert done in joined(replies)
    assert ends_with_menu(replies)
    assert [e.action for e in db.state.audit] == ["consent.withdrawn"]
    ((_, event, _),) = db.state.published
    assert event.type == "consent.changed"
    assert event.data["granted"] is False and event.data["purpose"] == "marketing"


async def test_a_second_tap_records_nothing_more_and_says_so(
    linked_chat: Chat, db: FakeDatabase, lang: str
) -> None:
    await linked_chat.press(optout_payload(CAMPAIGN))
    replies = await linked_chat.press(optout_payload(CAMPAIGN))
    assert [r.granted for r in _marketing(db)] == [True, False]
    assert len(db.state.published) == 1
    assert_in_language(replies, lang)
    assert "/consent" in joined(replies)


async def test_an_unlinked_chat_is_told_politely_and_nothing_is_recorded(
    chat: Chat, db: FakeDatabase, lang: str
) -> None:
    replies = await chat.press(optout_payload(CAMPAIGN))
    assert db.state.consent == []
    assert_in_language(replies, lang)
    assert ends_with_menu(replies)


async def test_an_old_button_of_a_deleted_campaign_still_opts_out(
    linked_chat: Chat, db: FakeDatabase
) -> None:
    await linked_chat.press("optout:not-a-campaign-id-at-all")
    assert _marketing(db)[-1].granted is False
