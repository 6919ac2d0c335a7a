"""Routing an inbound event to the flow that handles it.

A :class:`Route` names a flow and says which commands and intents reach it; button payloads
reach the route of the same name (``"lang"`` or ``"lang:en"``, the part after the colon
being the argument). The table of routes is ``core/flows/registry.py``.

Order of routing:
1. a command goes to its route; a button to the route named by its payload; an event
   type a route claims (``Route.events``) to that route;
2. other messages while a dialogue is active go to that flow's step handler, except a
   cancel word (which cancels);
3. free text goes to the route of its intent; anything else gets a friendly fallback.
A command or button of another flow leaves the active dialogue first (unless the route
says ``keeps_dialogue``, as /cancel does, which needs to see what it cancels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from core.chat import (
    ButtonPress,
    CommandMessage,
    Reply,
    SharedContact,
    TextMessage,
    UnsupportedMessage,
)
from core.flows import fallback
from core.flows.context import FlowContext, Handler, StepHandler, clear_dialogue
from core.flows.intents import Intent, detect_intent

__all__ = ["Route", "Router"]

_Key = TypeVar("_Key")


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the registry.

    ``handler`` runs for the route's commands, its button payloads and its intents;
    ``step`` takes the next message while the chat is in this flow's dialogue;
    ``placeholder`` marks a feature that is not built yet (help says "coming soon")."""

    name: str
    handler: Handler
    commands: tuple[str, ...] = ()
    intents: tuple[Intent, ...] = ()
    step: StepHandler | None = None
    keeps_dialogue: bool = False
    placeholder: bool = False
    # Inbound event types (beside text, commands and buttons) this route takes whatever
    # the chat is doing, e.g. LINE's AccountLinkResult for "link".
    events: tuple[type[object], ...] = ()
    # Steps whose answer is a secret (a password): a cancel word there is the answer, so
    # the step still takes it (and deletes the message); /cancel still cancels.
    secret_steps: tuple[str, ...] = ()


class Router:
    """The routes of the bot, looked up by name, command and intent."""

    def __init__(self, routes: Iterable[Route]) -> None:
        """Raises ``ValueError`` when two routes claim the same name, command or intent."""
        self.routes: tuple[Route, ...] = tuple(routes)
        self._by_name: dict[str, Route] = {}
        self._by_command: dict[str, Route] = {}
        self._by_intent: dict[Intent, Route] = {}
        self._by_event: dict[type[object], Route] = {}
        for route in self.routes:
            if not route.name or ":" in route.name:
                raise ValueError(f"bad route name {route.name!r}")
            _claim(self._by_name, route.name, route, "route name")
            for command in route.commands:
                _claim(self._by_command, command, route, "command")
            for intent in route.intents:
                _claim(self._by_intent, intent, route, "intent")
            for event_type in route.events:
                _claim(self._by_event, event_type, route, "event type")

    def route(self, name: str) -> Route | None:
        return self._by_name.get(name)

    def for_command(self, command: str) -> Route | None:
        return self._by_command.get(command.lower())

    def for_intent(self, intent: Intent) -> Route | None:
        return self._by_intent.get(intent)

    def is_available(self, command: str) -> bool:
        """True when ``/command`` reaches a flow that is built (not a placeholder)."""
        route = self.for_command(command)
        return route is not None and not route.placeholder

    async def run(
        self, route: Route, ctx: FlowContext, *, arg: str = "", intent: Intent | None = None
    ) -> list[Reply]:
        """Run ``route``'s handler, leaving another flow's dialogue first."""
        conversation = ctx.conversation
        if not route.keeps_dialogue and conversation.flow not in (None, route.name):
            clear_dialogue(conversation)
        return await route.handler(
            dataclasses.replace(ctx, flow=route.name, arg=arg, intent=intent)
        )

    async def run_command(
        self, ctx: FlowContext, command: str, arg: str = ""
    ) -> list[Reply] | None:
        """Run ``/command arg`` as if typed; None when no route has that command."""
        route = self.for_command(command)
        if route is None:
            return None
        return await self.run(route, ctx, arg=arg)

    async def dispatch(self, ctx: FlowContext) -> list[Reply]:
        """The replies to ``ctx.event`` (whatever the routed handler returns)."""
        event = ctx.event
        t = ctx.t
        if isinstance(event, CommandMessage):
            replies = await self.run_command(ctx, event.name, event.arg)
            return replies if replies is not None else [fallback.unknown_command(t, event.name)]
        if isinstance(event, ButtonPress):
            name, _, arg = event.payload.partition(":")
            route = self.route(name)
            if route is None:
                return [fallback.stale_button(t)]
            return await self.run(route, ctx, arg=arg)
        by_event = self._by_event.get(type(event))
        if by_event is not None:
            return await self.run(by_event, ctx)

        answered = await self._continue_dialogue(ctx)
        if answered is not None:
            return answered
        match event:
            case TextMessage(text=text):
                intent = detect_intent(text)
                route = self.for_intent(intent) if intent is not None else None
                if route is None:
                    return [fallback.not_understood(t)]
                return await self.run(route, ctx, intent=intent)
            case SharedContact():
                return [fallback.contact_not_needed(t)]
            case UnsupportedMessage():
                return [fallback.unsupported(t)]
        return [fallback.not_understood(t)]

    async def _continue_dialogue(self, ctx: FlowContext) -> list[Reply] | None:
        conversation = ctx.conversation
        if conversation.flow is None:
            return None
        route = self.route(conversation.flow)
        if route is None or route.step is None:
            # A dialogue of a flow that no longer exists (or has no steps): drop it.
            clear_dialogue(conversation)
            return None
        event = ctx.event
        if (
            isinstance(event, TextMessage)
            and conversation.step not in route.secret_steps
            and detect_intent(event.text) is Intent.CANCEL
        ):
            cancel = self.for_intent(Intent.CANCEL)
            if cancel is not None:
                return await self.run(cancel, ctx, intent=Intent.CANCEL)
        replies = await route.step(dataclasses.replace(ctx, flow=route.name), event)
        if replies is None:
            clear_dialogue(conversation)
        return replies


def _claim(table: dict[_Key, Route], key: _Key, route: Route, what: str) -> None:
    if key in table:
        raise ValueError(f"{what} {key!r} claimed by both {table[key].name} and {route.name}")
    table[key] = route
