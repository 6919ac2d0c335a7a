"""/consent: each purpose given or withdrawn with one tap, both the same effort; an
append-only history with notice version, time and channel; audit and ``consent.changed``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import FakeDatabase, FrozenClock
from harness import Chat, joined
from profile_support import assert_language, audit, button_payloads, events, link_customer

from core.domain import ConsentPurpose
from core.flows.context import PRIVACY_NOTICE_VERSION
from core.i18n import Translator
from core.services.consent import PURPOSES

ON = {p: f"consent:{p.value}:on" for p in PURPOSES}
OFF = {p: f"consent:{p.value}:off" for p in PURPOSES}


@pytest.mark.parametrize("how", ["command", "button", "words"])
async def test_consent_shows_every_purpose_not_given_with_one_button_each(
    chat: Chat, db: FakeDatabase, t: Translator, how: str
) -> None:
    link_customer(db, chat)
    if how == "command":
        replies = await chat.command("consent")
    elif how == "button":
        replies = await chat.press("consent")
    else:
        replies = await chat.say("โปรโมชัน" if t.lang == "th" else "marketing")
    body = joined(replies)
    for purpose in ("Promotions", "Personalised offers", "Sharing with partners"):
        assert t._(purpose) in body
    assert body.count(t._("not given")) == 3
    assert button_payloads(replies) == [*ON.values(), "consent:history", "menu"]
    assert_language(replies, t.lang)


@pytest.mark.parametrize("purpose", PURPOSES)
async def test_giving_and_withdrawing_are_one_tap_each(
    chat: Chat, db: FakeDatabase, t: Translator, clock: FrozenClock, purpose: ConsentPurpose
) -> None:
    owner = link_customer(db, chat)
    given = await chat.press(ON[purpose])
    assert OFF[purpose] in button_payloads(given)  # the same place, the opposite tap
    clock.advance(timedelta(minutes=1))
    withdrawn = await chat.press(OFF[purpose])
    assert ON[purpose] in button_payloads(withdrawn)
    records = [r for r in db.state.consent if r.purpose is purpose]
    assert [r.granted for r in records] == [True, False]
    for record in records:
        assert record.customer_id == owner.id
        assert record.notice_version == PRIVACY_NOTICE_VERSION
        assert record.channel == "terminal"
    assert records[1].recorded_at - records[0].recorded_at == timedelta(minutes=1)
    assert [e.action for e in db.state.audit] == ["consent.granted", "consent.withdrawn"]
    assert audit(db, "consent.granted")[0].details == {
        "purpose": purpose.value,
        "notice_version": PRIVACY_NOTICE_VERSION,
        "channel": "terminal",
    }
    assert [e.data["granted"] for e in events(db, "consent.changed")] == [True, False]
    assert {e.data["purpose"] for e in events(db, "consent.changed")} == {purpose.value}
    assert events(db, "consent.changed")[0].data["account_no"] == owner.account_no
    assert_language(withdrawn, t.lang)


async def test_a_repeated_tap_records_nothing(chat: Chat, db: FakeDatabase, t: Translator) -> None:
    link_customer(db, chat)
    await chat.press(ON[ConsentPurpose.MARKETING])
    replies = await chat.press(ON[ConsentPurpose.MARKETING])  # an old button pressed again
    assert len(db.state.consent) == 1 and len(events(db, "consent.changed")) == 1
    name = t._("Promotions")
    assert t._("No change: {purpose} was already as you chose.").format(purpose=name) in joined(
        replies
    )
    await chat.press(OFF[ConsentPurpose.PARTNER_DISCLOSURE])  # never given: nothing to withdraw
    assert len(db.state.consent) == 1


async def test_history_after_several_toggles_lists_every_record_newest_first(
    chat: Chat, db: FakeDatabase, t: Translator, clock: FrozenClock
) -> None:
    link_customer(db, chat)
    taps = [
        ON[ConsentPurpose.MARKETING],
        ON[ConsentPurpose.PERSONALISATION],
        OFF[ConsentPurpose.MARKETING],
        ON[ConsentPurpose.PARTNER_DISCLOSURE],
        ON[ConsentPurpose.MARKETING],
        OFF[ConsentPurpose.PERSONALISATION],
    ]
    for payload in taps:
        clock.advance(timedelta(hours=1))
        await chat.press(payload)
    assert len(db.state.consent) == 6  # appended, never rewritten
    replies = await chat.command("consent", "history")
    lines = [line for line in joined(replies).splitlines() if line.startswith("•")]
    assert len(lines) == 6
    newest = db.state.consent[-1]
    assert lines[0] == t._("• {time}: {what} (via {channel}, notice version {version})").format(
        time=t.datetime(newest.recorded_at),
        what=t._("withdrew: {purpose}").format(purpose=t._("Personalised offers")),
        channel=t._("terminal"),
        version=PRIVACY_NOTICE_VERSION,
    )
    assert t._("gave: {purpose}").format(purpose=t._("Promotions")) in lines[1]
    assert await chat.press("consent:history") == replies
    state = joined(await chat.command("consent"))
    assert state.count("❌") == 1  # personalisation, withdrawn
    assert_language(replies, t.lang)


async def test_withdrawal_is_seen_by_the_promotions_opt_out_and_back(
    chat: Chat, db: FakeDatabase
) -> None:
    link_customer(db, chat)
    await chat.press(ON[ConsentPurpose.MARKETING])
    await chat.press("optout:" + "a" * 32)  # the button under a promotion
    replies = await chat.command("consent")
    assert ON[ConsentPurpose.MARKETING] in button_payloads(replies)


@pytest.mark.parametrize(
    "payload",
    ["consent:privacy_notice:off", "consent:marketing:maybe", "consent:nope:on", "consent:x" * 40],
)
async def test_forged_consent_buttons_change_nothing(
    chat: Chat, db: FakeDatabase, payload: str
) -> None:
    link_customer(db, chat)
    replies = await chat.press(payload)
    assert db.state.consent == [] and db.state.published == []
    assert "consent:history" in button_payloads(replies)


async def test_an_unlinked_chat_is_asked_to_link(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    replies = await chat.press(ON[ConsentPurpose.MARKETING])
    assert db.state.consent == []
    assert "link" in button_payloads(replies)
    assert t._("Please link this chat to your e-service account first.") in joined(replies)


async def test_consent_buttons_fit_line_labels(chat: Chat, db: FakeDatabase) -> None:
    link_customer(db, chat)
    replies = await chat.command("consent")
    labels = [b.label for r in replies for row in getattr(r, "buttons", ()) for b in row]
    assert all(len(label) <= 20 for label in labels), labels
