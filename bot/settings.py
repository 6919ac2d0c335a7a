"""Typed settings from ``SELFCARE_*`` environment variables (and an optional ``.env``).

Validated once at start: a bad or missing value stops the program with one line naming
the variable and what it should be (see :func:`load_settings`).
"""

from __future__ import annotations

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
    integration_secrets: str = Field(
        "",
        description="comma-separated whsec_… secrets accepted on signed integration events",
    )
    public_url: str = Field(
        "https://localhost:8443", description="external https URL of this service"
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
    first bad variable (``SELFCARE_PORT: must be … (got 'abc')``)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        name = ENV_PREFIX + str(loc[0]).upper() if loc else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name}: {message}") from None


def settings_help() -> str:
    """A table of every variable with its default and meaning, for ``--help``."""
    lines = []
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "" if default is None else f" (default: {default})"
        lines.append(f"  {ENV_PREFIX}{name.upper()}{shown}\n      {info.description}")
    return "\n".join(lines)
