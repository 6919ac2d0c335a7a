"""Atheris harness: the body of ``POST /integrations/events`` and a line of
``selfcare import``, through the strict pydantic models (``core.integration_events``).

Allowed outcomes: an event (or a customer or bill line), or ``EventError`` naming at least
one field by its path (the 422) or saying the body is not JSON (the 400). Any other
exception is a crash (a 500 that the sender would retry).

Run: ``python -m fuzz.integration_event -max_total_time=60`` (see fuzz/README.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from fuzz._common import instrumented, run

with instrumented(__name__, ["core.integration_events", "pydantic"]):
    from core.integration_events import (
        EventError,
        parse_bill_line,
        parse_customer_line,
        parse_event,
    )

PARSERS: tuple[Callable[[bytes], Any], ...] = (parse_event, parse_customer_line, parse_bill_line)


def test_one_input(data: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(data)
        except EventError as exc:
            if not exc.errors:
                raise AssertionError("a refusal without a reason") from None
            for error in exc.errors:
                if not all(isinstance(part, str | int) for part in error.loc):
                    raise AssertionError(f"a field path of another type: {error.loc!r}") from None
                json.dumps(error.as_json())
                error.path()


def seeds() -> list[bytes]:
    from bot.web.integrations import EXAMPLES

    events = [json.dumps(e, ensure_ascii=False).encode() for e in EXAMPLES.values()]
    lines = [json.dumps(e["data"], ensure_ascii=False).encode() for e in EXAMPLES.values()]
    return events + lines


if __name__ == "__main__":
    run("integration_event", test_one_input, seeds())
    sys.exit(0)
