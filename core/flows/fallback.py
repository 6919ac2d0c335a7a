"""Replies for messages no flow takes, so that nobody is ever left in silence.

Each is one text with the main menu under it, in the chat's language.
"""

from __future__ import annotations

from datetime import timedelta

from core.chat import TextReply
from core.flows.menu import with_menu
from core.i18n import Translator

__all__ = [
    "contact_not_needed",
    "dialogue_expired",
    "not_understood",
    "something_went_wrong",
    "stale_button",
    "unknown_command",
    "unsupported",
]

_MAX_ECHOED_COMMAND = 32


def not_understood(t: Translator) -> TextReply:
    return with_menu(
        t,
        t._(
            'Sorry, I didn\'t catch that. Try a word such as "bill" or "pay", '
            "or choose from the menu below."
        ),
    )


def unknown_command(t: Translator, command: str) -> TextReply:
    text = t._("Sorry, I don't know the command /{command}. Type /help to see what I can do.")
    return with_menu(t, text.format(command=command[:_MAX_ECHOED_COMMAND]))


def stale_button(t: Translator) -> TextReply:
    return with_menu(t, t._("That button is no longer active. Please choose again from the menu."))


def unsupported(t: Translator) -> TextReply:
    return with_menu(
        t,
        t._(
            "Thanks! I can only read text for now, so please type what you need "
            "or choose from the menu below."
        ),
    )


def contact_not_needed(t: Translator) -> TextReply:
    return with_menu(
        t,
        t._("Thanks, but I don't need a phone number right now, so I haven't kept it."),
    )


def dialogue_expired(t: Translator, timeout: timedelta) -> str:
    """The note for a message that arrives after a dialogue's deadline."""
    minutes = max(1, int(timeout.total_seconds() // 60))
    return t.ngettext(
        "The last step expired after {minutes} minute without a reply, so I've cancelled it.",
        "The last step expired after {minutes} minutes without a reply, so I've cancelled it.",
        minutes,
    ).format(minutes=minutes)


def something_went_wrong(t: Translator) -> TextReply:
    """The apology when a flow failed; nothing the customer did was saved."""
    return with_menu(
        t, t._("Sorry, something went wrong on our side. Please try again in a moment.")
    )
