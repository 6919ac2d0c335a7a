"""Atheris harness: what a customer types, through ``parse_text`` (commands) and the
intent detection (``normalise``, ``detect_intent``) that route free text to a flow.

The input bytes are decoded as UTF-8, a byte that is not UTF-8 becoming a lone surrogate
(the worst a JSON ``\\ud800`` escape can hand us). Allowed outcome: a command with an ASCII
lower-case name or the text unchanged, and an intent or None. Any exception is a crash.

Run: ``python -m fuzz.chat_text -max_total_time=60`` (see fuzz/README.md).
"""

from __future__ import annotations

import sys

from fuzz._common import instrumented, run

with instrumented(__name__, ["core.chat", "core.flows.intents"]):
    from core.chat import CommandMessage, parse_text
    from core.flows.intents import detect_intent, normalise


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    event = parse_text("telegram", text)
    if isinstance(event, CommandMessage):
        if not (event.name.isascii() and event.name == event.name.lower()):
            raise AssertionError(f"a command name {event.name!r}")
    elif event.text != text:
        raise AssertionError("free text was changed")
    normalise(text)
    detect_intent(text)


def seeds() -> list[bytes]:
    from tests.fuzz.strategies import TRICKY

    return [s.encode("utf-8", "surrogatepass") for s in TRICKY]


if __name__ == "__main__":
    run("chat_text", test_one_input, seeds())
    sys.exit(0)
