"""``POST /integrations/events`` on both databases: Standard Webhooks signatures checked
before anything is parsed, strict validation with field paths, ``webhook-id`` as the
idempotency key (also under concurrent redeliveries), and what each event does."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

import bot.web.integrations as web_integrations
from bot.app import default_features
from core.domain import Channel, ChatLink, Conversation
from core.i18n import preload
from storage import tables as t
from storage import tables_integrations as ti
from tests.integration import factories as f
from tests.integration.integrations_support import (
    NEW_SECRET,
    SECRET,
    STRANGER_SECRET,
    IntegrationApp,
    bill_data,
    customer_data,
    event,
    integration_app,
    payment_data,
    signed_headers,
)


@pytest.fixture(autouse=True, scope="module")
def _catalogs() -> None:
    preload()  # file reads: here, not on the event loop


@pytest.fixture
async def app(database_url: str, keyring_path: Path) -> Any:
    async with integration_app(database_url, keyring_path) as running:
        yield running


async def _customer_with_bill(app: IntegrationApp, amount: int = 64_093) -> dict[str, Any]:
    customer = customer_data()
    bill = bill_data(customer, amount_satang=amount)
    assert (await app.send(event("customer.upserted", customer))).status == 200
    assert (await app.send(event("bill.issued", bill))).status == 200
    return bill


async def _paid_satang(app: IntegrationApp, reference: str) -> int:
    async with app.container.db.uow() as uow:
        stored = await uow.bills.get_by_reference(reference)
    assert stored is not None
    return stored.paid_satang


# --- signatures ---------------------------------------------------------------------------


async def test_an_event_signed_by_the_official_library_is_accepted_and_stored_encrypted(
    app: IntegrationApp,
) -> None:
    customer = customer_data(name="นางสาวพรทิพย์ ศรีสุข 🌸", email=None)

    answer = await app.send(event("customer.upserted", customer))

    assert answer.status == 200
    assert answer.body["status"] == "processed"
    assert answer.body["result"]["customer"] == "created"
    async with app.container.db.uow() as uow:
        stored = await uow.customers.get_by_account_no(customer["account_no"])
        numbers = await uow.customers.service_accounts(stored.id if stored else "")
    assert stored is not None and stored.name == customer["name"] and stored.email is None
    assert [n.number for n in numbers] == [customer["phone"]]
    async with app.container.db.engine.connect() as conn:
        raw = (
            await conn.execute(
                select(t.customers.c.name_enc).where(
                    t.customers.c.account_no == customer["account_no"]
                )
            )
        ).scalar_one()
    assert customer["name"].encode() not in bytes(raw)


async def test_one_changed_byte_is_refused_before_anything_is_stored(app: IntegrationApp) -> None:
    body = json.dumps(event("customer.upserted", customer_data())).encode()
    headers = signed_headers(body)
    tampered = body.replace(b'"th"', b'"en"')

    answer = await app.post(tampered, headers)

    assert answer.status == 401
    assert answer.body["reason"] == "no_matching_signature"
    assert await app.count("customers") == 0
    assert await app.count("integration_inbox") == 0


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
async def test_a_stale_or_future_timestamp_is_refused(
    app: IntegrationApp, offset: timedelta
) -> None:
    answer = await app.send(
        event("customer.upserted", customer_data()), at=datetime.now(UTC) + offset
    )

    assert answer.status == 401
    assert answer.body["reason"] == "timestamp_out_of_tolerance"


async def test_a_timestamp_four_minutes_off_is_still_accepted(app: IntegrationApp) -> None:
    answer = await app.send(
        event("customer.upserted", customer_data()),
        at=datetime.now(UTC) - timedelta(minutes=4),
    )

    assert answer.status == 200


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_a_missing_header_is_refused(app: IntegrationApp, header: str) -> None:
    body = json.dumps(event("customer.upserted", customer_data())).encode()
    headers = signed_headers(body)
    del headers[header]

    answer = await app.post(body, headers)

    assert answer.status == 401
    assert answer.body["reason"] == "missing_headers" and header in answer.body["message"]


async def test_a_secret_we_do_not_know_is_refused(app: IntegrationApp) -> None:
    answer = await app.send(event("customer.upserted", customer_data()), secret=STRANGER_SECRET)

    assert answer.status == 401
    assert await app.count("customers") == 0


async def test_a_rotated_secret_is_accepted_beside_the_old_one(
    database_url: str, keyring_path: Path
) -> None:
    async with integration_app(
        database_url, keyring_path, secrets=f"{SECRET}, {NEW_SECRET}"
    ) as app:
        by_old = await app.send(event("customer.upserted", customer_data()), secret=SECRET)
        by_new = await app.send(event("customer.upserted", customer_data()), secret=NEW_SECRET)
        # A sender mid-rotation signs with both: any one matching signature will do.
        body = json.dumps(event("customer.upserted", customer_data())).encode()
        headers = signed_headers(body, secret=STRANGER_SECRET)
        both = signed_headers(body, secret=NEW_SECRET, webhook_id=headers["webhook-id"])
        headers["webhook-signature"] += " " + both["webhook-signature"]
        by_both = await app.post(body, headers)
    assert (by_old.status, by_new.status, by_both.status) == (200, 200, 200)

    async with integration_app(database_url, keyring_path, secrets=NEW_SECRET) as app:
        retired = await app.send(event("customer.upserted", customer_data()), secret=SECRET)
    assert retired.status == 401


async def test_without_configured_secrets_nothing_is_accepted(
    database_url: str, keyring_path: Path
) -> None:
    async with integration_app(database_url, keyring_path, secrets="") as app:
        answer = await app.send(event("customer.upserted", customer_data()))
    assert answer.status == 401 and answer.body["reason"] == "not_configured"


async def test_a_garbled_signature_header_is_a_401_not_a_crash(app: IntegrationApp) -> None:
    body = json.dumps(event("customer.upserted", customer_data())).encode()
    headers = signed_headers(body)
    for garbage in ["v1", "v1,%%%", "nonsense with spaces", "v2,abc v1"]:
        headers["webhook-signature"] = garbage
        assert (await app.post(body, headers)).status == 401
    headers = signed_headers(body)
    headers["webhook-timestamp"] = "not-a-number"
    assert (await app.post(body, headers)).status == 401


# --- validation ------------------------------------------------------------------------------


def _locs(answer: Any) -> list[list[Any]]:
    return [e["loc"] for e in answer.body["errors"]]


@pytest.mark.parametrize(
    ("amount", "why"),
    [(640.93, "a fraction"), (64093.0, "a float"), ("64093", "a string"), (True, "a boolean")],
)
async def test_money_that_is_not_an_integer_number_of_satang_is_refused(
    app: IntegrationApp, amount: object, why: str
) -> None:
    bill = await _customer_with_bill(app)
    payment = payment_data(bill, amount_satang=amount)

    answer = await app.send(event("payment.succeeded", payment))

    assert answer.status == 422, why
    assert _locs(answer) == [["data", "amount_satang"]]
    assert await _paid_satang(app, bill["reference"]) == 0


async def test_invalid_fields_are_listed_with_their_paths(app: IntegrationApp) -> None:
    customer = customer_data(phone="+66 81 234", language="fr", nickname="extra")
    customer["service_accounts"] = [{"number": "0812345678", "kind": "satellite", "plan": "x"}]
    del customer["address"]

    answer = await app.send(event("customer.upserted", customer))

    assert answer.status == 422
    assert sorted(_locs(answer), key=str) == sorted(
        [
            ["data", "address"],
            ["data", "phone"],
            ["data", "language"],
            ["data", "nickname"],
            ["data", "service_accounts", 0, "kind"],
        ],
        key=str,
    )
    assert all(e["msg"] and e["type"] for e in answer.body["errors"])
    assert "+66 81 234" not in json.dumps(answer.body)  # the input is not echoed


async def test_an_unknown_type_is_422_naming_the_known_ones(app: IntegrationApp) -> None:
    answer = await app.send({"type": "invoice.paid", "data": {}})

    assert answer.status == 422
    assert _locs(answer) == [["type"]]
    assert "payment.succeeded" in answer.body["errors"][0]["msg"]


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[]", b'"text"', b"null", b'{"type": "bill.issued"']
)
async def test_a_body_that_is_not_an_event_object_gets_a_4xx(
    app: IntegrationApp, body: bytes
) -> None:
    answer = await app.post(body, signed_headers(body))

    assert answer.status in (400, 422)
    assert answer.body["error"] in ("malformed", "invalid_event")


async def test_a_body_that_is_not_utf8_is_400(app: IntegrationApp) -> None:
    body = b'{"type": "\xff"}'
    headers = signed_headers(b"{}")

    answer = await app.post(body, headers)

    assert answer.status == 400


async def test_an_oversized_body_is_413(app: IntegrationApp) -> None:
    body = json.dumps(event("customer.upserted", customer_data(address="ก" * 300_000))).encode()

    answer = await app.post(body, signed_headers(body))

    assert answer.status == 413


async def test_thai_emoji_and_sql_looking_text_are_stored_as_given(app: IntegrationApp) -> None:
    sneaky = "Robert'); DROP TABLE customers;-- 😈 สมชาย"
    customer = customer_data(name=sneaky, address="ที่อยู่ 🏠 ' OR 1=1 --")

    answer = await app.send(event("customer.upserted", customer))

    assert answer.status == 200
    async with app.container.db.uow() as uow:
        stored = await uow.customers.get_by_account_no(customer["account_no"])
    assert stored is not None and stored.name == sneaky


async def test_a_webhook_id_that_is_not_printable_ascii_is_422(app: IntegrationApp) -> None:
    body = json.dumps(event("customer.upserted", customer_data())).encode()

    answer = await app.post(body, signed_headers(body, webhook_id="x" * 129))

    assert answer.status == 422
    assert _locs(answer) == [["header", "webhook-id"]]


# --- idempotency ----------------------------------------------------------------------------


async def test_a_redelivery_returns_the_first_answer_with_no_second_effect(
    app: IntegrationApp,
) -> None:
    bill = await _customer_with_bill(app)
    body = json.dumps(event("payment.succeeded", payment_data(bill, amount_satang=1_000))).encode()
    headers = signed_headers(body, webhook_id="msg_bank_0001")

    first = await app.post(body, headers)
    again = await app.post(body, signed_headers(body, webhook_id="msg_bank_0001"))

    assert first.status == again.status == 200
    assert again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await _paid_satang(app, bill["reference"]) == 1_000
    assert await app.count("payments") == 1


async def test_a_webhook_id_reused_for_another_body_is_409(app: IntegrationApp) -> None:
    first = await app.send(event("customer.upserted", customer_data()), webhook_id="msg_dup")
    other = await app.send(event("customer.upserted", customer_data()), webhook_id="msg_dup")

    assert (first.status, other.status) == (200, 409)
    assert other.body["error"] == "webhook_id_reused"
    assert await app.count("customers") == 1


async def test_concurrent_redeliveries_of_one_id_have_one_effect(app: IntegrationApp) -> None:
    bill = await _customer_with_bill(app)
    body = json.dumps(event("payment.succeeded", payment_data(bill, amount_satang=2_500))).encode()

    answers = await asyncio.gather(
        *(app.post(body, signed_headers(body, webhook_id="msg_storm")) for _ in range(8))
    )

    assert [a.status for a in answers] == [200] * 8
    assert len({json.dumps(a.body, sort_keys=True) for a in answers}) == 1
    assert await _paid_satang(app, bill["reference"]) == 2_500
    assert await app.count("payments") == 1
    assert await app.count("integration_inbox") == 3  # customer, bill, payment


async def test_concurrent_new_ids_for_one_payment_record_it_once(app: IntegrationApp) -> None:
    bill = await _customer_with_bill(app)
    payment = event("payment.succeeded", payment_data(bill, amount_satang=3_000))

    answers = await asyncio.gather(*(app.send(payment) for _ in range(5)))

    assert sorted(a.body["result"]["outcome"] for a in answers) == ["duplicate"] * 4 + ["recorded"]
    assert await _paid_satang(app, bill["reference"]) == 3_000


async def test_a_refused_event_is_not_remembered_so_its_retry_can_succeed(
    app: IntegrationApp,
) -> None:
    customer = customer_data()
    bill = event("bill.issued", bill_data(customer))

    early = await app.send(bill, webhook_id="msg_bill_early")
    await app.send(event("customer.upserted", customer))
    retried = await app.send(bill, webhook_id="msg_bill_early")

    assert early.status == 422 and _locs(early) == [["data", "account_no"]]
    assert retried.status == 200 and retried.body["result"]["bill"] == "created"


async def test_nothing_is_kept_and_no_2xx_is_sent_when_the_work_fails_before_commit(
    app: IntegrationApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    bill = await _customer_with_bill(app)
    real = web_integrations.apply_event

    async def fails_after_the_work(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise RuntimeError("the process died here")

    monkeypatch.setattr(web_integrations, "apply_event", fails_after_the_work)
    payment = event("payment.succeeded", payment_data(bill))
    failed = await app.send(payment, webhook_id="msg_crash")
    monkeypatch.setattr(web_integrations, "apply_event", real)
    retried = await app.send(payment, webhook_id="msg_crash")

    assert failed.status == 500
    assert retried.status == 200 and retried.body["result"]["outcome"] == "recorded"
    assert await _paid_satang(app, bill["reference"]) == bill["amount_satang"]


# --- what the events do ----------------------------------------------------------------------


async def test_a_bank_confirms_payments_and_the_linked_chat_hears_of_them(
    app: IntegrationApp,
) -> None:
    bill = await _customer_with_bill(app, amount=50_000)
    async with app.container.db.uow() as uow:
        owner = await uow.customers.get_by_account_no(bill["account_no"])
        assert owner is not None
        user = f.user(owner)
        await uow.users.add(user)
        await uow.links.link(
            ChatLink(Channel.TELEGRAM, "tg-42", user.id, owner.id, datetime.now(UTC))
        )
        conversation = await uow.conversations.load_for_update("telegram", "tg-42", "th")
        conversation.language = "en"
        await uow.conversations.save(conversation)
        await uow.commit()

    part = await app.send(event("payment.succeeded", payment_data(bill, amount_satang=20_000)))
    rest = await app.send(event("payment.succeeded", payment_data(bill, amount_satang=35_000)))

    assert part.body["result"]["bill_status"] == "partly_paid"
    assert part.body["result"]["outstanding_satang"] == 30_000
    assert rest.body["result"] | {"event_id": None} == {
        "outcome": "recorded",
        "payment_id": rest.body["result"]["payment_id"],
        "bill_reference": bill["reference"],
        "amount_satang": 35_000,
        "applied_satang": 30_000,
        "excess_satang": 5_000,
        "outstanding_satang": 0,
        "bill_status": "paid",
        "event_id": None,
    }
    assert await _paid_satang(app, bill["reference"]) == 55_000
    async with app.container.db.engine.connect() as conn:
        queued = (
            await conn.execute(
                select(t.outbox.c.id).where(
                    t.outbox.c.chat_id == "tg-42", t.outbox.c.kind == "chat"
                )
            )
        ).all()
        events_out = (
            (
                await conn.execute(
                    select(ti.integration_events.c.type).order_by(ti.integration_events.c.id)
                )
            )
            .scalars()
            .all()
        )
    assert len(queued) == 2
    assert events_out == ["payment.recorded", "payment.recorded"]
    assert Conversation  # the chat's language (en) was used: see the unit tests for texts


async def test_a_payment_for_no_known_bill_is_recorded_as_unmatched(app: IntegrationApp) -> None:
    bill = await _customer_with_bill(app)

    answer = await app.send(event("payment.succeeded", payment_data(bill, ref2="NOSUCHBILL1")))

    assert answer.status == 200 and answer.body["result"]["outcome"] == "unmatched"
    assert await app.count("payments") == 1
    assert await _paid_satang(app, bill["reference"]) == 0


async def test_a_payment_id_reused_with_another_amount_is_409(app: IntegrationApp) -> None:
    bill = await _customer_with_bill(app)
    payment = payment_data(bill, amount_satang=1_000)
    await app.send(event("payment.succeeded", payment))

    answer = await app.send(event("payment.succeeded", payment | {"amount_satang": 2_000}))

    assert answer.status == 409
    assert await _paid_satang(app, bill["reference"]) == 1_000


async def test_a_reversal_gives_the_amount_back_to_the_bill(app: IntegrationApp) -> None:
    bill = await _customer_with_bill(app)
    payment = payment_data(bill)
    await app.send(event("payment.succeeded", payment))
    reversal = {"payment_id": payment["payment_id"], "reversed_at": "2026-11-26T09:00:00+07:00"}

    answer = await app.send(event("payment.reversed", reversal))
    unknown = await app.send(event("payment.reversed", reversal | {"payment_id": "NOPE"}))

    assert answer.status == 200 and answer.body["result"]["outcome"] == "reversed"
    assert answer.body["result"]["outstanding_satang"] == bill["amount_satang"]
    assert await _paid_satang(app, bill["reference"]) == 0
    assert unknown.status == 422 and _locs(unknown) == [["data", "payment_id"]]


async def test_bill_updated_changes_the_amount_and_keeps_what_was_paid(
    app: IntegrationApp,
) -> None:
    bill = await _customer_with_bill(app, amount=50_000)
    await app.send(event("payment.succeeded", payment_data(bill, amount_satang=10_000)))

    answer = await app.send(event("bill.updated", bill | {"amount_satang": 40_000}))
    same = await app.send(event("bill.updated", bill | {"amount_satang": 40_000}))

    assert answer.body["result"]["bill"] == "updated"
    assert answer.body["result"]["outstanding_satang"] == 30_000
    assert same.body["result"]["bill"] == "unchanged"
    assert await _paid_satang(app, bill["reference"]) == 10_000


async def test_customer_upserted_again_replaces_the_record_and_adds_numbers(
    app: IntegrationApp,
) -> None:
    customer = customer_data()
    await app.send(event("customer.upserted", customer))
    changed = customer | {
        "address": "ที่อยู่ใหม่ 🚚",
        "service_accounts": [
            {"number": customer["phone"], "kind": "mobile", "plan": "เน็ต 999"},
            {"number": "021234567", "kind": "fixed", "plan": "บ้าน 100"},
        ],
    }

    answer = await app.send(event("customer.upserted", changed))

    assert answer.body["result"] == {
        "customer": "updated",
        "account_no": customer["account_no"],
        "service_accounts_added": 1,
        "service_accounts_updated": 1,
    }
    async with app.container.db.uow() as uow:
        stored = await uow.customers.get_by_account_no(customer["account_no"])
        assert stored is not None and stored.address == "ที่อยู่ใหม่ 🚚"
        plans = sorted(a.plan for a in await uow.customers.service_accounts(stored.id))
    assert plans == ["บ้าน 100", "เน็ต 999"]


async def test_a_number_of_another_customer_is_refused(app: IntegrationApp) -> None:
    first = customer_data()
    await app.send(event("customer.upserted", first))
    second = customer_data()
    second["service_accounts"].append({"number": first["phone"], "kind": "mobile", "plan": "x"})

    answer = await app.send(event("customer.upserted", second))

    assert answer.status == 422
    assert _locs(answer) == [["data", "service_accounts", 1, "number"]]
    assert await app.count("customers") == 1


async def test_customer_deleted_forgets_the_customer_and_unlinks_their_chats(
    app: IntegrationApp,
) -> None:
    bill = await _customer_with_bill(app)
    async with app.container.db.uow() as uow:
        owner = await uow.customers.get_by_account_no(bill["account_no"])
        assert owner is not None
        user = f.user(owner)
        await uow.users.add(user)
        await uow.links.link(ChatLink(Channel.LINE, "U-line", user.id, owner.id, datetime.now(UTC)))
        await uow.commit()

    answer = await app.send(event("customer.deleted", {"account_no": bill["account_no"]}))
    again = await app.send(event("customer.deleted", {"account_no": bill["account_no"]}))

    assert answer.body["result"] == {
        "customer": "deleted",
        "account_no": bill["account_no"],
        "unlinked_chats": 1,
    }
    assert again.body["result"]["customer"] == "absent"
    for table in ("customers", "bills", "chat_links", "service_accounts", "eservice_users"):
        assert await app.count(table) == 0, table
    async with app.container.db.engine.connect() as conn:
        kinds = (await conn.execute(select(ti.integration_events.c.type))).scalars().all()
    assert kinds == ["account.unlinked"]


def test_the_serve_app_has_the_integration_routes() -> None:
    assert web_integrations.setup in default_features()


# --- the recipes in docs/integrations.md work -------------------------------------------------

DOC = (Path(__file__).resolve().parents[2] / "docs" / "integrations.md").read_text(encoding="utf-8")
DOC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DOC_URL = "https://selfcare.example.co.th"


def _code_block(language: str, containing: str) -> str:
    blocks = DOC.split("```" + language + "\n")[1:]
    return next(block.split("```")[0] for block in blocks if containing in block)


async def test_signing_by_hand_as_the_docs_show_is_accepted(
    database_url: str, keyring_path: Path
) -> None:
    namespace: dict[str, Any] = {}
    exec(_code_block("python", "def sign("), namespace)
    body = json.dumps(event("customer.upserted", customer_data())).encode()
    headers = namespace["sign"](DOC_SECRET, "msg_by_hand", body)

    async with integration_app(database_url, keyring_path, secrets=DOC_SECRET) as app:
        answer = await app.post(body, headers | {"content-type": "application/json"})

    assert answer.status == 200


async def test_the_shell_recipe_in_the_docs_is_accepted(
    database_url: str, keyring_path: Path
) -> None:
    async with integration_app(database_url, keyring_path, secrets=DOC_SECRET) as app:
        script = _code_block("sh", "openssl dgst").replace(DOC_URL, app.url)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", script, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()

    assert proc.returncode == 0
    assert json.loads(out)["result"] == {"customer": "absent", "account_no": "1000000001"}


async def test_webhook_ids_older_than_the_window_are_forgotten_by_the_daily_job(
    app: IntegrationApp,
) -> None:
    await app.send(event("customer.upserted", customer_data()), webhook_id="msg_old")
    await app.send(event("customer.upserted", customer_data()), webhook_id="msg_new")
    inbox = ti.integration_inbox
    async with app.container.db.engine.begin() as conn:
        await conn.execute(
            update(inbox)
            .where(inbox.c.webhook_id == "msg_old")
            .values(received_at=datetime.now(UTC) - timedelta(days=31))
        )

    purged = await web_integrations.purge_processed_events(app.container)

    assert purged == 1
    async with app.container.db.engine.connect() as conn:
        left = (await conn.execute(select(inbox.c.webhook_id))).scalars().all()
    assert left == ["msg_new"]


def test_a_malformed_secret_in_the_settings_stops_the_server_with_the_variable_named() -> None:
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="SELFCARE_INTEGRATION_SECRETS"):
        web_integrations.SignatureVerifier.from_setting(f"{SECRET},whsec_!!!")
