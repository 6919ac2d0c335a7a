"""``selfcare telegram set-webhook`` registers the webhook with the (stub) Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import tls
from tests.integration.channels_support import PUBLIC_URL, SECRET, channel_env, telegram_stub
from tests.integration.support import run_cli
from tests.stubs.telegram import TelegramStub


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The command does not touch the database: one engine is enough."""
    return f"sqlite+aiosqlite:///{tmp_path / 'selfcare.db'}"


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStub]:
    async with telegram_stub() as stub:
        yield stub


@pytest.fixture
def env(cli_env: dict[str, str], tg: TelegramStub) -> dict[str, str]:
    return channel_env(cli_env, telegram=tg)


async def test_set_webhook_registers_the_url_secret_and_update_kinds(
    env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> None:
    result = await run_cli(env, "telegram", "set-webhook", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert tg.webhook["url"] == PUBLIC_URL + "/webhooks/telegram"
    assert tg.webhook["secret_token"] == SECRET
    assert tg.webhook["allowed_updates"] == ["message", "callback_query", "my_chat_member"]
    assert tg.webhook["has_custom_certificate"] is False  # no self-signed certificate here
    assert "webhook set: " + PUBLIC_URL + "/webhooks/telegram" in result.stdout
    assert SECRET not in result.stdout + result.stderr


async def test_a_self_signed_certificate_is_uploaded(
    env: dict[str, str], tg: TelegramStub, tmp_path: Path
) -> None:
    cert, key = await asyncio.to_thread(
        tls.development_certificate, tmp_path / "certs", ["bot.example.co.th"]
    )
    env = env | {"SELFCARE_TLS_CERT": str(cert), "SELFCARE_TLS_KEY": str(key)}
    result = await run_cli(
        env,
        "telegram",
        "set-webhook",
        "--url",
        "https://bot.example.co.th:8443/webhooks/telegram",
        "--drop-pending-updates",
        "--max-connections",
        "20",
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    assert tg.webhook["certificate"] == await asyncio.to_thread(cert.read_bytes)
    assert tg.webhook["drop_pending_updates"] == "true"
    assert tg.webhook["max_connections"] == 20
    assert "certificate uploaded: yes" in result.stdout

    again = await run_cli(env, "telegram", "set-webhook", "--no-certificate", cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert tg.webhook["certificate"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://bot.example.co.th/webhooks/telegram"], "only calls https://"),
        (["--certificate", "/nonexistent.pem"], "does not exist"),
    ],
)
async def test_set_webhook_refuses_what_telegram_would_not_take(
    env: dict[str, str], tg: TelegramStub, tmp_path: Path, args: list[str], message: str
) -> None:
    result = await run_cli(env, "telegram", "set-webhook", *args, cwd=tmp_path)
    assert result.code == 1
    assert message in result.stderr
    assert tg.calls_to("setWebhook") == []


async def test_set_webhook_needs_the_token_and_the_secret(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = await run_cli(cli_env, "telegram", "set-webhook", cwd=tmp_path)
    assert result.code == 1
    assert "SELFCARE_TELEGRAM_TOKEN" in result.stderr
