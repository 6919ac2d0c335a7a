"""One scripted conversation, played on every channel from the same flow code.

A script is a list of steps (:class:`Say` some text, :class:`Press` the button with a
payload among the last ones shown). Each channel has a driver that plays a step the way
that channel's user would and reads back what the user saw, reduced to what every
channel shows alike (:class:`Seen`: a text and its buttons). The same script must give
the same transcript on the terminal, on Telegram (webhook → PTB → stub Bot API) and on
LINE (signed webhook → SDK → stub Messaging API).

To extend (link → bill → pay): add steps to a script in test_webhooks_transcript.py,
and, for replies other than text (a PromptPay QR image), teach ``Seen`` their form in
each driver's ``_seen``.
"""

from __future__ import annotations

import io
import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.channels import console
from bot.delivery import OutboxDelivery
from core.chat import (
    Button,
    ButtonPress,
    Incoming,
    LinkButton,
    Reply,
    TextReply,
    parse_text,
)
from core.services.conversation import ConversationService
from tests.integration.channels_support import RunningApp
from tests.stubs import line as line_events
from tests.stubs import telegram as telegram_updates
from tests.stubs.line import LineStub
from tests.stubs.telegram import TelegramStub


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Press:
    """Press the button whose payload is ``payload`` among those last shown."""

    payload: str


Step = Say | Press


@dataclass(frozen=True)
class Seen:
    """A reply as its reader saw it: the text, and each button's label and payload (or
    URL), row order flattened (LINE shows buttons in one row)."""

    text: str
    buttons: tuple[tuple[str, str], ...] = ()


class Driver(Protocol):
    name: str

    async def play(self, step: Step) -> list[Seen]: ...


def _seen(reply: Reply) -> Seen:
    assert isinstance(reply, TextReply), f"teach Seen about {type(reply).__name__}"
    buttons = tuple(
        (b.label, b.url if isinstance(b, LinkButton) else b.payload)
        for row in reply.buttons
        for b in row
    )
    return Seen(reply.text, buttons)


# --- terminal ----------------------------------------------------------------------------


class _RecordingConsole(console.ConsoleMessenger):
    """The terminal's own messenger (it prints as usual) that also keeps what it got."""

    def __init__(self, media_dir: Path) -> None:
        super().__init__(io.StringIO(), media_dir)
        self.received: list[Reply] = []

    async def send(self, chat_id: str, reply: Reply) -> None:
        self.received.append(reply)
        await super().send(chat_id, reply)


@dataclass
class TerminalDriver:
    """Plays steps as ``selfcare shell`` does: typed lines, buttons chosen by label."""

    service: ConversationService
    app: RunningApp
    media_dir: Path
    chat_id: str = field(default_factory=lambda: f"term-{uuid.uuid4().hex[:8]}")
    name: str = "terminal"

    def __post_init__(self) -> None:
        self.messenger = _RecordingConsole(self.media_dir)
        self.delivery = OutboxDelivery(
            self.app.container.db, {console.CHANNEL: self.messenger}, self.app.container.clock
        )
        self._refs = itertools.count(1)

    async def play(self, step: Step) -> list[Seen]:
        if isinstance(step, Press):
            label = next(
                c.label
                for c in self.messenger.choices
                if isinstance(c, Button) and c.payload == step.payload
            )
            choice = console.choose(self.messenger.choices, label)  # chosen by its label
            assert isinstance(choice, Button)
            event: Any = ButtonPress(choice.payload)
        else:
            event = parse_text(console.CHANNEL, step.text)
        handled = await self.service.handle(
            Incoming(
                channel=console.CHANNEL,
                chat_id=self.chat_id,
                event_id=f"shell-{uuid.uuid4().hex}",
                event=event,
                received_at=self.app.container.clock.now(),
                message_ref=str(next(self._refs)),
            )
        )
        before = len(self.messenger.received)
        await self.delivery.deliver(handled.outbox_ids)
        return [_seen(r) for r in self.messenger.received[before:]]


# --- Telegram ----------------------------------------------------------------------------


@dataclass
class TelegramDriver:
    app: RunningApp
    stub: TelegramStub
    chat_id: int = 424242
    name: str = "telegram"

    def __post_init__(self) -> None:
        self._last: list[tuple[str, str]] = []

    async def play(self, step: Step) -> list[Seen]:
        if isinstance(step, Press):
            data = next(d for _, d in self._last if d == step.payload)
            update = telegram_updates.callback(self.chat_id, data)
        else:
            update = telegram_updates.text(self.chat_id, step.text)
        before = len(self.stub.sent(str(self.chat_id)))
        response = await self.app.telegram(update)
        assert response.status == 200, response.body
        await self.app.idle()
        seen = []
        for call in self.stub.sent(str(self.chat_id))[before:]:
            assert call.method == "sendMessage", f"teach Seen about {call.method}"
            buttons = tuple(call.buttons())
            if buttons:
                self._last = list(buttons)
            seen.append(Seen(call.text, buttons))
        return seen


# --- LINE --------------------------------------------------------------------------------


@dataclass
class LineDriver:
    app: RunningApp
    stub: LineStub
    user_id: str = "U" + "4" * 32
    name: str = "line"

    def __post_init__(self) -> None:
        self._last: list[tuple[str, str]] = []

    async def play(self, step: Step) -> list[Seen]:
        if isinstance(step, Press):
            data = next(d for _, d in self._last if d == step.payload)
            event = line_events.postback(self.user_id, data)
        else:
            event = line_events.text(self.user_id, step.text)
        before = len(self.stub.delivered())
        response = await self.app.line(event)
        assert response.status == 200, response.body
        await self.app.idle()
        seen = []
        for call in self.stub.delivered()[before:]:
            assert call.body.get("to") in (None, self.user_id)
            for message in call.messages:
                seen.append(self._read(message))
        return seen

    def _read(self, message: dict[str, Any]) -> Seen:
        if message["type"] == "text":
            items = message.get("quickReply", {}).get("items", [])
            buttons = tuple(_action(item["action"]) for item in items)
            text = message["text"]
        else:
            assert message["type"] == "flex", f"teach Seen about {message['type']}"
            bubble = message["contents"]
            text = bubble["body"]["contents"][0]["text"]
            buttons = tuple(_action(b["action"]) for b in bubble["footer"]["contents"])
        if buttons:
            self._last = list(buttons)
        return Seen(text, buttons)


def _action(action: dict[str, Any]) -> tuple[str, str]:
    return action["label"], action.get("data") or action["uri"]


async def transcript(driver: Driver, script: list[Step]) -> list[tuple[Step, list[Seen]]]:
    return [(step, await driver.play(step)) for step in script]
