"""The same conversation on the terminal, Telegram and LINE, from the same flow code: every
channel shows the same texts and the same buttons, step by step (tests/integration/
transcript.py plays it). Extend SCRIPT as flows land (link → bill → pay)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.integration.channels_support import line_api_stub, running_app, telegram_stub
from tests.integration.transcript import (
    LineDriver,
    Press,
    Say,
    Step,
    TelegramDriver,
    TerminalDriver,
    transcript,
)

THAI = re.compile(r"[\u0e00-\u0e7f]")

SCRIPT: list[Step] = [
    Say("/start"),
    Press("help"),
    Say("/lang en"),
    Say("help"),
    Say("what is the weather like?"),
    Press("privacy"),
    Press("lang"),
    Press("lang:th"),
    Say("สวัสดีค่ะ 😀"),
    Say("/nosuchcommand"),
]


async def test_the_same_conversation_reads_the_same_on_every_channel(
    database_url: str, keyring_path: Path, tmp_path: Path
) -> None:
    async with (
        telegram_stub() as tg,
        line_api_stub() as ln,
        running_app(database_url, keyring_path, telegram=tg, line=ln) as app,
    ):
        service = await asyncio.to_thread(app.container.conversation_service)
        terminal = await transcript(TerminalDriver(service, app, tmp_path / "media"), SCRIPT)
        telegram = await transcript(TelegramDriver(app, tg), SCRIPT)
        line = await transcript(LineDriver(app, ln), SCRIPT)

    for (step, on_terminal), (_, on_telegram), (_, on_line) in zip(
        terminal, telegram, line, strict=True
    ):
        assert on_terminal, f"silence after {step}"
        assert on_telegram == on_terminal, step
        assert on_line == on_terminal, step

    # The script did what it says: Thai first, English after /lang en, Thai again.
    first, english, back = terminal[0][1], terminal[3][1], terminal[8][1]
    assert "/privacy" in first[0].text
    assert not THAI.search(english[-1].text)
    assert THAI.search(back[-1].text)
