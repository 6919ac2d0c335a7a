"""/link: connect this chat to the customer's e-service User ID.

The customer first accepts the privacy notice (the acceptance is recorded in the consent
ledger when the link is made), then chooses a way to sign in:

- ``password``: User ID, then password, typed here; the password message is deleted at
  once (Telegram) or never shown (terminal). Not offered on LINE, which cannot delete it;
- ``web``: a one-time page ``/link/{token}`` (10 minutes, once, for this chat only);
- ``otp`` and ``register``: a 6-digit SMS code to the number on file
  (``core/flows/link_sms.py``), which also lets a customer without a User ID create one.

``/link <method>`` and the ``link:<method>`` buttons go straight to a way (after the
notice); ``/start link-<token>`` brings back a page link. LINE's ``accountLink`` event
(:class:`~core.chat.AccountLinkResult`) completes LINE's own account-link flow. A chat that
is linked already sees its linked chats instead (``core/flows/unlink.py``).
"""

from __future__ import annotations

import re

from core.chat import (
    AccountLinkResult,
    Button,
    InboundEvent,
    LinkButton,
    Reply,
    SharedContact,
    TextMessage,
    TextReply,
)
from core.flows import link_sms, unlink
from core.flows.context import FlowContext
from core.flows.link_common import (
    METHODS,
    STEP_ACCEPT,
    STEP_CODE,
    STEP_METHOD,
    STEP_NEW_PASSWORD,
    STEP_NEW_USER_ID,
    STEP_PASSWORD,
    STEP_PHONE,
    STEP_USER_ID,
    accepted_notice,
    can_delete_messages,
    delete_secret,
    linked_replies,
    linking,
    method_choice,
    paused_reply,
)
from core.flows.menu import with_menu
from core.services.linking import (
    MAX_USER_ID_INPUT,
    AccountLinkDeclined,
    AccountLinkInvalid,
    PageLinkProblem,
    SignedIn,
    SignInPaused,
    WrongCredentials,
)

__all__ = ["SECRET_STEPS", "answer", "handle"]

#: Steps whose answer is a password: a cancel word there is taken as the answer (and deleted).
SECRET_STEPS = (STEP_PASSWORD, STEP_NEW_PASSWORD)
# A page link's token (secrets.token_urlsafe(32)) as it arrives in /start link-<token>.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")


async def handle(ctx: FlowContext) -> list[Reply]:
    """``/link [method|token]``, the ``link[:…]`` buttons, the LINK intent and LINE's
    account-link event."""
    if isinstance(ctx.event, AccountLinkResult):
        return await _finish_line_account_link(ctx, ctx.event)
    conversation = ctx.conversation
    current = await ctx.uow.links.get(conversation.channel, conversation.chat_id)
    if current is not None:
        return await unlink.overview(
            ctx, current, ctx.t._("This chat is already linked to your account.")
        )
    arg = ctx.arg.strip()
    if _TOKEN.fullmatch(arg):
        return await _page_link_brought_back(ctx, arg)
    if arg == "accept":
        return await _accepted(ctx)
    method = arg.lower() if arg.lower() in METHODS else None
    notice = accepted_notice(ctx)
    if method is None or notice is None:
        return _intro(ctx, then=method)
    return await start_method(ctx, method, notice)


def _intro(ctx: FlowContext, *, then: str | None = None, note: str | None = None) -> list[Reply]:
    """What linking means and the privacy notice to accept first."""
    t = ctx.t
    ctx.enter(STEP_ACCEPT, {"then": then} if then else {})
    text = "\n\n".join(
        part
        for part in (
            note,
            t._(
                "🔗 Link this chat to your e-service account to see your bills and details "
                "here. You sign in with your e-service User ID."
            ),
            t._(
                "Before you link: we keep this chat's ID together with your account so that "
                "only this chat shows your data. By linking you accept our privacy notice "
                "(version {version}). Read it any time: /privacy"
            ).format(version=ctx.settings.privacy_notice_version),
        )
        if part
    )
    buttons = (
        (Button(t._("✅ Accept & continue"), "link:accept"),),
        (Button(t._("🔒 Read the notice"), "privacy"), Button(t._("✖️ Cancel"), "cancel")),
    )
    return [TextReply(text=text, buttons=buttons)]


async def _accepted(ctx: FlowContext) -> list[Reply]:
    notice = ctx.settings.privacy_notice_version
    then = ctx.conversation.data.get("then") if ctx.conversation.flow == "link" else None
    if isinstance(then, str) and then in METHODS:
        return await start_method(ctx, then, notice)
    return method_choice(ctx, notice, ctx.t._("Thank you. How would you like to sign in?"))


async def start_method(ctx: FlowContext, method: str, notice: str) -> list[Reply]:
    """Begin signing in the way ``method`` names (the notice is accepted)."""
    t = ctx.t
    service = linking(ctx)
    channel, chat_id = ctx.incoming.channel, ctx.incoming.chat_id
    if method == "password":
        if not can_delete_messages(channel):
            return method_choice(
                ctx, notice, t._("On LINE, please sign in on the page or with an SMS code.")
            )
        paused = await service.signin_paused_until(ctx.uow, channel, chat_id, ctx.now)
        if paused is not None:
            ctx.enter(STEP_METHOD, {"notice": notice})  # another way still works
            return [paused_reply(ctx, paused)]
        ctx.enter(STEP_USER_ID, {"notice": notice})
        return [TextReply(t._("Please type your e-service User ID."))]
    if method == "web":
        url = await service.issue_page_link(
            ctx.uow,
            channel=channel,
            chat_id=chat_id,
            language=ctx.conversation.language,
            notice_version=notice,
            now=ctx.now,
        )
        ctx.leave()
        return [
            TextReply(
                t._(
                    "Here is your sign-in page. It works once, only for this chat, for the "
                    "next 10 minutes. I'll confirm here when you're signed in."
                ),
                buttons=((LinkButton(t._("🌐 Open sign-in page"), url),),),
            )
        ]
    # otp, register
    if not service.sms_available:
        return method_choice(ctx, notice, t._("Sorry, SMS codes aren't available right now."))
    return link_sms.ask_phone(ctx, notice, purpose=method)


async def _page_link_brought_back(ctx: FlowContext, token: str) -> list[Reply]:
    """``/start link-<token>``: a page link came back to a chat."""
    t = ctx.t
    found = await linking(ctx).open_page_link(ctx.uow, token, ctx.now)
    if isinstance(found, PageLinkProblem):
        return _intro(
            ctx,
            note=t._("That sign-in link has expired or was already used. Let's start again."),
        )
    if (found.channel, found.chat_id) != (ctx.incoming.channel, ctx.incoming.chat_id):
        return _intro(
            ctx,
            note=t._(
                "That sign-in link was made for another chat, so it can't link this one. "
                "To link this chat, start here."
            ),
        )
    ctx.leave()
    return [
        TextReply(
            t._("Your sign-in page is still open. It works once, only for this chat."),
            buttons=((LinkButton(t._("🌐 Open sign-in page"), linking(ctx).page_url(token)),),),
        )
    ]


async def answer(ctx: FlowContext, event: InboundEvent) -> list[Reply] | None:
    """The next message of a link dialogue; None when it answers nothing asked."""
    step = ctx.conversation.step
    if step == STEP_USER_ID and isinstance(event, TextMessage):
        return _got_user_id(ctx, event.text)
    if step == STEP_PASSWORD and isinstance(event, TextMessage):
        return await _got_password(ctx, event.text)
    if step == STEP_PHONE and isinstance(event, TextMessage | SharedContact):
        return await link_sms.got_phone(ctx, event)
    if step == STEP_CODE and isinstance(event, TextMessage):
        return await link_sms.got_code(ctx, event.text)
    if step == STEP_NEW_USER_ID and isinstance(event, TextMessage):
        return await link_sms.got_new_user_id(ctx, event.text)
    if step == STEP_NEW_PASSWORD and isinstance(event, TextMessage):
        return await link_sms.got_new_password(ctx, event.text)
    return None


def _got_user_id(ctx: FlowContext, text: str) -> list[Reply]:
    t = ctx.t
    user_id = text.strip()
    if not user_id or len(user_id) > MAX_USER_ID_INPUT or "\n" in user_id:
        return [TextReply(t._("That doesn't look like a User ID. Please type it again."))]
    notice = accepted_notice(ctx) or ctx.settings.privacy_notice_version
    ctx.enter(STEP_PASSWORD, {"notice": notice, "user_id": user_id})
    return [
        TextReply(
            t._(
                "Thank you. Now type your password. "
                "I'll delete your message as soon as I've read it."
            ),
            secret=True,
        )
    ]


async def _got_password(ctx: FlowContext, password: str) -> list[Reply]:
    t = ctx.t
    replies = delete_secret(ctx)
    data = dict(ctx.conversation.data)
    channel, chat_id = ctx.incoming.channel, ctx.incoming.chat_id
    result = await linking(ctx).sign_in(
        ctx.uow,
        channel=channel,
        chat_id=chat_id,
        user_id=str(data.get("user_id", "")),
        password=password,
        now=ctx.now,
    )
    if isinstance(result, SignedIn):
        customer = await linking(ctx).link(
            ctx.uow,
            channel=channel,
            chat_id=chat_id,
            eservice_user_id=result.user.id,
            customer_id=result.user.customer_id,
            notice_version=str(data.get("notice") or ctx.settings.privacy_notice_version),
            method="password",
            now=ctx.now,
        )
        ctx.leave()
        return replies + linked_replies(t, customer)
    # Stay in the step: another password typed now is still deleted, and answered.
    ctx.enter(STEP_PASSWORD, data)
    if isinstance(result, SignInPaused):
        lead = t._("The User ID or password is not correct.") if result.now else None
        return [*replies, paused_reply(ctx, result.until, lead=lead, secret=True)]
    assert isinstance(result, WrongCredentials)
    rows: list[tuple[Button, ...]] = [
        (
            Button(t._("✏️ Other User ID"), "link:password"),
            Button(t._("🌐 Sign-in page"), "link:web"),
        ),
    ]
    if linking(ctx).sms_available:
        rows.append((Button(t._("📱 SMS code"), "link:otp"),))
    return [
        *replies,
        TextReply(
            t._(
                "The User ID or password is not correct. Please type your password again, "
                "or choose another way below."
            ),
            buttons=tuple(rows),
            secret=True,
        ),
    ]


async def _finish_line_account_link(ctx: FlowContext, event: AccountLinkResult) -> list[Reply]:
    t = ctx.t
    result = await linking(ctx).finish_account_link(
        ctx.uow,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        nonce=event.nonce,
        ok=event.ok,
        now=ctx.now,
    )
    ctx.leave()
    if isinstance(result, AccountLinkInvalid):
        return [
            with_menu(
                t,
                t._(
                    "That link request has expired or was already used. "
                    "Please start again with /link."
                ),
            )
        ]
    if isinstance(result, AccountLinkDeclined):
        return [
            with_menu(
                t,
                t._(
                    "You didn't confirm in LINE, so this chat is not linked. "
                    "You can try again any time with /link."
                ),
            )
        ]
    return linked_replies(t, result)
