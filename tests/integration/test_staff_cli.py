"""``selfcare staff``, ``selfcare audit verify`` and ``selfcare broadcast`` as an operator
runs them: subprocesses against both databases."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.bootstrap import SystemClock
from core.domain import StaffRole
from core.services.staff import StaffService
from storage.uow import Database
from tests.integration import factories
from tests.integration.broadcast_support import (
    WORKER_COMMAND,
    add_customer,
    broadcast_values,
    worker_env,
)
from tests.integration.support import CliResult, run_cli
from tests.stubs.broadcast_telegram import BroadcastTelegramStub

TOKEN = re.compile(r"^sc_[A-Za-z0-9_-]{43}$")


def one_line_error(result: CliResult, *needles: str) -> str:
    assert result.code == 1, (result.stdout, result.stderr)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("selfcare: ")
    for needle in needles:
        assert needle in line, line
    return line


# --- staff -----------------------------------------------------------------------------------


async def test_staff_add_token_and_disable(
    cli_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    added = await run_cli(
        cli_env, "staff", "add", "Anna.K", "--role", "marketer", "--role", "support",
        "--chat", "telegram:123456", cwd=tmp_path,
    )  # fmt: skip
    assert added.code == 0, added.stderr
    assert "staff anna.k added with roles marketer, support" in added.stdout

    issued = await run_cli(cli_env, "staff", "token", "anna.k", "--days", "30", cwd=tmp_path)
    assert issued.code == 0, issued.stderr
    token = issued.stdout.strip()
    assert TOKEN.match(token)
    assert token not in issued.stderr
    service = StaffService(db.uow, SystemClock())
    member = await service.authenticate(token)
    assert member is not None and member.roles == {StaffRole.MARKETER, StaffRole.SUPPORT}

    listed = await run_cli(cli_env, "staff", "list", cwd=tmp_path)
    assert re.search(r"anna\.k\s+active\s+marketer, support", listed.stdout), listed.stdout

    disabled = await run_cli(cli_env, "staff", "disable", "anna.k", cwd=tmp_path)
    assert disabled.code == 0 and "revoked" in disabled.stdout
    assert await service.authenticate(token) is None
    refused = await run_cli(cli_env, "staff", "token", "anna.k", cwd=tmp_path)
    one_line_error(refused, "disabled")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("staff", "add", "x", "--role", "admin"), "handle"),
        (("staff", "add", "ok.name", "--role", "admin", "--chat", "sms:1"), "chat"),
        (("staff", "disable", "nobody"), "no staff member nobody"),
        (("staff", "token", "nobody"), "no staff member nobody"),
        (("staff", "token", "nobody", "--days", "0"), "--days"),
    ],
)
async def test_staff_commands_explain_bad_input_in_one_line(
    cli_env: dict[str, str], tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    one_line_error(await run_cli(cli_env, *args, cwd=tmp_path), needle)


async def test_a_taken_handle_is_refused(cli_env: dict[str, str], tmp_path: Path) -> None:
    first = await run_cli(cli_env, "staff", "add", "somchai", "--role", "admin", cwd=tmp_path)
    assert first.code == 0, first.stderr
    again = await run_cli(cli_env, "staff", "add", "somchai", "--role", "support", cwd=tmp_path)
    one_line_error(again, "taken")


# --- the audit chain -----------------------------------------------------------------------------


async def _append_entries(db: Database, count: int) -> None:
    for n in range(count):
        async with db.uow() as uow:
            await uow.audit.append(factories.audit_entry(details={"fields": ["name"], "n": n}))
            await uow.commit()


async def _disable_trigger(db: Database) -> None:
    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            await conn.execute(text("DROP TRIGGER audit_log_no_update"))
            await conn.execute(text("DROP TRIGGER audit_log_no_delete"))


async def _ids(db: Database) -> list[int]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text("SELECT id FROM audit_log ORDER BY id"))).scalars())


async def test_the_database_refuses_to_change_or_delete_audit_entries(db: Database) -> None:
    await _append_entries(db, 2)
    first = (await _ids(db))[0]
    for statement in (
        f"UPDATE audit_log SET actor = 'staff:someone-else' WHERE id = {first}",
        f"DELETE FROM audit_log WHERE id = {first}",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.engine.begin() as conn:
                await conn.execute(text(statement))
    assert len(await _ids(db)) == 2


async def test_audit_verify_passes_an_intact_chain(
    cli_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    await _append_entries(db, 5)
    result = await run_cli(cli_env, "audit", "verify", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert re.fullmatch(r"audit log intact: 5 entries, head [0-9a-f]{64}\n", result.stdout)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ('UPDATE audit_log SET details = \'{"fields": [], "n": 99}\' WHERE id = {id}', "edited"),
        ("UPDATE audit_log SET actor = 'staff:nobody' WHERE id = {id}", "edited"),
        ("DELETE FROM audit_log WHERE id = {id}", "removed"),
    ],
    ids=["details-edited", "actor-edited", "entry-removed"],
)
async def test_audit_verify_reports_the_first_broken_link(
    cli_env: dict[str, str], tmp_path: Path, db: Database, tamper: str, reason: str
) -> None:
    await _append_entries(db, 6)
    ids = await _ids(db)
    await _disable_trigger(db)
    async with db.engine.begin() as conn:
        await conn.execute(text(tamper.replace("{id}", str(ids[2]))))
        # A later edit too: only the first broken link is reported.
        await conn.execute(text(f"UPDATE audit_log SET action = 'x' WHERE id = {ids[4]}"))

    result = await run_cli(cli_env, "audit", "verify", cwd=tmp_path)
    broken_at = ids[3] if reason == "removed" else ids[2]
    line = one_line_error(result, f"audit log broken at entry {broken_at} ", reason)
    assert "the 2 entries before it are intact" in line


async def test_audit_verify_catches_a_rewritten_hash_at_the_next_entry(
    cli_env: dict[str, str], tmp_path: Path, db: Database
) -> None:
    """Editing an entry and recomputing its own hash breaks the next entry's link."""
    from storage.repositories import audit_hash

    await _append_entries(db, 4)
    ids = await _ids(db)
    await _disable_trigger(db)
    async with db.engine.begin() as conn:
        row = (
            (await conn.execute(text(f"SELECT * FROM audit_log WHERE id = {ids[1]}")))
            .mappings()
            .one()
        )
        forged = factories.audit_entry(
            actor="staff:forger", action=row["action"], subject=row["subject"],
            details={"fields": ["name"], "n": 1}, at=factories.T0,
        )  # fmt: skip
        new_hash = audit_hash(row["prev_hash"], forged)
        await conn.execute(
            text("UPDATE audit_log SET actor = 'staff:forger', hash = :h WHERE id = :id"),
            {"h": new_hash, "id": ids[1]},
        )
    result = await run_cli(cli_env, "audit", "verify", cwd=tmp_path)
    one_line_error(result, f"entry {ids[2]} ", f"does not follow entry {ids[1]}")


# --- broadcast -------------------------------------------------------------------------------


async def test_a_marketer_creates_previews_sends_and_watches_a_campaign_from_the_terminal(
    db: Database, database_url: str, keyring_path: Path, tmp_path: Path
) -> None:
    telegram = BroadcastTelegramStub()
    await telegram.start()
    values = broadcast_values(database_url, keyring_path, telegram_url=telegram.base_url)
    env = worker_env(values)
    worker: asyncio.subprocess.Process | None = None
    try:
        recipients = [await add_customer(db, channels=["telegram"]) for _ in range(12)]
        await run_cli(env, "staff", "add", "mali", "--role", "marketer",
                      "--chat", "telegram:424242", cwd=tmp_path)  # fmt: skip
        created = await run_cli(
            env, "broadcast", "create", "--title", "ปีใหม่", "--text-th", "สวัสดีปีใหม่ 🎆",
            "--text-en", "Happy new year 🎆", "--link-url", "https://example.co.th/ny",
            "--link-label-th", "ดูโปร", "--link-label-en", "See offer", cwd=tmp_path,
        )  # fmt: skip
        assert created.code == 0, created.stderr
        campaign_id = created.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{32}", campaign_id)

        preview = await run_cli(env, "broadcast", "preview", campaign_id, "--staff", "mali",
                                cwd=tmp_path)  # fmt: skip
        assert preview.code == 0, preview.stderr
        worker = await asyncio.create_subprocess_exec(
            *WORKER_COMMAND, env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await telegram.wait_until(lambda: telegram.per_chat()["424242"] == 1, within=60)

        sent = await run_cli(env, "broadcast", "send", campaign_id, "--follow", cwd=tmp_path)
        assert sent.code == 0, sent.stderr
        assert f"campaign {campaign_id} (done): 12 recipients: sent 12" in sent.stdout
        assert "sending" in sent.stderr or "done" in sent.stderr  # the progress bar
        for r in recipients:
            assert telegram.per_chat()[r.chats["telegram"]] == 1

        status = await run_cli(env, "broadcast", "status", campaign_id, cwd=tmp_path)
        assert status.code == 0 and "ปีใหม่" in status.stdout and "sent 12" in status.stdout
        cancelled = await run_cli(env, "broadcast", "cancel", campaign_id, cwd=tmp_path)
        one_line_error(cancelled, "finished or cancelled already")
        listed = await run_cli(env, "broadcast", "list", cwd=tmp_path)
        assert campaign_id in listed.stdout and "done" in listed.stdout
    finally:
        if worker is not None:
            worker.terminate()
            await worker.wait()
        await telegram.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("broadcast", "create", "--title", "t", "--text-th", "ก", "--text-en", "a",
          "--link-url", "http://plain.example"), "--link-url"),
        (("broadcast", "create", "--title", "t", "--text-th", " ", "--text-en", "a"), "--text-th"),
        (("broadcast", "status", "0" * 32), "no such campaign"),
        (("broadcast", "send", "nope"), "no such campaign"),
        (("broadcast", "send", "0" * 32, "--at", "tomorrow"), "--at"),
        (("broadcast", "preview", "0" * 32, "--staff", "ghost"), "no staff member ghost"),
    ],
)  # fmt: skip
async def test_broadcast_commands_explain_bad_input_in_one_line(
    cli_env: dict[str, str], tmp_path: Path, args: tuple[str, ...], needle: str
) -> None:
    one_line_error(await run_cli(cli_env, *args, cwd=tmp_path), needle)
