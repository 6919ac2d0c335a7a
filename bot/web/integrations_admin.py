"""``/admin/api/integrations/…``: subscriber endpoints of events out, for staff with the
``admin`` role (the same bearer tokens and answers as the rest of the staff API, see
bot/web/admin.py). Every change is audited as ``staff:<handle>``.

- ``GET  /admin/api/integrations/endpoints``: endpoints with their delivery counts;
- ``POST /admin/api/integrations/endpoints`` ``{"url", "events": [..] | "*", "description"?,
  "secret"?, "allow_http"?}``: 201 with the ``whsec_`` secret, shown this once;
- ``DELETE /admin/api/integrations/endpoints/{endpoint}``: 204, 404 if unknown;
- ``POST /admin/api/integrations/replay`` ``{"event_ids"?, "endpoint_id"?, "dead"?,
  "since"?}``: queue deliveries again with the same event ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.app import CONTAINER
from bot.web import admin
from core.domain import StaffMember, StaffRole
from core.errors import InvalidInput
from core.services.integrations import add_endpoint, remove_endpoint, replay_deliveries
from core.services.staff import StaffService

__all__ = ["ADMIN_ROUTES", "setup"]

_ENDPOINTS = "/admin/api/integrations/endpoints"


def _actor(staff: StaffMember) -> str:
    return f"staff:{staff.handle}"


def _strings(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(name, "must be a list of strings")
    return value


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(name, "must be true or false")
    return value


async def list_endpoints(request: web.Request, staff: StaffMember) -> web.Response:
    async with request.app[CONTAINER].db.uow() as uow:
        endpoints = await uow.webhooks.list_endpoints()
    return web.json_response(
        {
            "endpoints": [
                {
                    "id": e.id,
                    "url": e.url,
                    "events": list(e.events),
                    "description": e.description,
                    "created_at": e.created_at.isoformat(),
                    "deliveries": {"pending": e.pending, "delivered": e.delivered, "dead": e.dead},
                }
                for e in endpoints
            ]
        }
    )


async def create_endpoint(request: web.Request, staff: StaffMember) -> web.Response:
    body = await admin.json_body(request)
    url = body.get("url")
    if not isinstance(url, str):
        raise InvalidInput("url", "required, a string")
    description = body.get("description", "")
    secret = body.get("secret")
    if not isinstance(description, str):
        raise InvalidInput("description", "must be a string")
    if secret is not None and not isinstance(secret, str):
        raise InvalidInput("secret", "must be a whsec_ string")
    container = request.app[CONTAINER]
    async with container.db.uow() as uow:
        endpoint = await add_endpoint(
            uow,
            url,
            _strings(body, "events"),
            now=container.clock.now(),
            description=description,
            secret=secret,
            allow_http=_flag(body, "allow_http"),
            actor=_actor(staff),
        )
        await uow.commit()
    return web.json_response(
        {
            "id": endpoint.id,
            "url": endpoint.url,
            "events": list(endpoint.events),
            "description": endpoint.description,
            "secret": endpoint.secret,  # shown this once; stored encrypted
            "created_at": endpoint.created_at.isoformat() if endpoint.created_at else None,
        },
        status=201,
        headers={"Location": f"{_ENDPOINTS}/{endpoint.id}"},
    )


async def delete_endpoint(request: web.Request, staff: StaffMember) -> web.Response:
    container = request.app[CONTAINER]
    async with container.db.uow() as uow:
        await remove_endpoint(
            uow, request.match_info["endpoint"], now=container.clock.now(), actor=_actor(staff)
        )
        await uow.commit()
    return web.Response(status=204)


async def replay(request: web.Request, staff: StaffMember) -> web.Response:
    body = await admin.json_body(request)
    endpoint_id = body.get("endpoint_id")
    if endpoint_id is not None and not isinstance(endpoint_id, str):
        raise InvalidInput("endpoint_id", "must be a string")
    since = body.get("since")
    moment: datetime | None = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since) if isinstance(since, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise InvalidInput("since", "an ISO date-time with an offset")
    container = request.app[CONTAINER]
    async with container.db.uow() as uow:
        queued = await replay_deliveries(
            uow,
            now=container.clock.now(),
            event_ids=_strings(body, "event_ids"),
            endpoint_id=endpoint_id,
            dead_only=_flag(body, "dead"),
            since=moment,
            actor=_actor(staff),
        )
        await uow.commit()
    return web.json_response({"queued": queued})


ADMIN_ROUTES: tuple[admin.AdminRoute, ...] = (
    admin.AdminRoute(
        "GET", _ENDPOINTS, StaffRole.ADMIN, list_endpoints, "subscriber endpoints and counts"
    ),
    admin.AdminRoute(
        "POST", _ENDPOINTS, StaffRole.ADMIN, create_endpoint, "add one (its secret shown once)"
    ),
    admin.AdminRoute(
        "DELETE",
        _ENDPOINTS + "/{endpoint}",
        StaffRole.ADMIN,
        delete_endpoint,
        "remove one with its pending deliveries",
    ),
    admin.AdminRoute(
        "POST",
        "/admin/api/integrations/replay",
        StaffRole.ADMIN,
        replay,
        "queue deliveries again (same event ids)",
    ),
)


def setup(app: web.Application) -> None:
    """Add the integration routes of the staff API to ``app``."""
    if admin.STAFF not in app:  # the staff API's own setup may not have run yet
        container = app[CONTAINER]
        app[admin.STAFF] = StaffService(container.db.uow, container.clock)
    for route in ADMIN_ROUTES:
        app.router.add_route(route.method, route.path, admin.guarded(route))
