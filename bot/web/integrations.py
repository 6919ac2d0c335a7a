"""``POST /integrations/events`` (signed events from billing and payment systems) and
``GET /integrations/openapi.json`` (its OpenAPI 3.1 document, also in docs/).

One request, in order:

1. the Standard Webhooks signature is verified over the raw body with the official
   ``standardwebhooks`` package, against every secret in ``SELFCARE_INTEGRATION_SECRETS``
   (rotation), ±5 minutes: 401 otherwise, before any JSON is parsed;
2. the body is parsed and validated strictly: 400 for non-JSON, 422 with each failing
   field's path (pydantic's ``loc``) for an invalid event or an unknown type;
3. in one transaction the ``webhook-id`` is claimed (a redelivery gets the first answer,
   a concurrent one waits for it), the event applied (422 when the stored data refuses
   it, 409 on a payment id reused with other details) and the answer stored;
4. only after the commit is 200 sent.

``python -m bot.web.integrations`` prints the OpenAPI document (docs/integrations-openapi.json
is that output; a test keeps them equal).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook, WebhookVerificationError

from bot.app import CONTAINER, json_error
from bot.bootstrap import Container
from bot.settings import SettingsError
from core.errors import Conflict
from core.integration_events import (
    EVENT_ADAPTER,
    INBOUND_EVENT_TYPES,
    EventError,
    FieldError,
    parse_event,
)
from core.services.integrations import EventRejected, apply_event
from storage.integrations import StoredAnswer

__all__ = [
    "EXAMPLES",
    "VERIFIER",
    "SignatureRejected",
    "SignatureVerifier",
    "openapi",
    "purge_processed_events",
    "setup",
]

log = logging.getLogger(__name__)

WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,128}")
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
REPLAYED_HEADER = "Idempotent-Replayed"
#: How long a webhook-id is remembered (a redelivery within it gets the first answer).
IDEMPOTENCY_WINDOW = timedelta(days=30)


class SignatureRejected(Exception):
    """The request is not signed by a sender we trust; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SignatureVerifier:
    """Verifies Standard Webhooks v1 signatures against several secrets (rotation)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._webhooks = [Webhook(secret) for secret in secrets]

    @classmethod
    def from_setting(cls, value: str) -> SignatureVerifier:
        """From ``SELFCARE_INTEGRATION_SECRETS``; raises SettingsError on a bad secret."""
        secrets = [s.strip() for s in value.split(",") if s.strip()]
        try:
            return cls(secrets)
        except Exception:  # the library raises binascii.Error, ValueError…
            raise SettingsError(
                "SELFCARE_INTEGRATION_SECRETS: each secret must be whsec_ followed by base64"
            ) from None

    def verify(self, body: str, headers: Mapping[str, str]) -> str:
        """The ``webhook-id`` of a correctly signed request; raises SignatureRejected."""
        missing = [name for name in HEADERS if not headers.get(name)]
        if missing:
            raise SignatureRejected("missing_headers", f"missing header(s): {', '.join(missing)}")
        if not self._webhooks:
            raise SignatureRejected(
                "not_configured", "signed integration events are not enabled on this server"
            )
        wanted = {name: headers[name] for name in HEADERS}
        for webhook in self._webhooks:
            try:
                webhook.verify(body, wanted, json_parse=False)
            except WebhookVerificationError as exc:
                text = str(exc)
                if "timestamp" in text or "Invalid Signature Headers" in text:
                    raise SignatureRejected(
                        "timestamp_out_of_tolerance",
                        "webhook-timestamp must be Unix seconds within 5 minutes of our clock",
                    ) from None
                continue  # try the next secret
            except Exception:  # noqa: S112 - a malformed signature list matches no secret
                continue
            return wanted["webhook-id"]
        raise SignatureRejected(
            "no_matching_signature", "webhook-signature matches none of our secrets"
        )


VERIFIER = web.AppKey("integration_verifier", SignatureVerifier)


def _invalid(errors: Sequence[FieldError]) -> web.Response:
    return json_error(
        422,
        "invalid_event",
        "; ".join(f"{e.path()}: {e.msg}" for e in errors),
        errors=[e.as_json() for e in errors],
    )


def _replayed(first: StoredAnswer, digest: str) -> web.Response:
    if first.body_sha256 != digest:
        return json_error(
            409,
            "webhook_id_reused",
            "This webhook-id was used before for a different body: give each event its own id.",
        )
    return web.json_response(
        first.body, status=first.status_code, headers={REPLAYED_HEADER: "true"}
    )


async def receive_event(request: web.Request) -> web.StreamResponse:
    container = request.app[CONTAINER]
    body = await request.read()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return json_error(400, "malformed", "The body must be JSON in UTF-8.")
    try:
        webhook_id = request.app[VERIFIER].verify(text, request.headers)
    except SignatureRejected as exc:
        log.info("integration event refused", extra={"reason": exc.reason})
        return json_error(401, "unauthorized", exc.message, reason=exc.reason)
    if not WEBHOOK_ID.fullmatch(webhook_id):
        return _invalid(
            [FieldError(("header", "webhook-id"), "pattern", "1-128 printable ASCII characters")]
        )
    try:
        event = parse_event(body)
    except EventError as exc:
        if exc.malformed:
            return json_error(400, "malformed", "The body is not valid JSON.")
        return _invalid(exc.errors)

    digest = hashlib.sha256(body).hexdigest()
    now = container.clock.now()
    try:
        async with container.db.uow() as uow:
            first = await uow.integration_inbox.claim(webhook_id, digest, event.type, now)
            if first is not None:
                return _replayed(first, digest)
            try:
                result = await apply_event(uow, event, now=now)
            except EventRejected as exc:
                return _invalid([FieldError(exc.loc, "rejected", exc.message)])
            except Conflict as exc:
                return json_error(409, "conflict", str(exc))
            answer = {
                "status": "processed",
                "webhook_id": webhook_id,
                "type": event.type,
                "result": result,
            }
            await uow.integration_inbox.answer(webhook_id, 200, answer)
            await uow.commit()
    except IntegrityError:
        # Another event changed the same rows at the same moment: nothing was kept.
        response = json_error(409, "conflict", "A concurrent change clashed; send it again.")
        response.headers["Retry-After"] = "1"
        return response
    log.info("integration event processed", extra={"type": event.type, "webhook_id": webhook_id})
    return web.json_response(answer)


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(openapi())


async def purge_processed_events(container: Container) -> int:
    """The worker's daily job: forget webhook ids older than :data:`IDEMPOTENCY_WINDOW`
    (senders stop retrying long before); returns how many went."""
    async with container.db.uow() as uow:
        purged = await uow.integration_inbox.purge_older_than(
            container.clock.now() - IDEMPOTENCY_WINDOW
        )
        await uow.commit()
    return purged


def setup(app: web.Application) -> None:
    settings = app[CONTAINER].settings
    app[VERIFIER] = SignatureVerifier.from_setting(settings.integration_secrets)
    app.router.add_post("/integrations/events", receive_event)
    app.router.add_get("/integrations/openapi.json", openapi_document)


# --- the OpenAPI document ----------------------------------------------------------------

EXAMPLES: dict[str, dict[str, Any]] = {
    "customer.upserted": {
        "type": "customer.upserted",
        "timestamp": "2026-11-25T03:04:05Z",
        "data": {
            "account_no": "1000000001",
            "name": "นางสาวสมหญิง ใจดี",
            "address": "99/1 ถนนพหลโยธิน แขวงลาดยาว เขตจตุจักร กรุงเทพมหานคร 10900",
            "phone": "0812345678",
            "email": "somying@example.co.th",
            "national_id": "1101700203451",
            "language": "th",
            "service_accounts": [
                {"number": "0812345678", "kind": "mobile", "plan": "เน็ตไม่อั้น 599"},
                {"number": "021234567", "kind": "fixed", "plan": "โทรศัพท์บ้าน 100"},
            ],
        },
    },
    "customer.deleted": {
        "type": "customer.deleted",
        "timestamp": "2026-11-25T03:04:05Z",
        "data": {"account_no": "1000000001"},
    },
    "bill.issued": {
        "type": "bill.issued",
        "timestamp": "2026-11-01T00:00:00Z",
        "data": {
            "reference": "B100000000125111",
            "account_no": "1000000001",
            "service_number": "0812345678",
            "period_start": "2026-10-01",
            "period_end": "2026-10-31",
            "issued_on": "2026-11-01",
            "due_on": "2026-12-01",
            "amount_satang": 64093,
        },
    },
    "bill.updated": {
        "type": "bill.updated",
        "timestamp": "2026-11-03T00:00:00Z",
        "data": {
            "reference": "B100000000125111",
            "account_no": "1000000001",
            "service_number": "0812345678",
            "period_start": "2026-10-01",
            "period_end": "2026-10-31",
            "issued_on": "2026-11-01",
            "due_on": "2026-12-01",
            "amount_satang": 59900,
        },
    },
    "payment.succeeded": {
        "type": "payment.succeeded",
        "timestamp": "2026-11-25T03:04:06Z",
        "data": {
            "payment_id": "KBANK-20261125-000123",
            "amount_satang": 64093,
            "paid_at": "2026-11-25T10:04:00+07:00",
            "ref1": "1000000001",
            "ref2": "B100000000125111",
            "method": "promptpay",
        },
    },
    "payment.reversed": {
        "type": "payment.reversed",
        "timestamp": "2026-11-26T02:00:00Z",
        "data": {
            "payment_id": "KBANK-20261125-000123",
            "reversed_at": "2026-11-26T09:00:00+07:00",
            "reason": "chargeback",
        },
    },
}

_DESCRIPTION = """\
Events from billing and payment systems. Every request is signed with
[Standard Webhooks](https://www.standardwebhooks.com/) v1: `webhook-id`, `webhook-timestamp`
(Unix seconds, within 5 minutes of our clock) and `webhook-signature`
(`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{raw body}` under the
shared `whsec_` secret; several space-separated signatures are accepted while secrets rotate).

**Money is an integer number of satang** (100 satang = 1 baht): `64093` is ฿640.93. A number
with a fraction or an exponent (`640.93`, `64093.0`, `6.4093e4`) is refused with 422, never
rounded. Dates are `YYYY-MM-DD`; date-times are RFC 3339 with an offset.

`webhook-id` is the idempotency key: send a retry with the same id and the same body (within
30 days) and you get the first answer again (header `Idempotent-Replayed: true`) with no second
effect. A 2xx
is sent only after the event is committed; on any other answer (or none) retry with
back-off. 422 answers list each failing field as `loc` (its path in the body), `type` and
`msg`; fix the event, do not retry it unchanged."""


def _error_schema(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "error": {"type": "string", "description": "a stable code"},
        "message": {"type": "string", "description": "what went wrong, for a person"},
    }
    properties.update(extra or {})
    return {"type": "object", "required": ["error", "message"], "properties": properties}


def _response(description: str, schema: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        **extra,
    }


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the integration endpoint (built from the event models)."""
    schema = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = dict(schema.pop("$defs"))
    components["Event"] = {
        "description": "One event; `type` selects the shape of `data`.",
        **schema,
    }
    components["Processed"] = {
        "type": "object",
        "required": ["status", "webhook_id", "type", "result"],
        "properties": {
            "status": {"const": "processed"},
            "webhook_id": {"type": "string"},
            "type": {"enum": list(INBOUND_EVENT_TYPES)},
            "result": {
                "type": "object",
                "description": "what the event did, by type (e.g. `customer: created|updated`, "
                "`bill: created|updated|unchanged`, payment `outcome: recorded|unmatched|"
                "duplicate|reversed` with `applied_satang`, `excess_satang`, "
                "`outstanding_satang`, `bill_status`)",
            },
        },
    }
    components["Error"] = _error_schema()
    components["Unauthorized"] = _error_schema(
        {
            "reason": {
                "enum": [
                    "missing_headers",
                    "timestamp_out_of_tolerance",
                    "no_matching_signature",
                    "not_configured",
                ]
            }
        }
    )
    components["Invalid"] = _error_schema(
        {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["loc", "type", "msg"],
                    "properties": {
                        "loc": {
                            "type": "array",
                            "items": {"type": ["string", "integer"]},
                            "description": "the path of the field, e.g. "
                            '["data", "service_accounts", 0, "number"]',
                        },
                        "type": {"type": "string"},
                        "msg": {"type": "string"},
                    },
                },
            }
        }
    )
    retry_after = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    header = {
        "webhook-id": (
            "the event's unique id, the idempotency key (1-128 printable ASCII characters)",
            {"type": "string"},
        ),
        "webhook-timestamp": ("Unix seconds when the request was signed", {"type": "string"}),
        "webhook-signature": (
            "space-separated `v1,<base64>` signatures",
            {"type": "string"},
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "selfcare integration events",
            "version": "1.0.0",
            "description": _DESCRIPTION,
        },
        "paths": {
            "/integrations/events": {
                "post": {
                    "operationId": "receiveEvent",
                    "summary": "Send one signed event",
                    "parameters": [
                        {
                            "name": name,
                            "in": "header",
                            "required": True,
                            "description": description,
                            "schema": header_schema,
                        }
                        for name, (description, header_schema) in header.items()
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Event"},
                                "examples": {
                                    name: {"value": value} for name, value in EXAMPLES.items()
                                },
                            }
                        },
                    },
                    "responses": {
                        "200": _response(
                            "Processed and committed (or, with `Idempotent-Replayed: true`, "
                            "the first answer to this webhook-id).",
                            "Processed",
                            headers={
                                REPLAYED_HEADER: {
                                    "schema": {"const": "true"},
                                    "description": "present when this is a redelivery",
                                }
                            },
                        ),
                        "400": _response("The body is not JSON in UTF-8.", "Error"),
                        "401": _response(
                            "Missing or bad signature headers, a timestamp more than 5 minutes "
                            "off, or a signature none of our secrets made.",
                            "Unauthorized",
                        ),
                        "409": _response(
                            "The webhook-id was used for another body, a payment_id was "
                            "recorded with other details, or a concurrent change clashed "
                            "(retry after `Retry-After`).",
                            "Error",
                        ),
                        "413": _response("The body is larger than 256 KiB.", "Error"),
                        "422": _response(
                            "An invalid event, an unknown type, or one the stored data "
                            "refuses (an unknown account, a number of another customer…).",
                            "Invalid",
                        ),
                        "503": _response(
                            "The database is unavailable: retry later.",
                            "Error",
                            headers=retry_after,
                        ),
                    },
                }
            },
            "/integrations/openapi.json": {
                "get": {
                    "operationId": "getOpenApiDocument",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": components},
    }


def render_openapi() -> str:
    """The document as docs/integrations-openapi.json holds it."""
    return json.dumps(openapi(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_openapi())
