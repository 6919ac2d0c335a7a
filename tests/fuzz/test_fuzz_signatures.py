"""Fuzzing the signature checks: LINE's ``X-Line-Signature`` and the Standard Webhooks
signatures of integration events (the Telegram secret token is compared in the route:
``test_fuzz_webhooks_http.py``).

Round trip: the right signature is always accepted. Any change to the body, the signature's
bytes, the id or the timestamp (beyond the tolerance), or another secret, is always refused,
and refusing never raises anything but the defined rejection.

Base64 lets several strings decode to the same bytes (the spare bits of the last character;
``standardwebhooks`` even skips characters outside the alphabet), so signatures are mutated
as bytes, not as text: a string that decodes to the right digest *is* the right signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from bot.channels import line
from bot.web.integrations import SignatureRejected, SignatureVerifier
from tests.fuzz.strategies import nasty_text

LINE_SECRET = "0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(b"billing-system-secret-0123456789").decode()
ROTATED = "whsec_" + base64.b64encode(b"the-rotated-secret-abcdefghijklm").decode()
STRANGER = "whsec_" + base64.b64encode(b"nobody-we-know-about-0123456789a").decode()
TOLERANCE = timedelta(minutes=5)
#: Clock movement allowed between signing and verifying in a test (2 shared cores).
SLACK = timedelta(seconds=60)


@st.composite
def _changed_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a bit flipped, cut short, or grown; never ``original`` itself."""
    how = draw(st.sampled_from(["flip", "truncate", "extend"]))
    if how == "flip":
        at = draw(st.integers(0, len(original) - 1))
        bit = 1 << draw(st.integers(0, 7))
        return original[:at] + bytes([original[at] ^ bit]) + original[at + 1 :]
    if how == "truncate":
        return original[: draw(st.integers(0, len(original) - 1))]
    return original + draw(st.binary(min_size=1, max_size=8))


def _line_sign(body: bytes, secret: str = LINE_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# --- LINE --------------------------------------------------------------------------------------


@given(body=st.text().map(str.encode) | st.binary())
def test_line_accepts_its_own_signature_of_any_body(body: bytes) -> None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        # LINE signs UTF-8 JSON only: any other body is refused whatever its signature.
        assert not line.verify_signature(LINE_SECRET, body, _line_sign(body))
        return
    assert line.verify_signature(LINE_SECRET, body, _line_sign(body))


@given(body=st.text().map(str.encode), data=st.data())
def test_line_refuses_a_changed_signature(body: bytes, data: st.DataObject) -> None:
    digest = base64.b64decode(_line_sign(body))
    changed = data.draw(_changed_bytes(digest))
    assert not line.verify_signature(LINE_SECRET, body, base64.b64encode(changed).decode())


@given(body=st.text(min_size=1).map(str.encode), data=st.data())
def test_line_refuses_a_changed_body(body: bytes, data: st.DataObject) -> None:
    changed = data.draw(_changed_bytes(body))
    assume(changed != body)
    assert not line.verify_signature(LINE_SECRET, changed, _line_sign(body))


@given(body=st.text().map(str.encode), secret=st.text(min_size=1))
def test_line_refuses_another_channels_signature(body: bytes, secret: str) -> None:
    assume(secret != LINE_SECRET)
    try:
        signature = _line_sign(body, secret)
    except UnicodeEncodeError:
        return  # not a secret anybody could configure
    assert not line.verify_signature(LINE_SECRET, body, signature)


@given(body=st.binary(max_size=64), signature=nasty_text | st.text())
@example(body=b"{}", signature="\udcff")  # an undecodable header byte, as aiohttp hands it
@example(body=b"{}", signature="")
def test_line_refuses_any_garbage_signature_without_raising(body: bytes, signature: str) -> None:
    assert not line.verify_signature(LINE_SECRET, body, signature)


# --- Standard Webhooks (integration events) ----------------------------------------------------

VERIFIER = SignatureVerifier([SECRET, ROTATED])
_ids = st.text(min_size=1, max_size=64).filter(lambda s: s.strip() != "" and "\x00" not in s)
_bodies = st.text(max_size=300)


def _headers(msg_id: str, at: datetime, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def _signed(
    msg_id: str, body: str, *, secret: str = SECRET, at: datetime | None = None
) -> dict[str, str]:
    moment = at or datetime.now(UTC)
    return _headers(msg_id, moment, Webhook(secret).sign(msg_id, moment, body))


def _refused(body: str, headers: dict[str, str]) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as caught:
        VERIFIER.verify(body, headers)
    return caught.value


@given(msg_id=_ids, body=_bodies, secret=st.sampled_from([SECRET, ROTATED]))
def test_an_event_signed_with_either_secret_is_accepted(
    msg_id: str, body: str, secret: str
) -> None:
    assert VERIFIER.verify(body, _signed(msg_id, body, secret=secret)) == msg_id


@given(msg_id=_ids, body=_bodies, data=st.data())
def test_a_changed_signature_is_refused(msg_id: str, body: str, data: st.DataObject) -> None:
    headers = _signed(msg_id, body)
    digest = base64.b64decode(headers["webhook-signature"].removeprefix("v1,"))
    changed = data.draw(_changed_bytes(digest))
    headers["webhook-signature"] = "v1," + base64.b64encode(changed).decode()
    assert _refused(body, headers).reason == "no_matching_signature"


@given(msg_id=_ids, body=_bodies, other=_bodies)
def test_a_changed_body_is_refused(msg_id: str, body: str, other: str) -> None:
    assume(other != body)
    assert _refused(other, _signed(msg_id, body)).reason == "no_matching_signature"


@given(msg_id=_ids, other=_ids, body=_bodies)
def test_a_changed_webhook_id_is_refused(msg_id: str, other: str, body: str) -> None:
    assume(other != msg_id)
    headers = _signed(msg_id, body)
    headers["webhook-id"] = other
    assert _refused(body, headers).reason == "no_matching_signature"


@given(msg_id=_ids, body=_bodies)
def test_a_strangers_signature_is_refused(msg_id: str, body: str) -> None:
    assert _refused(body, _signed(msg_id, body, secret=STRANGER)).reason == (
        "no_matching_signature"
    )


@given(
    msg_id=_ids,
    body=_bodies,
    seconds=st.integers(int((TOLERANCE + SLACK).total_seconds()), 10**9),
    sign=st.sampled_from([1, -1]),
)
def test_a_timestamp_beyond_five_minutes_is_refused_even_when_signed(
    msg_id: str, body: str, seconds: int, sign: int
) -> None:
    at = datetime.fromtimestamp(time.time() + sign * seconds, UTC)
    headers = _signed(msg_id, body, at=at)
    assert _refused(body, headers).reason == "timestamp_out_of_tolerance"


@given(msg_id=_ids, body=_bodies, seconds=st.integers(0, int((TOLERANCE - SLACK).total_seconds())))
def test_a_timestamp_within_five_minutes_is_accepted(msg_id: str, body: str, seconds: int) -> None:
    at = datetime.fromtimestamp(time.time() - seconds, UTC)
    assert VERIFIER.verify(body, _signed(msg_id, body, at=at)) == msg_id


@given(msg_id=_ids, body=_bodies, timestamp=nasty_text | st.text(max_size=12))
def test_a_timestamp_that_is_not_unix_seconds_is_refused(
    msg_id: str, body: str, timestamp: str
) -> None:
    headers = _signed(msg_id, body)
    assume(timestamp != headers["webhook-timestamp"])
    headers["webhook-timestamp"] = timestamp
    assert _refused(body, headers).reason in (
        "missing_headers",
        "timestamp_out_of_tolerance",
        "no_matching_signature",
    )


_header_values = st.one_of(nasty_text, st.text(max_size=40), st.just("v1,"), st.just("v1,,"))


@given(
    body=_bodies,
    headers=st.fixed_dictionaries(
        {},
        optional={
            "webhook-id": _header_values,
            "webhook-timestamp": _header_values | st.integers().map(str),
            "webhook-signature": _header_values
            | st.lists(
                st.binary(max_size=40).map(lambda b: "v1," + base64.b64encode(b).decode())
            ).map(" ".join),
        },
    ),
)
@example(
    body="{}", headers={"webhook-id": "a", "webhook-timestamp": "1", "webhook-signature": "v1"}
)
@example(
    body="{}", headers={"webhook-id": "a", "webhook-timestamp": "9" * 400, "webhook-signature": "x"}
)
@example(
    body="{}", headers={"webhook-id": "a", "webhook-timestamp": "1e3", "webhook-signature": "v1,ก"}
)
def test_any_garbage_headers_are_refused_with_a_reason(body: str, headers: dict[str, str]) -> None:
    error = _refused(body, headers)
    assert error.reason in (
        "missing_headers",
        "timestamp_out_of_tolerance",
        "no_matching_signature",
    )
    assert error.message
