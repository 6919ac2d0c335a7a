"""Atheris harness: the Standard Webhooks check of ``POST /integrations/events``
(``SignatureVerifier.verify``, over the official ``standardwebhooks`` package).

The input is a mode byte then ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``
and the body, separated by NUL bytes. Mode 0: the headers as given must be refused
(``SignatureRejected``: nobody can forge the HMAC). Mode 1: the same id and body, signed
now with our secret, must be accepted. Mode 2: that signature with one decoded byte
changed must be refused. Any other exception is a crash.

Run: ``python -m fuzz.standard_webhooks -max_total_time=60`` (see fuzz/README.md).
"""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime

from fuzz._common import instrumented, run

with instrumented(__name__, ["bot.web.integrations", "standardwebhooks"]):
    from standardwebhooks import Webhook

    from bot.web.integrations import SignatureRejected, SignatureVerifier

SECRET = "whsec_" + base64.b64encode(b"billing-system-secret-0123456789").decode()
VERIFIER = SignatureVerifier([SECRET])


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")  # header bytes as aiohttp hands them on


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    parts = [*rest.split(b"\x00", 3), b"", b"", b"", b""][:4]
    msg_id, timestamp, signature, body = (_text(p) for p in parts)
    if mode == 0:
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
        }
        try:
            VERIFIER.verify(body, headers)
        except SignatureRejected:
            return
        raise AssertionError("unsigned headers were accepted")
    if not msg_id.strip() or "\udc80" <= max(msg_id + body, default=" ") <= "\udcff":
        return  # an empty id is "missing"; undecodable text is refused before signing
    try:
        body.encode("utf-8")
        msg_id.encode("utf-8")
    except UnicodeEncodeError:
        return
    now = datetime.now(UTC)
    signed = Webhook(SECRET).sign(msg_id, now, body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signed,
    }
    if mode == 1:
        if VERIFIER.verify(body, headers) != msg_id:
            raise AssertionError("a correct signature gave another id")
        return
    digest = bytearray(base64.b64decode(signed.removeprefix("v1,")))
    at = int.from_bytes(timestamp.encode("utf-8", "surrogateescape")[:2] or b"\0", "big")
    digest[at % len(digest)] ^= 1 << (at % 8)
    headers["webhook-signature"] = "v1," + base64.b64encode(bytes(digest)).decode()
    try:
        VERIFIER.verify(body, headers)
    except SignatureRejected:
        return
    raise AssertionError("a changed signature was accepted")


def seeds() -> list[bytes]:
    body = b'{"type": "customer.deleted", "data": {"account_no": "1000000001"}}'
    return [
        b"\x00msg_1\x001795644892\x00v1,AAAA\x00" + body,
        b"\x01msg_2\x00\x00\x00" + body,
        b"\x02msg_3\x00ab\x00\x00" + body,
    ]


if __name__ == "__main__":
    run("standard_webhooks", test_one_input, seeds())
    sys.exit(0)
