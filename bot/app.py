"""The aiohttp application: the web routes of every feature, assembled in one place.

Every route answers bad input with a clear 4xx JSON body, a database that is down with
503 and ``Retry-After`` (so platforms retry), and never shows a traceback.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy import text

from bot.bootstrap import Container
from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from storage.db import is_unavailable

log = logging.getLogger(__name__)

CONTAINER = web.AppKey("container", Container)
METRICS = web.AppKey("metrics", Metrics)
MAX_BODY_BYTES = 256 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Features add their routes here: ``def setup(app: web.Application) -> None``.
RouteSetup = Callable[[web.Application], None]


def json_error(status: int, error: str, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


def _unavailable() -> web.Response:
    response = json_error(503, "unavailable", "Temporarily unavailable; retry later.")
    response.headers["Retry-After"] = "5"
    return response


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            metrics.http_errors.labels(str(exc.status)).inc()
            if exc.content_type != "application/json" and not exc.text:
                raise
            if exc.content_type != "application/json":
                return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception as exc:
        if is_unavailable(exc):
            # Nothing was committed: the platform's retry finds the work new.
            metrics.http_errors.labels("503").inc()
            log.warning("database unavailable", extra={"exc_type": type(exc).__name__})
            return _unavailable()
        # A bug: the type and place go to the log, nothing of it to the client.
        metrics.http_errors.labels("500").inc()
        log.exception("unhandled error in %s", request.path, extra={"exc_type": type(exc).__name__})
        return json_error(500, "internal", "Something went wrong on our side.")
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    headers.setdefault("Cache-Control", "no-store")
    if request.secure or request.headers.get("X-Forwarded-Proto") == "https":
        headers.setdefault("Strict-Transport-Security", "max-age=63072000")
    return response


async def healthz(request: web.Request) -> web.Response:
    """The process is up (no dependency checked)."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """The process can serve: the database answers."""
    db = request.app[CONTAINER].db
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("not ready", extra={"exc_type": type(exc).__name__})
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ready", "database": "up"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text; with SELFCARE_METRICS_TOKEN set, only for its bearer."""
    token = request.app[CONTAINER].settings.metrics_token
    if token is not None:
        given = request.headers.get("Authorization", "").encode()
        expected = b"Bearer " + token.get_secret_value().encode()
        if not hmac.compare_digest(given, expected):
            response = json_error(401, "unauthorized", "A bearer token is required.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    registry = request.app[METRICS]
    try:
        async with request.app[CONTAINER].db.uow() as uow:
            registry.outbox_depth.set(await uow.outbox.pending_count())
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The scrape still answers; /readyz tells about the database.
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    container: Container, *, features: list[RouteSetup] | None = None
) -> web.Application:
    """The application for ``container``; ``features`` add their routes."""
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[security_headers, errors_middleware]
    )
    app[CONTAINER] = container
    app[METRICS] = Metrics()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    for setup in features if features is not None else default_features():
        setup(app)
    return app


def default_features() -> list[RouteSetup]:
    """Every feature's routes (each module's ``setup``)."""
    from bot.web import (
        admin,
        admin_page,
        integrations,
        integrations_admin,
        link,
        media,
        pay,
        webhooks,
    )

    return [
        webhooks.setup,
        media.setup,
        integrations.setup,
        pay.setup,
        link.setup,
        admin.setup,
        integrations_admin.setup,
        admin_page.setup,
    ]
