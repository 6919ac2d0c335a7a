"""Use cases: what the channels and the web pages ask the core to do.

The names below are loaded on first use: flows (``core/flows``) import use-case modules
such as ``core.services.billing``, and the conversation service imports the flows, so an
eager import here would make the two packages import each other half-initialised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.services.conversation import ConversationService, ConversationSettings, Handled

__all__ = ["ConversationService", "ConversationSettings", "Handled"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from core.services import conversation

        return getattr(conversation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
