"""Messages to the outside world (SMS, email) sent after the turn's transaction commits.

A flow runs inside one transaction that holds the chat's lock (and, on SQLite, the only
write lock). An SMS gateway or SMTP server that hangs must not hold them: while
:func:`collecting` is active (``ConversationService.handle`` opens it around a turn),
:class:`DeferredSms` and :class:`DeferredEmail` only note the message; the conversation
service sends what was noted once the commit went through, and nothing at all when the
turn rolled back (a flow bug, an outage). Outside a turn they send at once.

The price: a flow no longer learns in the turn that a send failed. The conversation
service tells the customer afterwards, in a message of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from core.ports import EmailSender, SmsSender

__all__ = ["DeferredEmail", "DeferredSms", "Effect", "collecting", "discard"]


@dataclass(frozen=True, slots=True)
class Effect:
    """One message to send after the commit; ``kind`` names it in logs (no content)."""

    kind: str
    send: Callable[[], Awaitable[None]]


_pending: ContextVar[list[Effect] | None] = ContextVar("selfcare_after_commit", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[Effect]]:
    """Collect the effects deferred in this block (this task and what it awaits)."""
    effects: list[Effect] = []
    token = _pending.set(effects)
    try:
        yield effects
    finally:
        _pending.reset(token)


def discard() -> None:
    """Forget what was collected so far: the transaction that wanted it rolled back."""
    effects = _pending.get()
    if effects is not None:
        effects.clear()


def _defer(effect: Effect) -> bool:
    effects = _pending.get()
    if effects is None:
        return False
    effects.append(effect)
    return True


class DeferredSms:
    """An :class:`~core.ports.SmsSender` that sends after the turn's commit."""

    def __init__(self, inner: SmsSender) -> None:
        self._inner = inner

    async def send(self, phone: str, text: str) -> None:
        if not _defer(Effect("sms", lambda: self._inner.send(phone, text))):
            await self._inner.send(phone, text)


class DeferredEmail:
    """An :class:`~core.ports.EmailSender` that sends after the turn's commit."""

    def __init__(self, inner: EmailSender) -> None:
        self._inner = inner

    async def send(self, to: str, subject: str, text: str) -> None:
        if not _defer(Effect("email", lambda: self._inner.send(to, subject, text))):
            await self._inner.send(to, subject, text)
