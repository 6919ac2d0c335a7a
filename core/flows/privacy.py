"""/privacy: the bot's own privacy notice, and the short form shown on first contact.

The notice's version is ``ConversationSettings.privacy_notice_version`` (default
``core.flows.context.PRIVACY_NOTICE_VERSION``): change both together.
"""

from __future__ import annotations

from core.chat import Reply
from core.flows.context import ConversationSettings, FlowContext
from core.flows.menu import with_menu
from core.i18n import Translator

__all__ = ["contact_line", "full_notice", "handle", "short_notice"]


def contact_line(t: Translator, settings: ConversationSettings) -> str:
    """Who to contact about personal data: the configured contact, else the operator."""
    if settings.privacy_contact:
        return settings.privacy_contact
    return t._("{operator}'s customer service").format(operator=settings.operator_name)


def full_notice(t: Translator, settings: ConversationSettings) -> str:
    operator = settings.operator_name
    paragraphs = (
        t._("🔒 Privacy notice for this chat (version {version})").format(
            version=settings.privacy_notice_version
        ),
        t._(
            "This chat service is run by {operator}. This notice explains what happens "
            "to your personal data when you use it."
        ).format(operator=operator),
        t._(
            "What we collect: the ID of this chat, the e-service User ID you link to it, "
            "and the account details needed to show your bills, take your payments and "
            "keep your profile up to date (name, address, phone number, email). "
            "Nothing more."
        ),
        t._(
            "Why: to do what you ask here (bills, payments, changes to your details) "
            "and, only if you agree, to send you promotions."
        ),
        t._(
            "How we protect it: every connection is encrypted with TLS and your personal "
            "data is stored encrypted. It is decrypted only when you ask for it or when "
            "authorised staff need it for a task; staff see only what their role allows, "
            "and every access is recorded and audited."
        ),
        t._(
            "Promotions: you get them only if you opt in (/consent), and every promotion "
            "has a one-tap opt-out."
        ),
        t._(
            "Any other use of your data needs your consent first; we will ask and "
            "record your answer."
        ),
        t._(
            "Your rights under Thailand's Personal Data Protection Act (PDPA): get a copy "
            "of your data (/mydata), have wrong data corrected (/profile), have the data "
            "this chat service keeps about you erased (/forget), and withdraw a consent "
            "at any time."
        ),
        t._("Questions and requests: {contact}.").format(contact=contact_line(t, settings)),
    )
    return "\n\n".join(paragraphs)


def short_notice(t: Translator, settings: ConversationSettings) -> str:
    """The first layer of the notice, shown once before the first reply to a chat."""
    return t._(
        "Before we start: {operator} uses what you share in this chat only to help with "
        "your requests. It travels and is stored encrypted, and promotions come only if "
        "you say yes. Read the full notice any time: /privacy"
    ).format(operator=settings.operator_name)


async def handle(ctx: FlowContext) -> list[Reply]:
    ctx.conversation.seen_privacy_notice = True
    return [with_menu(ctx.t, full_notice(ctx.t, ctx.settings))]
