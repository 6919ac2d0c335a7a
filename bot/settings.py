"""Typed settings from ``SELFCARE_*`` environment variables (and an optional ``.env``).

Validated once at start: a bad or missing value stops the program with one line naming
the variable and what it should be (see :func:`load_settings`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SELFCARE_"


class SettingsError(Exception):
    """A setting is missing or wrong; the message is one line for the operator."""


class Settings(BaseSettings):
    """Every setting of selfcare. The ``description`` of each field is what README and
    ``selfcare serve --help`` show."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["development", "test", "production"] = Field(
        "development",
        description="development | test | production; production refuses a generated "
        "development keyring and a generated TLS certificate",
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./var/selfcare.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///PATH (default) or "
        "postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB",
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="PostgreSQL connections each process keeps open, and as many more "
        "under load: keep processes × 2 × this below the server's max_connections",
    )
    keyring_file: Path = Field(
        Path("./var/keyring.json"),
        description="keyring JSON (mode 0600); generated for development when missing",
    )
    operator_name: str = Field(
        "บริษัท ตัวอย่าง เทเลคอม จำกัด (มหาชน)",
        description="the operator's legal name, shown in the privacy notice",
    )
    operator_contact: str = Field(
        "privacy@example.co.th", description="where customers send privacy requests"
    )
    default_language: Literal["th", "en"] = Field("th", description="th | en")
    conversation_timeout_minutes: int = Field(
        10, ge=1, le=24 * 60, description="idle minutes before a multi-step dialogue expires"
    )
    telegram_token: SecretStr | None = Field(None, description="Telegram bot token")
    telegram_secret_token: SecretStr | None = Field(
        None, description="secret Telegram sends in X-Telegram-Bot-Api-Secret-Token"
    )
    telegram_api_url: str = Field(
        "https://api.telegram.org/bot", description="Bot API base URL (a local server or a stub)"
    )
    line_channel_secret: SecretStr | None = Field(None, description="LINE channel secret")
    line_channel_access_token: SecretStr | None = Field(
        None, description="LINE channel access token"
    )
    line_api_url: str = Field("https://api.line.me", description="LINE Messaging API base URL")
    telegram_messages_per_second: float = Field(
        30,
        gt=0,
        description="Telegram sends per second from one process (Telegram allows about 30 "
        "in all: divide by the number of processes that send)",
    )
    telegram_chat_messages_per_second: float = Field(
        1, gt=0, description="Telegram sends per second to one chat (short bursts of 3 allowed)"
    )
    media_url_ttl: int = Field(
        86400,
        ge=60,
        le=30 * 86400,
        description="seconds a signed /media URL (images and files for LINE) stays valid",
    )
    outbox_lease_seconds: int = Field(
        60,
        ge=5,
        le=3600,
        description="seconds a process may hold outbox messages it is sending before "
        "another process takes them over",
    )
    worker_poll_seconds: float = Field(
        1, gt=0, le=60, description="how often `selfcare worker` looks for replies left to send"
    )
    promotions_per_day_cap: int = Field(
        1,
        ge=1,
        le=100,
        description="promotions one customer gets per day (Bangkok calendar day) at most",
    )
    broadcast_telegram_per_second: float = Field(
        30,
        ge=0,
        le=1000,
        description="Telegram promotion messages per second, all workers together (shared "
        "through the database); 0: no limit, only for benchmarks against a stub",
    )
    line_multicast_batch_size: int = Field(
        500, ge=1, le=500, description="LINE users per multicast request of a campaign (≤500)"
    )
    broadcast_lease_seconds: int = Field(
        120,
        ge=1,
        le=3600,
        description="seconds a worker holds campaign messages it is sending before another "
        "worker takes them over (LINE: sent again with the same retry key; Telegram: "
        "marked failed, never sent twice)",
    )
    integration_secrets: str = Field(
        "",
        description="comma-separated whsec_… secrets accepted on signed integration events",
    )
    webhook_dead_letter_hours: float = Field(
        72,
        gt=0,
        le=30 * 24,
        description="hours an event is retried to a subscriber before its delivery is "
        "dead-lettered (`selfcare integrations replay` sends it again)",
    )
    webhook_timeout_seconds: float = Field(
        10, gt=0, le=120, description="seconds a subscriber has to answer one event"
    )
    public_url: str = Field(
        "https://localhost:8443", description="external https URL of this service"
    )
    promptpay_biller_id: str | None = Field(
        None,
        description="PromptPay biller id for bill-payment QR codes (15 digits: the operator's "
        "tax id and a 2-digit suffix; ref1 = account number, ref2 = bill reference). Outside "
        "production a demo id is used when neither this nor SELFCARE_PROMPTPAY_ID is set",
    )
    promptpay_id: str | None = Field(
        None,
        description="for operators without a biller id: a PromptPay phone number (10 digits) "
        "or tax id (13 digits) that QR codes pay to (no bill references)",
    )
    pay_link_ttl_minutes: int = Field(
        60, ge=5, le=7 * 24 * 60, description="minutes a /pay/{token} payment link stays valid"
    )
    reminder_days_before_due: str = Field(
        "3,1",
        description="comma-separated days before the due date on which customers are reminded "
        "of an unpaid bill (0 = on the due date; empty: no due reminders)",
    )
    sms_gateway_url: str | None = Field(
        None,
        description="HTTP SMS gateway that sends sign-in codes (POST JSON {to, text}); unset: "
        "SMS codes and registration are not offered, except in development, where each "
        "code is printed to the server log and the shell instead",
    )
    sms_gateway_token: SecretStr | None = Field(
        None, description="bearer token for SELFCARE_SMS_GATEWAY_URL"
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="SMTP server that sends email confirmation codes: "
        "smtp://USER:PASSWORD@HOST:587 (STARTTLS, required except on a loopback host) or "
        "smtps://USER:PASSWORD@HOST:465; unset: customers cannot change their email in the "
        "chat, except in development, where each code is printed to the log and the shell",
    )
    email_from: str = Field(
        "no-reply@example.co.th", description="the From address of emails the service sends"
    )
    retention_days: int = Field(
        30,
        ge=2,
        le=3650,
        description="days `selfcare worker` keeps sent messages and idle conversation "
        "state before deleting them (handled-update ids: 3 days, or this if shorter)",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain for `serve`")
    tls_key: Path | None = Field(None, description="PEM private key for `serve`")
    behind_proxy: bool = Field(
        False,
        description="true: serve plain HTTP for a TLS-terminating proxy in front "
        "(trusts X-Forwarded-Proto/-For from it); false: serve terminates TLS itself",
    )
    host: str = Field("127.0.0.1", description="address `serve` listens on")
    port: int = Field(8443, ge=1, le=65535, description="port `serve` listens on")
    metrics_token: SecretStr | None = Field(
        None,
        description="bearer token GET /metrics requires (web and worker); unset: /metrics "
        "answers anyone who reaches it, so keep it off the public address",
    )
    shutdown_timeout_seconds: float = Field(
        20, ge=1, le=300, description="how long SIGTERM waits for requests in flight"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="DEBUG | INFO | WARNING | ERROR"
    )

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("integration_secrets")
    @classmethod
    def _whsec(cls, value: str) -> str:
        for secret in filter(None, (s.strip() for s in value.split(","))):
            if not secret.startswith("whsec_"):
                raise ValueError("each secret must start with whsec_")
        return value

    @field_validator("telegram_secret_token")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's own rule for secret_token in setWebhook.
        secret = value.get_secret_value() if value is not None else None
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("1 to 256 characters A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("promptpay_biller_id")
    @classmethod
    def _biller_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9]{15}", value):
            raise ValueError("must be 15 digits")
        return value

    @field_validator("promptpay_id")
    @classmethod
    def _promptpay_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"0[0-9]{9}|[0-9]{13}", value):
            raise ValueError("must be a phone number like 0812345678 or a 13-digit tax id")
        return value

    @field_validator("sms_gateway_url")
    @classmethod
    def _sms_gateway_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else None
        if url is not None and not re.fullmatch(r"smtps?://([^@/]+@)?[^@/:]+(:[0-9]{1,5})?/?", url):
            raise ValueError("must look like smtp://USER:PASSWORD@HOST:587 or smtps://HOST:465")
        return value

    @field_validator("reminder_days_before_due")
    @classmethod
    def _reminder_days(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not re.fullmatch(r"[0-9]{1,2}", part) or int(part) > 60:
                raise ValueError("comma-separated whole days from 0 to 60, like 3,1")
        return value

    @property
    def reminder_days(self) -> tuple[int, ...]:
        """``reminder_days_before_due`` as numbers, largest first, without repeats."""
        days = {int(p) for p in self.reminder_days_before_due.split(",") if p.strip()}
        return tuple(sorted(days, reverse=True))

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("SELFCARE_TLS_CERT and SELFCARE_TLS_KEY go together")
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raises :class:`SettingsError` with one line naming the
    first bad variable (``SELFCARE_PORT: Input should be a valid integer…``); the
    value itself is never echoed (it may be a secret)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        message = str(first["msg"]).removeprefix("Value error, ")
        if not loc:  # a check across fields: its message names the variables itself
            raise SettingsError(message) from None
        raise SettingsError(f"{ENV_PREFIX}{str(loc[0]).upper()}: {message}") from None


def settings_help() -> str:
    """A table of every variable with its default and meaning, for ``--help``."""
    lines = []
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "" if default is None else f" (default: {default})"
        lines.append(f"  {ENV_PREFIX}{name.upper()}{shown}\n      {info.description}")
    return "\n".join(lines)
