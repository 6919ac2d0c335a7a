"""Promotion campaigns: create, preview, schedule or send now, cancel, watch.

A campaign goes draft → scheduled → sending → done (or cancelled from any but done).
Sending is the worker's (``bot/broadcast.py``): when the time comes it builds one row per
recipient chat (customers whose marketing consent is granted, on every channel they
linked), and right before each send it checks again, through :func:`triage`, that the
consent still stands, the chat is still linked and reachable, and the customer has not
had their promotions for the day. Every promotion carries a one-tap opt-out button
(``optout:<campaign id>``, handled by ``core/flows/promotions.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from core.domain import (
    Campaign,
    CampaignStatus,
    DeliveryCandidate,
    DeliveryStatus,
    PromotionMessage,
    StaffMember,
    new_id,
)
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import translator
from core.ports import Clock, UnitOfWorkFactory
from core.services.audit import AuditAction, record

__all__ = [
    "MAX_TEXT",
    "MAX_TEXT_WITH_IMAGE",
    "OPTOUT_ROUTE",
    "CampaignDraft",
    "CampaignReport",
    "CampaignService",
    "optout_payload",
    "render_promotion",
    "triage",
]

#: The route of the opt-out button (``core/flows/registry.py``).
OPTOUT_ROUTE = "optout"
#: Longest promotion text: Telegram allows 4096 characters, a photo caption 1024; the
#: opt-out note is added below the text.
MAX_TEXT = 3500
MAX_TEXT_WITH_IMAGE = 850
MAX_TITLE = 100
MAX_LINK_LABEL = 20  # LINE's button label limit
MAX_URL = 1000
_CAMPAIGN_ID = re.compile(r"[0-9a-f]{32}")

_CANCELLABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING)


def optout_payload(campaign_id: str) -> str:
    return f"{OPTOUT_ROUTE}:{campaign_id}"


def is_campaign_id(value: str) -> bool:
    return bool(_CAMPAIGN_ID.fullmatch(value))


def _text(name: str, value: object, limit: int, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(name, "required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(name, "must be text")
    value = value.strip().replace("\r\n", "\n")
    if len(value) > limit:
        raise InvalidInput(name, f"at most {limit} characters")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise InvalidInput(name, "must not hold control characters")
    return value


def _https_url(name: str, value: object) -> str | None:
    url = _text(name, value, MAX_URL, required=False)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url):
        raise InvalidInput(name, "an https:// address")
    return url


@dataclass(frozen=True, slots=True)
class CampaignDraft:
    """A campaign as a marketer writes it; :meth:`validated` checks every field."""

    title: str
    text_th: str
    text_en: str
    image_url: str | None = None
    link_url: str | None = None
    link_label_th: str | None = None
    link_label_en: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> CampaignDraft:
        """From JSON or a form; raises ``InvalidInput`` naming the first bad field."""
        image_url = _https_url("image_url", raw.get("image_url"))
        limit = MAX_TEXT_WITH_IMAGE if image_url else MAX_TEXT
        link_url = _https_url("link_url", raw.get("link_url"))
        labels = {
            lang: _text(
                f"link_label_{lang}",
                raw.get(f"link_label_{lang}"),
                MAX_LINK_LABEL,
                required=link_url is not None,
            )
            for lang in ("th", "en")
        }
        if link_url is None and any(labels.values()):
            raise InvalidInput("link_url", "required with a link label")
        return cls(
            title=_text("title", raw.get("title"), MAX_TITLE) or "",
            text_th=_text("text_th", raw.get("text_th"), limit) or "",
            text_en=_text("text_en", raw.get("text_en"), limit) or "",
            image_url=image_url,
            link_url=link_url,
            link_label_th=labels["th"],
            link_label_en=labels["en"],
        )


def render_promotion(campaign: Campaign, language: str) -> PromotionMessage:
    """The campaign in ``language`` (Thai for anything else), with the opt-out note and
    button in that language."""
    t = translator(language)
    body = campaign.text_en if t.lang == "en" else campaign.text_th
    note = t._("You get promotions because you said yes. One tap below stops them.")
    link_label = campaign.link_label_en if t.lang == "en" else campaign.link_label_th
    return PromotionMessage(
        campaign_id=campaign.id,
        language=t.lang,
        text=f"{body}\n\n{note}",
        optout_label=t._("🚫 Stop promotions"),
        optout_payload=optout_payload(campaign.id),
        image_url=campaign.image_url,
        link_label=link_label if campaign.link_url else None,
        link_url=campaign.link_url,
    )


def triage(
    candidates: Iterable[DeliveryCandidate], per_day_cap: int
) -> dict[int, DeliveryStatus | None]:
    """For each claimed row, None to send it now or the status it ends with unsent.

    Previews go to staff and are never skipped. A customer's rows of one campaign (one per
    linked chat) are one promotion; two campaigns for one customer in the same batch both
    count towards the daily cap."""
    decisions: dict[int, DeliveryStatus | None] = {}
    granted_today: dict[str, set[str]] = {}
    for row in candidates:
        if row.preview:
            decisions[row.id] = None
            continue
        if not row.linked or row.customer_id is None:
            decisions[row.id] = DeliveryStatus.SKIPPED_UNLINKED
            continue
        if not row.consent_granted:
            decisions[row.id] = DeliveryStatus.SKIPPED_NO_CONSENT
            continue
        if not row.reachable:
            decisions[row.id] = DeliveryStatus.BLOCKED
            continue
        campaigns = granted_today.setdefault(row.customer_id, set())
        others = {c for c in campaigns if c != row.campaign_id}
        if row.campaign_id not in campaigns and row.promotions_today + len(others) >= per_day_cap:
            decisions[row.id] = DeliveryStatus.SKIPPED_CAPPED
            continue
        campaigns.add(row.campaign_id)
        decisions[row.id] = None
    return decisions


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """A campaign and its recipient rows by status."""

    campaign: Campaign
    counts: dict[DeliveryStatus, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        waiting = (DeliveryStatus.QUEUED, DeliveryStatus.CLAIMED, DeliveryStatus.SENDING)
        return sum(self.counts.get(s, 0) for s in waiting)

    @property
    def finished(self) -> bool:
        return self.campaign.status in (CampaignStatus.DONE, CampaignStatus.CANCELLED)

    def as_json(self) -> dict[str, object]:
        c = self.campaign
        return {
            "id": c.id,
            "title": c.title,
            "status": c.status.value,
            "created_by": c.created_by,
            "created_at": c.created_at.isoformat(),
            "scheduled_at": c.scheduled_at.isoformat() if c.scheduled_at else None,
            "started_at": c.started_at.isoformat() if c.started_at else None,
            "finished_at": c.finished_at.isoformat() if c.finished_at else None,
            "cancelled_at": c.cancelled_at.isoformat() if c.cancelled_at else None,
            "recipients": self.total,
            "counts": {s.value: self.counts.get(s, 0) for s in DeliveryStatus},
        }


class CampaignService:
    """What marketers do with campaigns; every change is audited under ``actor``."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def create(self, draft: CampaignDraft, *, actor: str) -> Campaign:
        now = self._clock.now()
        campaign = Campaign(
            id=new_id(),
            title=draft.title,
            text_th=draft.text_th,
            text_en=draft.text_en,
            image_url=draft.image_url,
            link_url=draft.link_url,
            link_label_th=draft.link_label_th,
            link_label_en=draft.link_label_en,
            status=CampaignStatus.DRAFT,
            created_by=actor,
            created_at=now,
        )
        async with self._uow_factory() as uow:
            await uow.campaigns.add(campaign)
            await record(
                uow,
                actor=actor,
                action=AuditAction.CAMPAIGN_CREATE,
                subject=campaign.id,
                at=now,
            )
            await uow.commit()
        return campaign

    async def get(self, campaign_id: str) -> Campaign:
        if not is_campaign_id(campaign_id):
            raise NotFound("no such campaign")
        async with self._uow_factory() as uow:
            campaign = await uow.campaigns.get(campaign_id)
        if campaign is None:
            raise NotFound("no such campaign")
        return campaign

    async def list(self, limit: int = 50) -> list[Campaign]:
        async with self._uow_factory() as uow:
            return await uow.campaigns.list(limit)

    async def report(self, campaign_id: str) -> CampaignReport:
        if not is_campaign_id(campaign_id):
            raise NotFound("no such campaign")
        async with self._uow_factory() as uow:
            campaign = await uow.campaigns.get(campaign_id)
            if campaign is None:
                raise NotFound("no such campaign")
            counts = await uow.campaigns.counts(campaign_id)
        return CampaignReport(campaign, counts)

    async def schedule(
        self, campaign_id: str, *, actor: str, at: datetime | None = None
    ) -> Campaign:
        """Send at ``at`` (now when None or past). A scheduled campaign may be moved;
        raises ``NotFound`` or ``Conflict`` (it is sending, done or cancelled)."""
        now = self._clock.now()
        when = max(at, now) if at is not None else now
        if at is not None and at.tzinfo is None:
            raise InvalidInput("at", "a time with its time zone")
        await self.get(campaign_id)
        async with self._uow_factory() as uow:
            moved = await uow.campaigns.change_status(
                campaign_id,
                (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED),
                CampaignStatus.SCHEDULED,
                now,
                scheduled_at=when,
            )
            if not moved:
                raise Conflict("only a draft or scheduled campaign can be scheduled")
            await record(
                uow,
                actor=actor,
                action=AuditAction.CAMPAIGN_SCHEDULE,
                subject=campaign_id,
                at=now,
                details={"delay_seconds": int((when - now).total_seconds())},
            )
            await uow.commit()
        return await self.get(campaign_id)

    async def cancel(self, campaign_id: str, *, actor: str) -> Campaign:
        """Stop the campaign: nothing more is sent (a message already on its way to the
        platform still arrives). Raises ``NotFound`` or ``Conflict`` (done already)."""
        now = self._clock.now()
        await self.get(campaign_id)
        async with self._uow_factory() as uow:
            stopped = await uow.campaigns.change_status(
                campaign_id, _CANCELLABLE, CampaignStatus.CANCELLED, now
            )
            if not stopped:
                raise Conflict("the campaign is finished or cancelled already")
            await record(
                uow, actor=actor, action=AuditAction.CAMPAIGN_CANCEL, subject=campaign_id, at=now
            )
            await uow.commit()
        return await self.get(campaign_id)

    async def preview(self, campaign_id: str, staff: StaffMember, *, actor: str) -> None:
        """Queue the campaign to ``staff``'s own chat (in that chat's language), whatever
        the campaign's status. Raises ``NotFound``, ``Conflict`` (no chat on record)."""
        if staff.chat_channel is None or staff.chat_id is None:
            raise Conflict(f"staff member {staff.handle} has no chat for previews")
        now = self._clock.now()
        await self.get(campaign_id)
        async with self._uow_factory() as uow:
            await uow.campaigns.queue_preview(campaign_id, staff.chat_channel, staff.chat_id, now)
            await record(
                uow,
                actor=actor,
                action=AuditAction.CAMPAIGN_PREVIEW,
                subject=campaign_id,
                at=now,
                details={"to": staff.handle},
            )
            await uow.commit()
