"""Atheris harness: a LINE webhook body, as ``POST /webhooks/line`` reads it: the
``X-Line-Signature`` check, ``line.parse_body``, then ``line.parse_event`` for each event.

Allowed outcomes: LINE's own signature of a UTF-8 body is accepted and a signature of any
other body is refused, never raising; the body is a list of event objects or the route's
400 (``ValueError``); each event gives a ``LineEvent`` or None and never raises (the route
calls it outside any try: an exception would be a 500).

Run: ``python -m fuzz.line_webhook -max_total_time=60`` (see fuzz/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from datetime import UTC, datetime

from fuzz._common import instrumented, run

with instrumented(__name__, ["bot.channels.line", "core.chat", "linebot.v3.webhooks"]):
    from bot.channels import line

NOW = datetime(2026, 11, 25, tzinfo=UTC)
SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 - the harness's own


def _sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


def test_one_input(data: bytes) -> None:
    try:
        data.decode("utf-8")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    if line.verify_signature(SECRET, data, _sign(data)) != utf8:
        raise AssertionError("LINE's own signature was judged wrongly")
    if line.verify_signature(SECRET, data, _sign(data + b"x")):
        raise AssertionError("the signature of another body was accepted")
    # The body's first bytes, as a header value, must be refused without raising.
    line.verify_signature(SECRET, data, data[:44].decode("utf-8", "surrogateescape"))
    try:
        events = line.parse_body(data)
    except ValueError:
        return  # the route's 400
    for raw in events:
        line.parse_event(raw, NOW)


def seeds() -> list[bytes]:
    from tests.stubs import line as shapes

    user = "U0123456789abcdef0123456789abcdef"
    events = [
        shapes.text(user, "บิล"),
        shapes.postback(user, "lang:en"),
        shapes.sticker(user),
        shapes.follow(user),
        shapes.unfollow(user),
        shapes.account_link(user, "nonce-123"),
    ]
    return [shapes.body(e) for e in events] + [json.dumps({"events": []}).encode()]


if __name__ == "__main__":
    run("line_webhook", test_one_input, seeds())
    sys.exit(0)
