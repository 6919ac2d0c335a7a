"""``/admin/api/…``: the staff API, with bearer tokens (``selfcare staff token``).

Every route states the one role it needs (:data:`ROUTES`). A request without a token, or
with a token that is unknown, revoked, expired or belongs to disabled staff, gets 401;
a valid token without the route's role gets 403. Bodies are JSON objects: malformed JSON
is 400, a wrong or missing field 422 naming it.

Support's customer lookup (``POST /admin/api/customers/lookup``) needs a reason code and
takes an optional ticket reference; it is written to the audit log, and committed, before
anything is decrypted (core/services/staff.py). Support also lists open correction
requests (reading customers' words: audited first) and resolves them with a note the
customer is shown (core/services/corrections.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.app import CONTAINER, json_error
from bot.json_body import loads as loads_json
from core.domain import StaffMember, StaffRole
from core.errors import Conflict, InvalidInput, NotFound
from core.services.audit import LookupReason
from core.services.campaigns import CampaignDraft, CampaignReport, CampaignService
from core.services.corrections import CorrectionDesk
from core.services.staff import CustomerRecord, StaffService, SupportDesk
from storage.staff import recent_audit, verify_audit_chain

__all__ = ["ROUTES", "AdminRoute", "setup"]

log = logging.getLogger(__name__)

STAFF = web.AppKey("staff_service", StaffService)
CAMPAIGNS = web.AppKey("campaign_service", CampaignService)
SUPPORT = web.AppKey("support_desk", SupportDesk)
CORRECTIONS = web.AppKey("correction_desk", CorrectionDesk)
REALM = 'Bearer realm="selfcare-admin"'
MAX_TOKEN_DAYS = 3650

Handler = Callable[[web.Request, StaffMember], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AdminRoute:
    """One route of the staff API. ``role`` None: any active staff member."""

    method: str
    path: str
    role: StaffRole | None
    handler: Handler
    summary: str


class BadBody(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.extra = status, error, message, extra


# --- authentication --------------------------------------------------------------------------


async def authenticate(request: web.Request) -> StaffMember | web.Response:
    """The staff member of the request's bearer token, or the 401 to answer."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        response = json_error(401, "unauthenticated", "Send Authorization: Bearer <token>.")
        response.headers["WWW-Authenticate"] = REALM
        return response
    member = await request.app[STAFF].authenticate(token.strip())
    if member is None:
        response = json_error(401, "invalid_token", "The token is unknown, expired or revoked.")
        response.headers["WWW-Authenticate"] = f'{REALM}, error="invalid_token"'
        return response
    return member


def guarded(route: AdminRoute) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        found = await authenticate(request)
        if isinstance(found, web.Response):
            return found
        if route.role is not None and route.role not in found.roles:
            return json_error(
                403, "forbidden", f"This needs the {route.role.value} role.", role=route.role.value
            )
        try:
            return await route.handler(request, found)
        except BadBody as exc:
            return json_error(exc.status, exc.error, exc.message, **exc.extra)
        except InvalidInput as exc:
            return json_error(422, "invalid", f"{exc.field}: {exc.reason}", field=exc.field)
        except NotFound as exc:
            return json_error(404, "not_found", str(exc))
        except Conflict as exc:
            return json_error(409, "conflict", str(exc))

    handle.__name__ = route.handler.__name__
    return handle


# --- bodies ----------------------------------------------------------------------------------


async def json_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object; raises :class:`BadBody` (400) for anything else."""
    raw = await request.read()  # over the app's size limit: 413 from aiohttp
    if not raw.strip():
        if optional:
            return {}
        raise BadBody(400, "malformed_json", "The body must be a JSON object.")
    try:
        body = loads_json(raw)
    except ValueError:
        raise BadBody(400, "malformed_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadBody(400, "malformed_json", "The body must be a JSON object.")
    return body


def _string(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(name, "required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(name, "must be a string")
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _member(member: StaffMember) -> dict[str, Any]:
    return {
        "handle": member.handle,
        "roles": sorted(member.roles),
        "active": member.active,
        "chat_channel": member.chat_channel,
        "created_at": _iso(member.created_at),
    }


def _customer(record: CustomerRecord) -> dict[str, Any]:
    return {
        "id": record.customer_id,
        "account_no": record.account_no,
        "name": record.name,
        "address": record.address,
        "phone": record.phone,
        "email": record.email,
        "national_id": record.national_id_hint,
        "language": record.language,
        "numbers": [{"number": n, "kind": k, "plan": p} for n, k, p in record.numbers],
        "linked_channels": [
            {"channel": channel, "linked_at": _iso(at)} for channel, at in record.linked_channels
        ],
        "marketing_consent": record.marketing_consent,
    }


# --- any staff -------------------------------------------------------------------------------


async def me(request: web.Request, staff: StaffMember) -> web.Response:
    return web.json_response(_member(staff))


# --- support ---------------------------------------------------------------------------------


async def look_up_customer(request: web.Request, staff: StaffMember) -> web.Response:
    body = await json_body(request)
    reason = _string(body, "reason", required=False)
    if reason is None:
        raise InvalidInput("reason", "required: " + ", ".join(r.value for r in LookupReason))
    record = await request.app[SUPPORT].look_up(
        staff,
        account_no=_string(body, "account_no", required=False),
        phone=_string(body, "phone", required=False),
        reason=reason,
        ticket=_string(body, "ticket", required=False),
    )
    return web.json_response(_customer(record))


async def list_corrections(request: web.Request, staff: StaffMember) -> web.Response:
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 200)
    except ValueError:
        raise InvalidInput("limit", "a whole number") from None
    found = await request.app[CORRECTIONS].open_requests(staff, limit=limit)
    return web.json_response(
        {
            "corrections": [
                {
                    "id": item.request.id,
                    "account_no": item.account_no,
                    "field": item.request.field.value,
                    "text": item.request.text,
                    "channel": item.request.channel,
                    "created_at": _iso(item.request.created_at),
                }
                for item in found
            ]
        }
    )


async def resolve_correction(request: web.Request, staff: StaffMember) -> web.Response:
    body = await json_body(request)
    resolved = await request.app[CORRECTIONS].resolve_correction(
        request.match_info["request"], staff, _string(body, "note") or ""
    )
    return web.json_response(
        {
            "id": resolved.id,
            "status": resolved.status.value,
            "resolved_at": _iso(resolved.resolved_at),
            "resolved_by": resolved.resolved_by,
        }
    )


# --- marketer --------------------------------------------------------------------------------


def _report(report: CampaignReport) -> web.Response:
    return web.json_response(report.as_json())


async def list_campaigns(request: web.Request, staff: StaffMember) -> web.Response:
    service = request.app[CAMPAIGNS]
    campaigns = await service.list()
    reports = [await service.report(c.id) for c in campaigns]
    return web.json_response({"campaigns": [r.as_json() for r in reports]})


async def create_campaign(request: web.Request, staff: StaffMember) -> web.Response:
    draft = CampaignDraft.from_mapping(await json_body(request))
    service = request.app[CAMPAIGNS]
    campaign = await service.create(draft, actor=staff.actor)
    response = _report(await service.report(campaign.id))
    response.set_status(201)
    response.headers["Location"] = f"/admin/api/campaigns/{campaign.id}"
    return response


async def get_campaign(request: web.Request, staff: StaffMember) -> web.Response:
    return _report(await request.app[CAMPAIGNS].report(request.match_info["campaign"]))


async def preview_campaign(request: web.Request, staff: StaffMember) -> web.Response:
    campaign_id = request.match_info["campaign"]
    await request.app[CAMPAIGNS].preview(campaign_id, staff, actor=staff.actor)
    return web.json_response({"queued": True, "to": staff.chat_channel}, status=202)


async def send_campaign(request: web.Request, staff: StaffMember) -> web.Response:
    body = await json_body(request, optional=True)
    at_text = _string(body, "at", required=False)
    at: datetime | None = None
    if at_text is not None:
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            raise InvalidInput("at", "an ISO 8601 date-time with its offset") from None
        if at.tzinfo is None:
            raise InvalidInput("at", "an ISO 8601 date-time with its offset")
    service = request.app[CAMPAIGNS]
    campaign = await service.schedule(request.match_info["campaign"], actor=staff.actor, at=at)
    response = _report(await service.report(campaign.id))
    response.set_status(202)
    return response


async def cancel_campaign(request: web.Request, staff: StaffMember) -> web.Response:
    service = request.app[CAMPAIGNS]
    campaign = await service.cancel(request.match_info["campaign"], actor=staff.actor)
    return _report(await service.report(campaign.id))


# --- admin -----------------------------------------------------------------------------------


async def list_staff(request: web.Request, staff: StaffMember) -> web.Response:
    members = await request.app[STAFF].list()
    return web.json_response({"staff": [_member(m) for m in members]})


async def add_staff(request: web.Request, staff: StaffMember) -> web.Response:
    body = await json_body(request)
    roles = body.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidInput("roles", "a list of support, marketer, admin")
    member = await request.app[STAFF].add(
        _string(body, "handle") or "",
        roles,
        actor=staff.actor,
        chat=_string(body, "chat", required=False),
    )
    return web.json_response(_member(member), status=201)


async def disable_staff(request: web.Request, staff: StaffMember) -> web.Response:
    member = await request.app[STAFF].disable(request.match_info["handle"], actor=staff.actor)
    return web.json_response({**_member(member), "active": False})


async def issue_token(request: web.Request, staff: StaffMember) -> web.Response:
    body = await json_body(request, optional=True)
    days = body.get("days")
    if days is not None and (
        not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_TOKEN_DAYS
    ):
        raise InvalidInput("days", f"a whole number from 1 to {MAX_TOKEN_DAYS}")
    issued = await request.app[STAFF].issue_token(
        request.match_info["handle"],
        actor=staff.actor,
        valid_for=timedelta(days=days) if days else None,
    )
    return web.json_response(
        {"token": issued.value, "expires_at": _iso(issued.expires_at)}, status=201
    )


async def verify_audit(request: web.Request, staff: StaffMember) -> web.Response:
    report = await verify_audit_chain(request.app[CONTAINER].db.engine)
    broken = report.broken
    return web.json_response(
        {
            "intact": report.intact,
            "entries": report.entries,
            "head_hash": report.head_hash,
            "broken": None
            if broken is None
            else {"entry": broken.entry_id, "at": _iso(broken.at), "reason": broken.reason},
        }
    )


async def list_audit(request: web.Request, staff: StaffMember) -> web.Response:
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
        before = int(request.query["before"]) if "before" in request.query else None
    except ValueError:
        raise InvalidInput("limit", "whole numbers for limit and before") from None
    entries = await recent_audit(request.app[CONTAINER].db.engine, limit=limit, before_id=before)
    return web.json_response(
        {
            "entries": [
                {
                    "id": e.id,
                    "at": _iso(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": e.details,
                }
                for e in entries
            ]
        }
    )


_C = "/admin/api/campaigns/{campaign}"
_S = "/admin/api/staff/{handle}"
SUPPORT_ROLE, MARKETER, ADMIN = StaffRole.SUPPORT, StaffRole.MARKETER, StaffRole.ADMIN

#: Every route of the staff API and the role it needs.
ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute("GET", "/admin/api/me", None, me, "who the token belongs to"),
    AdminRoute(
        "POST",
        "/admin/api/customers/lookup",
        SUPPORT_ROLE,
        look_up_customer,
        "a customer by account_no or phone, with a reason (audited before decryption)",
    ),
    AdminRoute(
        "GET",
        "/admin/api/corrections",
        SUPPORT_ROLE,
        list_corrections,
        "open correction requests, oldest first (the look is audited)",
    ),
    AdminRoute(
        "POST",
        "/admin/api/corrections/{request}/resolve",
        SUPPORT_ROLE,
        resolve_correction,
        "resolve with {'note': …}; the customer's chats are told",
    ),
    AdminRoute("GET", "/admin/api/campaigns", MARKETER, list_campaigns, "campaigns, newest first"),
    AdminRoute("POST", "/admin/api/campaigns", MARKETER, create_campaign, "create a draft"),
    AdminRoute("GET", _C, MARKETER, get_campaign, "a campaign and its recipients by status"),
    AdminRoute("POST", f"{_C}/preview", MARKETER, preview_campaign, "send to the caller's chat"),
    AdminRoute("POST", f"{_C}/send", MARKETER, send_campaign, "send now or at {'at': ISO time}"),
    AdminRoute("POST", f"{_C}/cancel", MARKETER, cancel_campaign, "stop sending it"),
    AdminRoute("GET", "/admin/api/staff", ADMIN, list_staff, "staff and their roles"),
    AdminRoute("POST", "/admin/api/staff", ADMIN, add_staff, "add a staff member"),
    AdminRoute("POST", f"{_S}/disable", ADMIN, disable_staff, "disable and revoke tokens"),
    AdminRoute("POST", f"{_S}/tokens", ADMIN, issue_token, "issue a token (shown once)"),
    AdminRoute("GET", "/admin/api/audit", ADMIN, list_audit, "the newest audit entries"),
    AdminRoute("GET", "/admin/api/audit/verify", ADMIN, verify_audit, "check the hash chain"),
)


def setup(app: web.Application) -> None:
    """Add the staff API (and the services it uses) to ``app``."""
    container = app[CONTAINER]
    app[STAFF] = StaffService(container.db.uow, container.clock)
    app[CAMPAIGNS] = CampaignService(container.db.uow, container.clock)
    app[SUPPORT] = SupportDesk(container.db.uow, container.clock)
    app[CORRECTIONS] = CorrectionDesk(container.db.uow, container.clock)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, guarded(route))
