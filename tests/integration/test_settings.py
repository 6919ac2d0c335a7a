"""Settings: defaults, the environment, a ``.env`` file, and one-line errors that name
the variable (and never echo a secret)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import ENV_PREFIX, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No SELFCARE_ variable from the outside, and a working directory without a .env."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def refusal(**env: str) -> str:
    """The one-line message ``load_settings`` refuses ``env`` with."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()

    assert settings.env == "development" and not settings.is_production
    assert settings.database_url == "sqlite+aiosqlite:///./var/selfcare.db"
    assert settings.keyring_file == Path("./var/keyring.json")
    assert (settings.host, settings.port) == ("127.0.0.1", 8443)
    assert settings.default_language == "th"
    assert settings.telegram_token is None and settings.line_channel_secret is None
    assert (settings.tls_cert, settings.tls_key) == (None, None)
    assert settings.integration_secrets == ""


def test_environment_variables_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+asyncpg://selfcare:pw@db.internal:5432/selfcare?search_path=prod"
    monkeypatch.setenv("SELFCARE_ENV", "production")
    monkeypatch.setenv("SELFCARE_DATABASE_URL", url)
    monkeypatch.setenv("SELFCARE_PORT", "9443")
    monkeypatch.setenv("SELFCARE_DEFAULT_LANGUAGE", "en")
    monkeypatch.setenv("SELFCARE_TELEGRAM_TOKEN", "123456:ABC-telegram-secret")
    monkeypatch.setenv("SELFCARE_INTEGRATION_SECRETS", "whsec_b2xk, whsec_bmV3")
    monkeypatch.setenv("SELFCARE_TLS_CERT", "/etc/selfcare/cert.pem")
    monkeypatch.setenv("SELFCARE_TLS_KEY", "/etc/selfcare/key.pem")

    settings = load_settings()

    assert settings.is_production
    assert (settings.database_url, settings.port, settings.default_language) == (url, 9443, "en")
    assert settings.telegram_token is not None
    assert settings.telegram_token.get_secret_value() == "123456:ABC-telegram-secret"
    assert "ABC-telegram-secret" not in repr(settings)  # secrets stay out of logs
    assert settings.tls_cert == Path("/etc/selfcare/cert.pem")


def test_a_dotenv_file_is_read_and_its_unknown_keys_are_ignored(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    (clean_environment / ".env").write_text(
        "SELFCARE_PORT=10443\n"
        "SELFCARE_OPERATOR_NAME=บริษัท ทดสอบ จำกัด\n"
        "SELFCARE_NO_SUCH_SETTING=whatever\n"
        "DATABASE_URL=mysql://ignored\n"
        "SELFCARE_HOST=0.0.0.0\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SELFCARE_HOST", "10.0.0.5")  # the environment beats the file

    settings = load_settings()

    assert settings.port == 10443
    assert settings.operator_name == "บริษัท ทดสอบ จำกัด"
    assert settings.host == "10.0.0.5"
    assert settings.database_url.startswith("sqlite+aiosqlite://")
    assert not hasattr(settings, "no_such_setting")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SELFCARE_PORT": "abc"}, "SELFCARE_PORT"),
        ({"SELFCARE_PORT": "70000"}, "SELFCARE_PORT"),
        ({"SELFCARE_ENV": "staging"}, "SELFCARE_ENV"),
        ({"SELFCARE_DEFAULT_LANGUAGE": "fr"}, "SELFCARE_DEFAULT_LANGUAGE"),
        ({"SELFCARE_DATABASE_URL": "mysql+aiomysql://u:p@h/db"}, "SELFCARE_DATABASE_URL"),
        ({"SELFCARE_DATABASE_URL": "postgresql://u:p@h/db"}, "SELFCARE_DATABASE_URL"),
        ({"SELFCARE_CONVERSATION_TIMEOUT_MINUTES": "0"}, "SELFCARE_CONVERSATION_TIMEOUT_MINUTES"),
    ],
    ids=lambda v: "-".join(v.values()) if isinstance(v, dict) else None,
)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    message = refusal(**env)
    assert message.startswith(f"{variable}: "), message


def test_an_unknown_database_driver_says_which_drivers_work() -> None:
    message = refusal(SELFCARE_DATABASE_URL="mysql+aiomysql://root:hunter2@db/selfcare")
    assert message.startswith("SELFCARE_DATABASE_URL: ")
    assert "sqlite+aiosqlite://" in message and "postgresql+asyncpg://" in message
    assert "hunter2" not in message


def test_an_integration_secret_without_whsec_prefix_is_refused_without_echoing_it() -> None:
    message = refusal(SELFCARE_INTEGRATION_SECRETS="whsec_b2xk,plain-secret-value")
    assert message.startswith("SELFCARE_INTEGRATION_SECRETS: "), message
    assert "whsec_" in message
    assert "plain-secret-value" not in message and "b2xk" not in message


@pytest.mark.parametrize("given", ["SELFCARE_TLS_CERT", "SELFCARE_TLS_KEY"])
def test_a_tls_certificate_without_its_key_is_refused(given: str) -> None:
    message = refusal(**{given: "/etc/selfcare/tls.pem"})
    assert "SELFCARE_TLS_CERT" in message and "SELFCARE_TLS_KEY" in message, message


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{ENV_PREFIX}{name.upper()} has no description"
