"""/mydata: a machine-readable JSON file of what is held about the customer, a short
summary in the chat's language, and an audit entry of the owner's own look."""

from __future__ import annotations

import json

import pytest
from fakes import FakeDatabase
from harness import Chat, joined
from profile_support import (
    ADDRESS,
    EMAIL,
    NAME,
    NATIONAL_ID,
    PHONE,
    assert_language,
    audit,
    button_payloads,
    files,
    link_customer,
    other_customer,
)

from core.i18n import Translator
from core.services.privacy_rights import EXPORT_FORMAT


@pytest.mark.parametrize("how", ["command", "words"])
async def test_mydata_sends_a_json_file_and_a_summary(
    chat: Chat, db: FakeDatabase, t: Translator, how: str
) -> None:
    owner = link_customer(db, chat)
    stranger = other_customer(db)
    if how == "command":
        replies = await chat.command("mydata")
    else:
        replies = await chat.say("ขอสำเนาข้อมูล" if t.lang == "th" else "copy of my data")
    (file,) = files(replies)
    assert file.mime_type == "application/json" and file.filename.endswith(".json")
    document = json.loads(file.content.decode("utf-8"))
    assert document["format"] == EXPORT_FORMAT and document["customer_id"] == owner.id
    (row,) = document["data"]["customers"]
    assert (row["name"], row["address"], row["phone"], row["email"], row["national_id"]) == (
        NAME,
        ADDRESS,
        PHONE,
        EMAIL,
        NATIONAL_ID,
    )
    raw = file.content.decode("utf-8")
    assert stranger.name not in raw and stranger.id not in raw and stranger.phone not in raw
    summary = joined(replies)
    assert t._("📦 A copy of your data") in summary
    assert t.ngettext("• {n} linked chat", "• {n} linked chats", 1).format(n=1) in summary
    assert "help" in button_payloads(replies)  # the main menu follows
    assert_language(replies, t.lang)
    (entry,) = audit(db, "customer.exported")
    assert entry.actor == f"customer:{owner.id}" and entry.details["own"] is True


async def test_mydata_from_an_unlinked_chat_sends_nothing(
    chat: Chat, db: FakeDatabase, t: Translator
) -> None:
    other_customer(db)
    replies = await chat.command("mydata")
    assert files(replies) == []
    assert "link" in button_payloads(replies)
    assert audit(db, "customer.exported") == []
