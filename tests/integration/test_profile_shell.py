"""The issue's "done when", as an operator would try it in ``selfcare shell`` (a subprocess,
Thai and English, SQLite and PostgreSQL): the profile masked then shown in full, a consent
given with one tap, /mydata writing a JSON file under the media folder, and /forget, after
which the chat is unlinked and a raw dump of the database holds no trace of the customer.

The chat is linked through the repositories; signing in through the chat is the linking
feature's own transcript."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.demo import DEMO_USER_ID, demo_customers
from core.domain import Channel, ChatLink, ConsentPurpose
from core.i18n import translator
from core.masking import mask_email, mask_phone
from storage import tables as t
from storage.uow import Database
from tests.integration.privacy_support import raw_dump, search_forms
from tests.integration.support import find_values, run_cli

DEMO = demo_customers()[0][0]
FILE_LINE = re.compile(r"^📎 (\S+\.json)$", re.MULTILINE)
TRANSLATORS = {lang: translator(lang) for lang in ("th", "en")}  # loaded at collection


async def _link(db: Database, chat_id: str) -> str:
    async with db.uow() as uow:
        user = await uow.users.get_by_user_id(DEMO_USER_ID)
        assert user is not None
        await uow.links.link(
            ChatLink(Channel.TERMINAL, chat_id, user.id, user.customer_id, datetime.now(UTC))
        )
        await uow.commit()
    return user.customer_id


@pytest.mark.parametrize("lang", ["th", "en"])
async def test_profile_consent_mydata_and_forget_in_the_shell(
    cli_env: dict[str, str], db: Database, database_url: str, tmp_path: Path, lang: str
) -> None:
    tr = TRANSLATORS[lang]
    seeded = await run_cli(cli_env, "demo", "seed", cwd=tmp_path)
    assert seeded.code == 0, seeded.stderr
    chat_id = f"profile-{lang}"
    customer_id = await _link(db, chat_id)
    media = tmp_path / "media"

    def label(text: str) -> str:  # a button, chosen by its label as a person would
        return tr._(text)

    lines = [
        "/profile",
        label("👁 Show in full"),
        "/consent",
        label("Promotions"),
        "/mydata",
        "/forget",
        label("🗑 Yes, erase my data"),
        "/profile",
    ]
    shell = await run_cli(
        cli_env,
        "shell",
        "--chat-id",
        chat_id,
        "--lang",
        lang,
        "--media-dir",
        str(media),
        "--no-start",
        stdin="\n".join(lines) + "\n",
        cwd=tmp_path,
    )
    assert shell.code == 0, shell.stderr
    out = shell.stdout
    parts = re.split(r"^› .*$", out, flags=re.MULTILINE)[1:]
    assert len(parts) == len(lines), out
    profile, full, consent, given, mydata, ask, erased, after = parts

    # /profile: masked; "show in full": every value, and the look is audited
    assert mask_phone(DEMO.phone) in profile and mask_email(DEMO.email or "") in profile
    for value in (DEMO.name, DEMO.address, DEMO.phone, DEMO.email or ""):
        assert value not in profile
        assert value in full
    assert tr._("👤 Your profile") in profile and tr._("👤 Your details in full") in full

    # /consent: one tap gives the promotions consent
    assert consent.count(tr._("not given")) == 3
    assert (
        tr._("✅ Thank you. Consent given: {purpose}.").format(purpose=tr._("Promotions")) in given
    )

    # /mydata: a JSON file under the media folder, and a summary in the chat's language
    (path,) = FILE_LINE.findall(mydata)
    file = Path(path)
    assert file.parent == await asyncio.to_thread(media.resolve)
    document = json.loads(await asyncio.to_thread(file.read_text, encoding="utf-8"))
    (row,) = document["data"]["customers"]
    assert (row["name"], row["phone"], row["national_id"]) == (
        DEMO.name,
        DEMO.phone,
        DEMO.national_id,
    )
    assert [r["purpose"] for r in document["data"]["consent_ledger"]] == [
        ConsentPurpose.MARKETING.value
    ]
    assert any(r["action"] == "customer.view" for r in document["data"]["audit_log"])
    assert tr._("📦 A copy of your data") in mydata

    # /forget: asked, confirmed, done; the chat is no longer linked
    assert tr._("This cannot be undone. Are you sure?") in ask
    assert (
        tr.ngettext(
            "✅ Done. I have erased the data this chat service kept about you and unlinked "
            "your {n} chat.",
            "✅ Done. I have erased the data this chat service kept about you and unlinked "
            "your {n} chats.",
            1,
        ).format(n=1)
        in erased
    )
    assert tr._("Please link this chat to your e-service account first.") in after

    async with db.uow() as uow:
        assert await uow.links.get("terminal", chat_id) is None
        assert await uow.customers.get(customer_id) is None
        assert await uow.users.get_by_user_id(DEMO_USER_ID) is None
    async with db.engine.connect() as conn:
        actions = (await conn.execute(select(t.audit_log.c.action))).scalars().all()
    assert actions[-1] == "customer.erased"

    values = search_forms(
        {
            "name": DEMO.name,
            "address": DEMO.address,
            "phone": DEMO.phone,
            "email": DEMO.email or "",
            "national id": DEMO.national_id or "",
            "account no": DEMO.account_no,
        }
    )
    dump = await raw_dump(db, database_url)
    leaks = find_values(dump, values)
    assert not leaks, f"the erased customer is still in the raw database: {leaks}"
    other = demo_customers()[1][0]
    assert other.account_no.encode() in dump  # the search finds what is there
