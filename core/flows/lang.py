"""/lang: choose Thai or English; the chat remembers it and every reply uses it.

``/lang`` (or "ภาษา", "language") shows the two languages as buttons and waits for a
choice, which may also be typed ("English", "ไทย"). ``/lang en``, the button ``lang:en``
and text like "English please" switch at once.
"""

from __future__ import annotations

from core.chat import Button, InboundEvent, Reply, TextMessage, TextReply
from core.flows.context import FlowContext
from core.flows.intents import Intent, normalise
from core.flows.menu import with_menu
from core.i18n import SUPPORTED_LANGUAGES

__all__ = ["LANGUAGE_NAMES", "answer", "handle", "parse_language"]

# Each language is named in itself (an endonym), so a reader of either can find theirs.
LANGUAGE_NAMES = {"th": "ภาษาไทย", "en": "English"}

_STEP_CHOOSE = "choose"
_WORDS = {
    "th": ("th", "tha", "thai", "ไทย", "ภาษาไทย"),
    "en": ("en", "eng", "english", "อังกฤษ", "ภาษาอังกฤษ"),
}
_BY_WORD = {normalise(word): lang for lang, words in _WORDS.items() for word in words}
_BY_INTENT = {Intent.LANG_TH: "th", Intent.LANG_EN: "en"}


def parse_language(text: str) -> str | None:
    """The language ``text`` names on its own ("EN", "english", "ไทย"), else None."""
    return _BY_WORD.get(normalise(text).removeprefix("lang "))


def _switch(ctx: FlowContext, lang: str) -> list[Reply]:
    ctx.leave()
    ctx.conversation.language = lang
    t = ctx.t  # the new language's translator
    text = t._("Done. From now on I'll reply in {language}.").format(language=LANGUAGE_NAMES[lang])
    return [with_menu(t, text)]


def _choices(ctx: FlowContext, note: str | None = None) -> list[Reply]:
    t = ctx.t
    ctx.enter(_STEP_CHOOSE)
    question = t._("Which language would you like me to use?")
    buttons = (tuple(Button(LANGUAGE_NAMES[lang], f"lang:{lang}") for lang in SUPPORTED_LANGUAGES),)
    text = question if note is None else f"{note}\n{question}"
    return [TextReply(text=text, buttons=buttons)]


async def handle(ctx: FlowContext) -> list[Reply]:
    """``/lang [code]``, the ``lang[:code]`` buttons and the language intents."""
    chosen = _BY_INTENT.get(ctx.intent) if ctx.intent is not None else None
    if chosen is not None:
        return _switch(ctx, chosen)
    if not ctx.arg.strip():
        return _choices(ctx)
    lang = parse_language(ctx.arg)
    if lang is None:
        return _choices(ctx, ctx.t._("Sorry, I can reply in Thai or English only."))
    return _switch(ctx, lang)


async def answer(ctx: FlowContext, event: InboundEvent) -> list[Reply] | None:
    """A typed answer to "which language?"; None if the message names no language."""
    if not isinstance(event, TextMessage):
        return None
    lang = parse_language(event.text)
    if lang is None:
        return None
    return _switch(ctx, lang)
