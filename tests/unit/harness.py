"""A chat with the conversation service, as a channel adapter would drive it."""

from __future__ import annotations

import re

from factories import button, command, incoming, text
from fakes import FakeDatabase, FrozenClock

from core.chat import Button, InboundEvent, LinkButton, Reply, TextReply
from core.domain import Conversation
from core.services.conversation import ConversationService, Handled

# Thai script, without the baht sign (U+0E3F), which English amounts use too.
THAI = re.compile(r"[\u0e00-\u0e3e\u0e40-\u0e7f]")


class Chat:
    """One chat on one channel; ``send`` returns what the service queued for it."""

    def __init__(
        self,
        service: ConversationService,
        db: FakeDatabase,
        clock: FrozenClock,
        *,
        channel: str = "terminal",
        chat_id: str = "chat-1",
    ) -> None:
        self.service = service
        self.db = db
        self.clock = clock
        self.channel = channel
        self.chat_id = chat_id
        self.last: Handled | None = None

    def seed(self, *, language: str, seen_privacy_notice: bool = True) -> None:
        """Store the chat's state as if it had talked to the bot before."""
        self.db.state.conversations[(self.channel, self.chat_id)] = Conversation(
            channel=self.channel,
            chat_id=self.chat_id,
            language=language,
            seen_privacy_notice=seen_privacy_notice,
        )

    async def send(self, event: InboundEvent, *, event_id: str | None = None) -> list[Reply]:
        self.last = await self.service.handle(
            incoming(
                event,
                channel=self.channel,
                chat_id=self.chat_id,
                event_id=event_id,
                received_at=self.clock.now(),
            )
        )
        return self.last.replies

    async def say(self, value: str, *, event_id: str | None = None) -> list[Reply]:
        return await self.send(text(value), event_id=event_id)

    async def command(
        self, name: str, arg: str = "", *, event_id: str | None = None
    ) -> list[Reply]:
        return await self.send(command(name, arg), event_id=event_id)

    async def press(self, payload: str, *, event_id: str | None = None) -> list[Reply]:
        return await self.send(button(payload), event_id=event_id)

    @property
    def state(self) -> Conversation:
        found = self.db.conversation(self.channel, self.chat_id)
        assert found is not None, "the conversation was never saved"
        return found


def texts(replies: list[Reply]) -> list[str]:
    return [r.text for r in replies if isinstance(r, TextReply)]


def joined(replies: list[Reply]) -> str:
    return "\n".join(texts(replies))


def buttons(reply: Reply) -> list[Button | LinkButton]:
    assert isinstance(reply, TextReply)
    return [b for row in reply.buttons for b in row]


def payloads(reply: Reply) -> list[str]:
    return [b.payload for b in buttons(reply) if isinstance(b, Button)]


def assert_in_language(replies: list[Reply], lang: str) -> None:
    """Every text is in ``lang``: Thai texts contain Thai script, English ones none."""
    assert replies, "the bot stayed silent"
    for value in texts(replies):
        assert value.strip()
        if lang == "th":
            assert THAI.search(value), value
        else:
            assert not THAI.search(value), value


def ends_with_menu(replies: list[Reply]) -> bool:
    last = replies[-1]
    return isinstance(last, TextReply) and "help" in payloads(last) and "bill" in payloads(last)
