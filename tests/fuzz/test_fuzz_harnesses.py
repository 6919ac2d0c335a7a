"""The atheris harnesses in fuzz/ still fit the code they fuzz: each replays its seed
corpus (real update shapes, the OpenAPI examples) and a few hostile inputs, without
atheris. ``make fuzz`` runs them under libFuzzer."""

from __future__ import annotations

import importlib

import pytest

HARNESSES = [
    "chat_text",
    "integration_event",
    "line_webhook",
    "standard_webhooks",
    "telegram_update",
]
HOSTILE = [
    b"",
    b"\x00",
    b"\xff\xfe\xfd",
    b"[" * 5000,
    b'{"update_id": 1, "message": {"text": [1]}}',
    b'{"events": [{"type": "message"}]}',
    b"\x01id\x00123\x00v1,\x00{}",
    b"\x02\xed\xa0\x80\x00\x00\x00",
]


@pytest.mark.parametrize("name", HARNESSES)
def test_a_harness_replays_its_seeds_and_hostile_inputs(name: str) -> None:
    harness = importlib.import_module(f"fuzz.{name}")
    seeds = harness.seeds()
    assert seeds, "a harness starts from real inputs"
    for data in [*seeds, *HOSTILE]:
        harness.test_one_input(data)


def test_every_harness_is_listed() -> None:
    from pathlib import Path

    found = sorted(p.stem for p in (Path(__file__).parents[2] / "fuzz").glob("[!_]*.py"))
    assert found == HARNESSES
