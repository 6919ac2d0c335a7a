"""The terminal channel: ``selfcare shell --chat-id ID [--lang th|en]``.

Reads lines from a terminal (with line editing) or a pipe, runs each through the same
conversation service and outbox as the web server, and prints the replies. Buttons show
as ``[1] label`` and are chosen by number or by label; images and files are written
under a folder and their paths printed. End of input ends the session cleanly.
"""

from __future__ import annotations

import asyncio
import getpass
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bot.delivery import OutboxDelivery
from core.chat import (
    Button,
    ButtonPress,
    DeleteUserMessage,
    FileReply,
    ImageReply,
    InboundEvent,
    Incoming,
    LinkButton,
    Reply,
    SharedContact,
    TextReply,
    parse_text,
)
from core.domain import Channel
from core.ports import Clock
from core.services.conversation import ConversationService

CHANNEL = Channel.TERMINAL.value


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """The "share my number" button of a reply, as the terminal offers it."""

    label: str


Choice = Button | LinkButton | ContactRequest


class ConsoleMessenger:
    """Prints replies for one terminal chat and remembers the buttons last shown."""

    def __init__(self, out: TextIO, media_dir: Path) -> None:
        self._out = out
        self._media_dir = media_dir
        self._files = 0
        self.choices: list[Choice] = []
        # The last text asked for a secret (a password): read the answer without echo.
        self.secret = False

    def _print(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    async def _save(self, filename: str, content: bytes) -> Path:
        self._files += 1
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename) or "file"
        path = self._media_dir / f"{self._files:03d}-{safe}"

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)

        await asyncio.to_thread(write)
        return path.resolve()

    async def send(self, chat_id: str, reply: Reply) -> None:
        match reply:
            case TextReply():
                self.secret = reply.secret
                self._print(reply.text)
                choices: list[Choice] = [b for row in reply.buttons for b in row]
                if reply.request_contact:
                    choices.append(ContactRequest(reply.request_contact))
                if choices:
                    self.choices = choices
                    number = 0
                    rows: list[list[Choice]] = [list(row) for row in reply.buttons]
                    if reply.request_contact:
                        rows.append([ContactRequest(reply.request_contact)])
                    for row in rows:
                        cells = []
                        for choice in row:
                            number += 1
                            cells.append(f"[{number}] {_label(choice)}")
                        self._print("  ".join(cells))
                self._print()
            case ImageReply():
                path = await self._save(reply.filename, reply.png)
                self._print(f"🖼  {path}" + (f"\n{reply.caption}" if reply.caption else ""))
                self._print()
            case FileReply():
                path = await self._save(reply.filename, reply.content)
                self._print(f"📎 {path}" + (f"\n{reply.caption}" if reply.caption else ""))
                self._print()
            case DeleteUserMessage():
                # A terminal cannot take back what was typed; say that it would have been.
                self._print("🗑")


def _label(choice: Choice) -> str:
    if isinstance(choice, LinkButton):
        return f"{choice.label} → {choice.url}"
    if isinstance(choice, ContactRequest):
        return f"📱 {choice.label}"
    return choice.label


def choose(choices: list[Choice], line: str) -> Choice | None:
    """The button ``line`` names, by its number or its label (ignoring case and emoji)."""
    text = line.strip()
    if text.isdigit() and 1 <= int(text) <= len(choices):
        return choices[int(text) - 1]
    wanted = _plain(text)
    if not wanted:
        return None
    for choice in choices:
        if _plain(choice.label) == wanted:
            return choice
    return None


def _plain(text: str) -> str:
    return " ".join("".join(c for c in text if c.isalnum() or c.isspace()).split()).casefold()


class LineReader:
    """Lines from a terminal (prompt, line editing) or a pipe, read off the event loop."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.interactive = stream.isatty()
        if self.interactive:
            import readline  # noqa: F401 - importing it gives input() line editing

    async def read(self, prompt: str = "› ") -> str | None:
        if self.interactive:
            try:
                return await asyncio.to_thread(input, prompt)
            except EOFError:
                return None
        line = await asyncio.to_thread(self._stream.readline)
        return None if line == "" else line.rstrip("\r\n")

    async def read_secret(self, prompt: str = "🔑 ") -> str | None:
        """A line typed without echo (a password) on a terminal; a pipe's next line."""
        if not self.interactive:
            return await self.read()
        try:
            return await asyncio.to_thread(getpass.getpass, prompt)
        except EOFError:
            return None


async def run_shell(
    *,
    service: ConversationService,
    delivery: OutboxDelivery,
    messenger: ConsoleMessenger,
    reader: LineReader,
    out: TextIO,
    chat_id: str,
    clock: Clock,
    send_start: bool = True,
) -> None:
    """Talk to the bot as chat ``chat_id`` until end of input."""
    sequence = 0

    async def submit(event: InboundEvent) -> None:
        nonlocal sequence
        sequence += 1
        handled = await service.handle(
            Incoming(
                channel=CHANNEL,
                chat_id=chat_id,
                event_id=f"shell-{uuid.uuid4().hex}",
                event=event,
                received_at=clock.now(),
                message_ref=str(sequence),
            )
        )
        await delivery.deliver(handled.outbox_ids)

    if send_start:
        await submit(parse_text(CHANNEL, "/start"))
    while True:
        secret = messenger.secret
        line = await (reader.read_secret() if secret else reader.read())
        if line is None:
            break
        if not reader.interactive:
            # A piped transcript shows both sides, but never a password.
            shown = "•" * 8 if secret and line.strip() else line
            print(f"› {shown}", file=out, flush=True)
        if not line.strip():
            continue
        choice = choose(messenger.choices, line)
        if isinstance(choice, Button):
            await submit(ButtonPress(choice.payload))
        elif isinstance(choice, LinkButton):
            print(choice.url, file=out, flush=True)
        elif isinstance(choice, ContactRequest):
            phone = await reader.read("📱 ")
            if phone is None:
                break
            await submit(SharedContact(phone=phone.strip(), is_own=True))
        else:
            await submit(parse_text(CHANNEL, line))
