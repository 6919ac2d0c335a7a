"""Dialogues, one module per dialogue, assembled in ``core/flows/registry.py``.

A flow is an async function of a :class:`~core.flows.context.FlowContext` (the
conversation state, the event, a unit of work, the time and settings) returning neutral
replies (``core.chat``); the conversation service (``core/services/conversation.py``) loads
and saves the state, checks timeouts and commits the replies to the outbox.
"""

from core.flows.context import (
    PRIVACY_NOTICE_VERSION,
    ConversationSettings,
    FlowContext,
    Handler,
    StepHandler,
)
from core.flows.intents import Intent, detect_intent
from core.flows.registry import ROUTES, default_router
from core.flows.router import Route, Router

__all__ = [
    "PRIVACY_NOTICE_VERSION",
    "ROUTES",
    "ConversationSettings",
    "FlowContext",
    "Handler",
    "Intent",
    "Route",
    "Router",
    "StepHandler",
    "default_router",
    "detect_intent",
]
