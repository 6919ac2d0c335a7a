"""What a flow is given: the conversation, the event, a unit of work, the time, settings.

A flow handler is ``async def handle(ctx: FlowContext) -> list[Reply]``. It reads and
mutates ``ctx.conversation`` (language, the dialogue's flow/step/data/deadline) and returns
neutral replies; it never commits, sends or sleeps: the conversation service does that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from core.chat import InboundEvent, Incoming, Reply
from core.domain import Conversation
from core.errors import InvalidInput
from core.i18n import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, Translator, translator

if TYPE_CHECKING:
    from core.flows.intents import Intent
    from core.flows.router import Router
    from core.ports import UnitOfWork
    from core.services.billing import PaymentSettings

_S = TypeVar("_S")

__all__ = [
    "PRIVACY_NOTICE_VERSION",
    "ConversationSettings",
    "FlowContext",
    "Handler",
    "StepHandler",
    "clear_dialogue",
]

# The version of the notice in core/flows/privacy.py: bump it whenever that text changes.
PRIVACY_NOTICE_VERSION = "2026-11-1"


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """How the conversation behaves for one operator.

    ``timeout`` is how long a multi-step dialogue waits for the next answer;
    ``privacy_contact`` (e.g. "privacy@example.co.th, call 1100") is shown in the privacy
    notice and wherever a customer is sent to exercise a right by other means;
    ``payments`` says how bills are paid (``core.services.billing.PaymentSettings``)."""

    operator_name: str
    timeout: timedelta = timedelta(minutes=10)
    default_language: str = DEFAULT_LANGUAGE
    privacy_notice_version: str = PRIVACY_NOTICE_VERSION
    privacy_contact: str = ""
    # How bills are paid (PromptPay ids, payment pages); None: no QR codes in this chat.
    payments: PaymentSettings | None = None

    def __post_init__(self) -> None:
        if not self.operator_name.strip():
            raise InvalidInput("operator_name", "must not be empty")
        if self.timeout <= timedelta(0):
            raise InvalidInput("timeout", "must be positive")
        if self.default_language not in SUPPORTED_LANGUAGES:
            raise InvalidInput("default_language", f"must be one of {SUPPORTED_LANGUAGES}")


def clear_dialogue(conversation: Conversation) -> None:
    """Leave whatever multi-step dialogue the chat was in (language and notice stay)."""
    conversation.flow = None
    conversation.step = None
    conversation.data = {}
    conversation.deadline = None


@dataclass(frozen=True, slots=True)
class FlowContext:
    """Everything one handler run may use. ``flow`` is the name of the route being run,
    ``arg`` the command argument or button suffix (``/lang en``, ``lang:en``), ``intent``
    the intent free text was understood as."""

    conversation: Conversation
    incoming: Incoming
    uow: UnitOfWork
    now: datetime
    settings: ConversationSettings
    router: Router
    flow: str = ""
    arg: str = ""
    intent: Intent | None = field(default=None)
    # Use cases with ports of their own (hashing, SMS…), by type, as the composition root
    # wired them: a flow asks with ``ctx.service(LinkingService)``.
    services: Mapping[type[Any], object] = field(default_factory=dict)

    @property
    def event(self) -> InboundEvent:
        return self.incoming.event

    def service(self, kind: type[_S]) -> _S:
        """The ``kind`` use-case object wired into the conversation service; raises
        LookupError when it was not (a wiring bug, not a customer's mistake)."""
        found = self.services.get(kind)
        if not isinstance(found, kind):
            raise LookupError(f"{kind.__name__} is not wired into the conversation service")
        return found

    @property
    def t(self) -> Translator:
        """The translator of the chat's language *now* (a flow may just have changed it)."""
        return translator(self.conversation.language)

    def enter(self, step: str, data: dict[str, object] | None = None) -> None:
        """Start or advance this flow's dialogue: the next free text goes to its step
        handler, until ``settings.timeout`` from now. Only a routed handler may call it."""
        if not self.flow:
            raise RuntimeError("enter() called outside a routed flow")
        self.conversation.flow = self.flow
        self.conversation.step = step
        self.conversation.data = dict(data or {})
        self.conversation.deadline = self.now + self.settings.timeout

    def leave(self) -> None:
        """End the current dialogue."""
        clear_dialogue(self.conversation)


Handler = Callable[[FlowContext], Awaitable[list[Reply]]]
"""Runs a command, button or intent routed to a flow."""

StepHandler = Callable[[FlowContext, InboundEvent], Awaitable[list[Reply] | None]]
"""Takes the next message of a dialogue the flow is in; ``None`` means "that was no answer
to my question": the dialogue is left and the message is routed as if none were active."""
