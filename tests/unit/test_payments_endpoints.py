"""Checks on subscriber endpoints, made before anything is stored."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.integration_events import OUTBOUND_EVENT_TYPES
from core.services.integrations import (
    check_endpoint_url,
    check_event_types,
    check_webhook_secret,
    new_webhook_secret,
)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "http://crm.example.com/hook",
        "https://user:pw@crm.example.com/hook",
        "https://",
        "not a url",
        "https://crm.example.com:99999/hook",
        "https://" + "a" * 2000 + ".com",
    ],
)
def test_a_url_that_is_not_an_https_address_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_endpoint_url(url)
    assert caught.value.field == "url"


def test_plain_http_is_allowed_on_loopback_or_when_asked() -> None:
    assert check_endpoint_url("http://127.0.0.1:8080/hook")
    assert check_endpoint_url("http://crm.internal/hook", allow_http=True)


def test_event_types_are_checked_and_star_means_all() -> None:
    assert check_event_types(["*"]) == OUTBOUND_EVENT_TYPES
    assert check_event_types([" payment.recorded", "account.linked "]) == (
        "account.linked",
        "payment.recorded",
    )
    with pytest.raises(InvalidInput, match=r"unknown invoice\.paid"):
        check_event_types(["invoice.paid"])
    with pytest.raises(InvalidInput):
        check_event_types(["", " "])


def test_generated_secrets_are_standard_webhooks_secrets_and_differ() -> None:
    first, second = new_webhook_secret(), new_webhook_secret()
    assert first != second
    assert check_webhook_secret(first) == first
    for bad in ["secret", "whsec_!!!", "whsec_c2hvcnQ="]:
        with pytest.raises(InvalidInput):
            check_webhook_secret(bad)
