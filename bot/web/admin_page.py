"""``/admin``: the staff web page for campaigns (sign in with an API token, list, create,
watch, send, preview, cancel), in Thai and English.

Signing in checks the token and keeps it in a cookie (HttpOnly, SameSite=Strict, Secure
over https, path ``/admin``); every request checks it again, so a disabled member or a
revoked token is signed out at once. Forms carry a CSRF value derived from the token, and
a POST from another origin is refused. The pages need the marketer role; other staff are
told to use the API. No JavaScript; the status page refreshes itself while it sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot.app import CONTAINER
from bot.web.admin import CAMPAIGNS, STAFF
from bot.web.templates import TEMPLATES, environment, layout_context, render
from core.domain import CampaignStatus, DeliveryStatus, StaffMember, StaffRole
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import Translator, normalise_language, translator
from core.services.campaigns import MAX_LINK_LABEL, MAX_TEXT, MAX_TITLE, CampaignDraft

__all__ = ["ADMIN_PAGES", "AdminPages", "setup"]

SESSION_COOKIE = "selfcare_staff"
LANG_COOKIE = "selfcare_staff_lang"
MAX_FORM_BYTES = 32 * 1024
_FORM_FIELDS = (
    "title",
    "text_th",
    "text_en",
    "image_url",
    "link_url",
    "link_label_th",
    "link_label_en",
)


class AdminPages:
    """The compiled page templates."""

    def __init__(self, templates: jinja2.Environment) -> None:
        self.signin = templates.get_template("admin_signin.html")
        self.campaigns = templates.get_template("admin_campaigns.html")
        self.new = templates.get_template("admin_campaign_new.html")
        self.campaign = templates.get_template("admin_campaign.html")
        self.message = templates.get_template("admin_message.html")

    @classmethod
    def load(cls, folder: Path = TEMPLATES) -> AdminPages:
        """Read and compile the templates (file I/O: call it in a thread)."""
        return cls(environment(folder))


ADMIN_PAGES = web.AppKey("admin_pages", AdminPages)


# --- the frame of every page --------------------------------------------------------------------


def _language(request: web.Request) -> str:
    asked = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    return normalise_language(asked)


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


def _csrf(token: str) -> str:
    return hmac.new(hashlib.sha256(token.encode()).digest(), b"admin-csrf", "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class _Session:
    staff: StaffMember
    token: str

    @property
    def csrf(self) -> str:
        return _csrf(self.token)


def _render(
    request: web.Request,
    template: jinja2.Template,
    *,
    status: int = 200,
    session: _Session | None = None,
    refresh: bool = False,
    **context: Any,
) -> web.Response:
    lang = _language(request)
    operator = request.app[CONTAINER].settings.operator_name
    page = render(
        template,
        layout_context(lang, operator)
        | {
            "t": translator(lang),
            "staff": session.staff if session else None,
            "csrf": session.csrf if session else "",
            "refresh": refresh,
        }
        | context,
        status=status,
    )
    response = page.response()
    if "lang" in request.query:
        response.set_cookie(
            LANG_COOKIE, lang, path="/admin", samesite="Strict", secure=_secure(request)
        )
    return response


def _message(
    request: web.Request, title: str, text: str, *, status: int, session: _Session | None = None
) -> web.Response:
    pages = request.app[ADMIN_PAGES]
    return _render(request, pages.message, status=status, session=session, title=title, text=text)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


# --- sessions ---------------------------------------------------------------------------------


async def _session(request: web.Request) -> _Session | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        return None
    member = await request.app[STAFF].authenticate(token)
    return None if member is None else _Session(member, token)


def _same_origin(request: web.Request) -> bool:
    """False for a form posted from another site. Browsers say where a request comes from
    in ``Sec-Fetch-Site``; with ``Referrer-Policy: no-referrer`` their ``Origin`` is
    "null", so that header only counts when it names a site."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True  # an old client: the CSRF value and the SameSite cookie still hold
    return urlsplit(origin).netloc == request.host


async def _form(request: web.Request) -> Mapping[str, str]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_FORM_BYTES, actual_size=request.content_length
        )
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _marketer(
    request: web.Request, *, post: bool = False
) -> tuple[_Session, Mapping[str, str]] | web.Response:
    """The signed-in marketer and the form (POST), or the page to answer instead."""
    t = translator(_language(request))
    session = await _session(request)
    if session is None:
        if post:
            return _message(
                request,
                t._("Signed out"),
                t._("Your session has ended. Sign in again."),
                status=401,
            )
        return _see_other("/admin/signin")
    if StaffRole.MARKETER not in session.staff.roles:
        return _message(
            request,
            t._("Not for your role"),
            t._("Campaigns need the marketer role. Support and admin staff use the staff API."),
            status=403,
            session=session,
        )
    form: Mapping[str, str] = {}
    if post:
        form = await _form(request)
        if not _same_origin(request) or not hmac.compare_digest(form.get("csrf", ""), session.csrf):
            return _message(
                request,
                t._("Form expired"),
                t._("This form is out of date. Go back, reload the page and try again."),
                status=403,
                session=session,
            )
    return session, form


# --- pages ------------------------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    return _see_other("/admin/campaigns")


async def signin_page(request: web.Request) -> web.Response:
    return _render(request, request.app[ADMIN_PAGES].signin, error=None)


async def signin(request: web.Request) -> web.Response:
    t = translator(_language(request))
    if not _same_origin(request):
        return _message(request, t._("Form expired"), t._("Sign in from this site."), status=403)
    form = await _form(request)
    token = form.get("token", "").strip()
    member = await request.app[STAFF].authenticate(token) if token else None
    if member is None:
        error = t._("That token is not valid. Check it, or ask an admin for a new one.")
        return _render(request, request.app[ADMIN_PAGES].signin, status=401, error=error)
    response = _see_other("/admin/campaigns")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path="/admin",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    return response


async def signout(request: web.Request) -> web.Response:
    response = _see_other("/admin/signin")
    response.del_cookie(SESSION_COOKIE, path="/admin")
    return response


async def campaigns_page(request: web.Request) -> web.Response:
    found = await _marketer(request)
    if isinstance(found, web.Response):
        return found
    session, _ = found
    service = request.app[CAMPAIGNS]
    t = translator(_language(request))
    rows = [
        {
            "id": r.campaign.id,
            "title": r.campaign.title,
            "status": _status_label(t, r.campaign.status),
            "sent": r.counts.get(DeliveryStatus.SENT, 0),
            "total": r.total,
            "created": t.datetime(r.campaign.created_at),
        }
        for r in [await service.report(c.id) for c in await service.list()]
    ]
    return _render(request, request.app[ADMIN_PAGES].campaigns, session=session, rows=rows)


def _new_form(
    request: web.Request,
    session: _Session,
    values: Mapping[str, str],
    *,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    return _render(
        request,
        request.app[ADMIN_PAGES].new,
        status=status,
        session=session,
        values={name: values.get(name, "") for name in _FORM_FIELDS},
        error=error,
        limits={"title": MAX_TITLE, "text": MAX_TEXT, "label": MAX_LINK_LABEL},
    )


async def new_campaign_page(request: web.Request) -> web.Response:
    found = await _marketer(request)
    if isinstance(found, web.Response):
        return found
    return _new_form(request, found[0], {})


def _field_error(t: Translator, exc: InvalidInput) -> str:
    names = {
        "title": t._("Title"),
        "text_th": t._("Thai text"),
        "text_en": t._("English text"),
        "image_url": t._("Image address"),
        "link_url": t._("Link address"),
        "link_label_th": t._("Link label (Thai)"),
        "link_label_en": t._("Link label (English)"),
    }
    field = names.get(exc.field, exc.field)
    if exc.reason == "required" or exc.reason.startswith("required"):
        return t._("{field}: please fill this in.").format(field=field)
    if exc.reason.startswith("at most"):
        return t._("{field}: too long.").format(field=field)
    if "https" in exc.reason:
        return t._("{field}: give an address starting with https://").format(field=field)
    return t._("{field}: please check this value.").format(field=field)


async def create_campaign(request: web.Request) -> web.Response:
    found = await _marketer(request, post=True)
    if isinstance(found, web.Response):
        return found
    session, form = found
    try:
        draft = CampaignDraft.from_mapping(form)
    except InvalidInput as exc:
        error = _field_error(translator(_language(request)), exc)
        return _new_form(request, session, form, error=error, status=422)
    campaign = await request.app[CAMPAIGNS].create(draft, actor=session.staff.actor)
    return _see_other(f"/admin/campaigns/{campaign.id}")


def _status_label(t: Translator, status: CampaignStatus | DeliveryStatus) -> str:
    labels = {
        CampaignStatus.DRAFT: t._("draft"),
        CampaignStatus.SCHEDULED: t._("scheduled"),
        CampaignStatus.SENDING: t._("sending"),
        CampaignStatus.DONE: t._("done"),
        CampaignStatus.CANCELLED: t._("cancelled"),
        DeliveryStatus.QUEUED: t._("waiting"),
        DeliveryStatus.CLAIMED: t._("waiting"),
        DeliveryStatus.SENDING: t._("on its way"),
        DeliveryStatus.SENT: t._("sent"),
        DeliveryStatus.FAILED: t._("failed"),
        DeliveryStatus.BLOCKED: t._("blocked the bot"),
        DeliveryStatus.SKIPPED_NO_CONSENT: t._("skipped: consent withdrawn"),
        DeliveryStatus.SKIPPED_CAPPED: t._("skipped: daily limit reached"),
        DeliveryStatus.SKIPPED_UNLINKED: t._("skipped: chat unlinked"),
    }
    return labels[status]


async def campaign_page(request: web.Request) -> web.Response:
    found = await _marketer(request)
    if isinstance(found, web.Response):
        return found
    session, _ = found
    t = translator(_language(request))
    try:
        report = await request.app[CAMPAIGNS].report(request.match_info["campaign"])
    except NotFound:
        return _message(
            request,
            t._("Not found"),
            t._("There is no such campaign."),
            status=404,
            session=session,
        )
    notes = {
        "scheduled": t._("Scheduled. The worker starts sending at the time set."),
        "cancelled": t._("Cancelled: nothing more is sent."),
        "preview": t._("Preview queued to your own chat."),
        "conflict": t._("That is not possible in the campaign's current state."),
        "no_chat": t._("You have no chat on record for previews. Ask an admin to add one."),
    }
    campaign = report.campaign
    # "claimed" is the worker's business: staff see it as waiting.
    shown = dict(report.counts)
    shown[DeliveryStatus.QUEUED] = shown.get(DeliveryStatus.QUEUED, 0) + shown.pop(
        DeliveryStatus.CLAIMED, 0
    )
    counts = [
        (status.value, _status_label(t, status), shown.get(status, 0))
        for status in DeliveryStatus
        if status is not DeliveryStatus.CLAIMED
    ]
    return _render(
        request,
        request.app[ADMIN_PAGES].campaign,
        session=session,
        report=report,
        campaign=campaign,
        status_text=_status_label(t, campaign.status),
        counts=counts,
        note=notes.get(request.query.get("done", "")),
        refresh=campaign.status in (CampaignStatus.SCHEDULED, CampaignStatus.SENDING),
        can_send=campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED),
        can_cancel=campaign.status
        in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING),
    )


async def campaign_action(request: web.Request) -> web.Response:
    found = await _marketer(request, post=True)
    if isinstance(found, web.Response):
        return found
    session, _ = found
    campaign_id = request.match_info["campaign"]
    action = request.match_info["action"]
    service = request.app[CAMPAIGNS]
    actor = session.staff.actor
    done = {"send": "scheduled", "cancel": "cancelled", "preview": "preview"}[action]
    try:
        if action == "send":
            await service.schedule(campaign_id, actor=actor)
        elif action == "cancel":
            await service.cancel(campaign_id, actor=actor)
        else:
            await service.preview(campaign_id, session.staff, actor=actor)
    except NotFound:
        t = translator(_language(request))
        return _message(
            request,
            t._("Not found"),
            t._("There is no such campaign."),
            status=404,
            session=session,
        )
    except Conflict:
        done = "no_chat" if action == "preview" else "conflict"
    return _see_other(f"/admin/campaigns/{campaign_id}?done={done}")


# --- wiring -----------------------------------------------------------------------------------


async def _templates(app: web.Application) -> AsyncIterator[None]:
    app[ADMIN_PAGES] = await asyncio.to_thread(AdminPages.load)
    yield


def setup(app: web.Application) -> None:
    """Add the staff pages under ``/admin`` (needs :func:`bot.web.admin.setup` first)."""
    app.cleanup_ctx.append(_templates)
    app.router.add_get("/admin", root)
    app.router.add_get("/admin/signin", signin_page)
    app.router.add_post("/admin/signin", signin)
    app.router.add_post("/admin/signout", signout)
    app.router.add_get("/admin/campaigns", campaigns_page)
    app.router.add_get("/admin/campaigns/new", new_campaign_page)
    app.router.add_post("/admin/campaigns", create_campaign)
    app.router.add_get("/admin/campaigns/{campaign}", campaign_page)
    app.router.add_post("/admin/campaigns/{campaign}/{action:send|cancel|preview}", campaign_action)
