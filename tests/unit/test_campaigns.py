"""Campaigns in the core: what a marketer may write, what a recipient reads, and who is
sent what at send time (consent, the daily cap, links, blocked chats)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from core.domain import (
    Campaign,
    CampaignStatus,
    DeliveryCandidate,
    DeliveryStatus,
    StaffMember,
    StaffRole,
)
from core.errors import InvalidInput
from core.services.audit import AuditAction, check_ticket, record
from core.services.campaigns import (
    MAX_TEXT,
    MAX_TEXT_WITH_IMAGE,
    CampaignDraft,
    render_promotion,
    triage,
)

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
DRAFT = {
    "title": "โปรธันวา",
    "text_th": "ลด 50% 🎉",
    "text_en": "50% off 🎉",
    "link_url": "https://example.co.th/p",
    "link_label_th": "ดูโปร",
    "link_label_en": "See offer",
}


def campaign(**fields: Any) -> Campaign:
    draft = CampaignDraft.from_mapping({**DRAFT, **fields})
    return Campaign(
        id="a" * 32,
        title=draft.title,
        text_th=draft.text_th,
        text_en=draft.text_en,
        status=CampaignStatus.SENDING,
        created_by="staff:mali",
        created_at=T0,
        image_url=draft.image_url,
        link_url=draft.link_url,
        link_label_th=draft.link_label_th,
        link_label_en=draft.link_label_en,
    )


# --- writing ---------------------------------------------------------------------------------


def test_a_draft_keeps_thai_emoji_and_line_breaks() -> None:
    draft = CampaignDraft.from_mapping({**DRAFT, "text_th": "  บรรทัด 1\r\nบรรทัด 2 🇹🇭  "})
    assert draft.text_th == "บรรทัด 1\nบรรทัด 2 🇹🇭"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"text_th": None}, "text_th"),
        ({"text_en": 12}, "text_en"),
        ({"text_en": "x" * (MAX_TEXT + 1)}, "text_en"),
        (
            {"image_url": "https://e.co/i.png", "text_th": "x" * (MAX_TEXT_WITH_IMAGE + 1)},
            "text_th",
        ),
        ({"image_url": "http://e.co/i.png"}, "image_url"),
        ({"link_url": "javascript:alert(1)"}, "link_url"),
        ({"link_url": "https://e.co/ a"}, "link_url"),
        ({"link_label_en": ""}, "link_label_en"),
        ({"link_label_th": "ป" * 21}, "link_label_th"),
        ({"link_url": None}, "link_url"),
        ({"text_th": "bell\x07"}, "text_th"),
    ],
)
def test_a_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        CampaignDraft.from_mapping({**DRAFT, **change})
    assert refused.value.field == field


def test_a_campaign_without_link_or_image_is_fine() -> None:
    draft = CampaignDraft.from_mapping(
        {"title": "t", "text_th": "ก", "text_en": "a", "link_label_th": "", "image_url": " "}
    )
    assert draft.link_url is None and draft.image_url is None and draft.link_label_th is None


# --- reading ---------------------------------------------------------------------------------


def test_each_language_reads_its_own_text_link_label_and_opt_out_button() -> None:
    thai, english = render_promotion(campaign(), "th"), render_promotion(campaign(), "en")
    assert thai.text.startswith("ลด 50% 🎉\n\n") and english.text.startswith("50% off 🎉\n\n")
    assert (thai.link_label, english.link_label) == ("ดูโปร", "See offer")
    assert thai.optout_label == "🚫 ไม่รับโปรโมชันอีก"
    assert english.optout_label == "🚫 Stop promotions"
    assert thai.optout_payload == english.optout_payload == "optout:" + "a" * 32
    assert "One tap below stops them." in english.text


def test_an_unknown_language_reads_thai() -> None:
    assert render_promotion(campaign(), "fr").language == "th"


# --- deciding at send time -------------------------------------------------------------------

_ids = iter(range(1, 10_000))


def row(**fields: Any) -> DeliveryCandidate:
    values: dict[str, Any] = {
        "id": next(_ids),
        "campaign_id": "c1",
        "customer_id": "cust",
        "channel": "telegram",
        "chat_id": "1",
        "language": "th",
        "preview": False,
        "attempt": 0,
        "consent_granted": True,
        "promotions_today": 0,
        "linked": True,
        "reachable": True,
    }
    values.update(fields)
    return DeliveryCandidate(**values)


def test_consent_withdrawn_capped_unlinked_and_blocked_are_not_sent() -> None:
    ok = row()
    withdrawn = row(customer_id="w", consent_granted=False)
    capped = row(customer_id="c", promotions_today=1)
    unlinked = row(customer_id="u", linked=False)
    blocked = row(customer_id="b", reachable=False)
    decisions = triage([ok, withdrawn, capped, unlinked, blocked], per_day_cap=1)
    assert decisions == {
        ok.id: None,
        withdrawn.id: DeliveryStatus.SKIPPED_NO_CONSENT,
        capped.id: DeliveryStatus.SKIPPED_CAPPED,
        unlinked.id: DeliveryStatus.SKIPPED_UNLINKED,
        blocked.id: DeliveryStatus.BLOCKED,
    }


def test_one_campaign_on_two_chats_is_one_promotion_but_two_campaigns_are_two() -> None:
    telegram, line = row(campaign_id="c1"), row(campaign_id="c1", channel="line")
    other = row(campaign_id="c2")
    decisions = triage([telegram, line, other], per_day_cap=1)
    assert decisions[telegram.id] is None and decisions[line.id] is None
    assert decisions[other.id] is DeliveryStatus.SKIPPED_CAPPED
    assert triage([telegram, line, other], per_day_cap=2)[other.id] is None


def test_a_preview_is_always_sent() -> None:
    preview = row(preview=True, customer_id=None, linked=False, consent_granted=False)
    assert triage([preview], per_day_cap=1) == {preview.id: None}


# --- the audit trail -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "details",
    [
        {"reason": "call from 081-234-5678"},
        {"note": "somchai@example.com"},
        {"fields": ["name", "1101700203451"]},
        {"nested": {"phone": "+66812345678"}},
        {"blob": b"bytes"},
        {"long": "x" * 300},
    ],
)
async def test_audit_details_that_look_personal_are_refused(details: dict[str, Any]) -> None:
    class NoUow:
        audit = None

    with pytest.raises(ValueError, match="audit detail"):
        await record(
            NoUow(),  # type: ignore[arg-type]
            actor="staff:x",
            action=AuditAction.CUSTOMER_VIEW,
            subject="s",
            at=T0,
            details=details,
        )


@pytest.mark.parametrize("ticket", ["CASE-2026-0042", "INC#42", "jira:OPS-7"])
def test_ticket_references_are_kept(ticket: str) -> None:
    assert check_ticket(ticket) == ticket


@pytest.mark.parametrize("ticket", ["081 234 5678", "0812345678", "a" * 41, "คดี-1", "x;drop"])
def test_a_ticket_that_could_hold_personal_data_is_refused(ticket: str) -> None:
    with pytest.raises(InvalidInput):
        check_ticket(ticket)


def test_a_staff_member_is_named_by_handle_in_the_audit_log() -> None:
    member = StaffMember("id", "mali", frozenset({StaffRole.MARKETER}), True, T0)
    assert member.actor == "staff:mali"
