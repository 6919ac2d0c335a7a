"""The SMS-code steps of /link, and registration for customers without a User ID.

The customer shares (Telegram) or types their mobile number; if it is on file a 6-digit
code goes to it (the chat is told the same either way). A right code links the chat to
the customer's User ID or, when they have none, lets them choose a User ID and password:
here where the password message can be deleted, on the one-time page on LINE.
"""

from __future__ import annotations

import unicodedata

from core.chat import Button, LinkButton, Reply, SharedContact, TextMessage, TextReply
from core.flows.context import FlowContext
from core.flows.link_common import (
    STEP_CODE,
    STEP_NEW_PASSWORD,
    STEP_NEW_USER_ID,
    STEP_PHONE,
    accepted_notice,
    can_delete_messages,
    delete_secret,
    linked_replies,
    linking,
    method_choice,
)
from core.i18n import Translator
from core.identifiers import normalise_phone
from core.services.linking import (
    OTP_DIGITS,
    PURPOSE_REGISTER,
    OtpExhausted,
    OtpExpired,
    OtpNotSent,
    OtpSent,
    OtpThrottled,
    OtpVerified,
    OtpWrong,
    Registered,
)
from core.services.passwords import MIN_PASSWORD_LENGTH, PasswordProblem

__all__ = [
    "ask_phone",
    "got_code",
    "got_new_password",
    "got_new_user_id",
    "got_phone",
    "password_problem_text",
    "user_id_rule",
]


def _notice(ctx: FlowContext) -> str:
    return accepted_notice(ctx) or ctx.settings.privacy_notice_version


def _purpose(ctx: FlowContext) -> str:
    purpose = ctx.conversation.data.get("purpose")
    return purpose if isinstance(purpose, str) else "otp"


def ask_phone(
    ctx: FlowContext, notice: str, *, purpose: str, note: str | None = None
) -> list[Reply]:
    t = ctx.t
    ctx.enter(STEP_PHONE, {"notice": notice, "purpose": purpose})
    question = t._(
        "Please share your mobile number with the button below, or type the number "
        "you gave us (for example 081 234 5678)."
    )
    return [
        TextReply(
            question if note is None else f"{note}\n{question}",
            request_contact=t._("Share my number"),
        )
    ]


async def got_phone(ctx: FlowContext, event: TextMessage | SharedContact) -> list[Reply]:
    t = ctx.t
    notice, purpose = _notice(ctx), _purpose(ctx)
    if isinstance(event, SharedContact) and not event.is_own:
        return ask_phone(
            ctx,
            notice,
            purpose=purpose,
            note=t._("That contact card is someone else's. I can only use your own number."),
        )
    raw = event.phone if isinstance(event, SharedContact) else event.text
    try:
        phone = normalise_phone(raw[:40])
    except ValueError:
        return ask_phone(
            ctx,
            notice,
            purpose=purpose,
            note=t._("That doesn't look like a Thai mobile number."),
        )
    result = await linking(ctx).send_otp(
        ctx.uow,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        phone=phone,
        t=t,
        now=ctx.now,
    )
    if isinstance(result, OtpThrottled):
        return method_choice(
            ctx,
            notice,
            t._(
                "You've asked for several codes in a short time. Please wait until {time} "
                "before asking again, or choose another way."
            ).format(time=t.datetime(result.until)),
        )
    if isinstance(result, OtpNotSent):
        return method_choice(
            ctx, notice, t._("Sorry, I couldn't send the SMS just now. Please try again shortly.")
        )
    assert isinstance(result, OtpSent)
    ctx.enter(STEP_CODE, {"notice": notice, "purpose": purpose})
    return [
        TextReply(
            t._(
                "If {phone} is the number we have on file, I've sent a 6-digit code to it by "
                "SMS. Please type the code here. It is valid for 5 minutes."
            ).format(phone=result.masked_phone),
            buttons=((Button(t._("📱 Other number"), "link:otp"),),),
        )
    ]


def _digits(text: str) -> str | None:
    """The code typed, with Thai or full-width digits and spaces allowed; None if it is
    not 6 digits."""
    kept = []
    for ch in unicodedata.normalize("NFKC", text.strip()[:40]):
        if ch.isdecimal():
            kept.append(str(unicodedata.decimal(ch)))
        elif not (ch.isspace() or ch == "-"):
            return None
    code = "".join(kept)
    return code if len(code) == OTP_DIGITS else None


async def got_code(ctx: FlowContext, text: str) -> list[Reply]:
    t = ctx.t
    notice, purpose = _notice(ctx), _purpose(ctx)
    code = _digits(text)
    if code is None:
        return [TextReply(t._("The code has 6 digits. Please type it again."))]
    result = await linking(ctx).verify_otp(
        ctx.uow,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        code=code,
        now=ctx.now,
    )
    if isinstance(result, OtpWrong):
        return [
            TextReply(
                t.ngettext(
                    "That code is not correct. You can try {count} more time.",
                    "That code is not correct. You can try {count} more times.",
                    result.tries_left,
                ).format(count=result.tries_left)
            )
        ]
    if not isinstance(result, OtpVerified):
        if isinstance(result, OtpExhausted):
            why = t._("That code is not correct, and it can't be used any more.")
        elif isinstance(result, OtpExpired):
            why = t._("That code has expired.")
        else:
            why = t._("There's no code waiting for this chat.")
        return method_choice(ctx, notice, why + " " + t._("Please ask for a new one."))
    user = await linking(ctx).first_user(ctx.uow, result.customer_id)
    if user is not None:
        lead = None
        if purpose == PURPOSE_REGISTER:
            lead = t._("You already have an e-service User ID, so I've linked this chat to it.")
        return await _link(ctx, user.id, result.customer_id, notice, "otp", lead)
    return await _start_registration(ctx, result.customer_id, notice)


async def _link(
    ctx: FlowContext,
    eservice_user_id: str,
    customer_id: str,
    notice: str,
    method: str,
    lead: str | None,
) -> list[Reply]:
    customer = await linking(ctx).link(
        ctx.uow,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        eservice_user_id=eservice_user_id,
        customer_id=customer_id,
        notice_version=notice,
        method=method,
        now=ctx.now,
    )
    ctx.leave()
    return linked_replies(ctx.t, customer, lead)


async def _start_registration(ctx: FlowContext, customer_id: str, notice: str) -> list[Reply]:
    t = ctx.t
    confirmed = t._("Your number is confirmed, but you don't have an e-service User ID yet.")
    if not can_delete_messages(ctx.incoming.channel):
        # A password typed in LINE would stay in the chat: choose it on the page instead.
        url = await linking(ctx).issue_page_link(
            ctx.uow,
            channel=ctx.incoming.channel,
            chat_id=ctx.incoming.chat_id,
            language=ctx.conversation.language,
            notice_version=notice,
            now=ctx.now,
            purpose=PURPOSE_REGISTER,
            customer_id=customer_id,
        )
        ctx.leave()
        return [
            TextReply(
                confirmed
                + "\n"
                + t._(
                    "Please choose your User ID and password on this secure page. It works "
                    "once, for the next 10 minutes."
                ),
                buttons=((LinkButton(t._("📝 Registration page"), url),),),
            )
        ]
    ctx.enter(STEP_NEW_USER_ID, {"notice": notice, "customer_id": customer_id})
    return [TextReply(confirmed + "\n" + user_id_rule(t))]


def user_id_rule(t: Translator) -> str:
    return t._(
        "Please choose a User ID: 3 to 64 letters (a-z), digits, dots, dashes or underscores."
    )


async def got_new_user_id(ctx: FlowContext, text: str) -> list[Reply]:
    t = ctx.t
    data = dict(ctx.conversation.data)
    user_id = text.strip()
    problem = await linking(ctx).user_id_problem(ctx.uow, user_id)
    if problem == "user_id_taken":
        return [TextReply(t._("That User ID is taken. Please choose another."))]
    if problem is not None:
        return [TextReply(t._("That User ID can't be used.") + " " + user_id_rule(t))]
    ctx.enter(STEP_NEW_PASSWORD, {**data, "new_user_id": user_id})
    return [TextReply(_password_rule(ctx), secret=True)]


def _password_rule(ctx: FlowContext) -> str:
    return ctx.t._(
        "Now choose a password: at least {count} characters, not a common one. "
        "I'll delete your message as soon as I've read it."
    ).format(count=MIN_PASSWORD_LENGTH)


def password_problem_text(t: Translator, problem: str) -> str:
    """Why a new password was refused, for the chat and the registration page."""
    match problem:
        case PasswordProblem.TOO_SHORT:
            return t._("That password is too short: it needs at least {count} characters.").format(
                count=MIN_PASSWORD_LENGTH
            )
        case PasswordProblem.TOO_LONG:
            return t._("That password is too long. Please choose a shorter one.")
        case PasswordProblem.CONTAINS_USER_ID:
            return t._("That password contains your User ID. Please choose another.")
    return t._("That password is too common and easy to guess. Please choose another.")


async def got_new_password(ctx: FlowContext, password: str) -> list[Reply]:
    t = ctx.t
    replies = delete_secret(ctx)
    data = dict(ctx.conversation.data)
    customer_id = str(data.get("customer_id", ""))
    user_id = str(data.get("new_user_id", ""))
    result = await linking(ctx).register(
        ctx.uow, customer_id=customer_id, user_id=user_id, password=password, now=ctx.now
    )
    if isinstance(result, Registered):
        lead = t._("Your e-service User ID {user_id} is ready, and this chat is linked to it.")
        return replies + await _link(
            ctx, result.user.id, customer_id, _notice(ctx), "register", lead.format(user_id=user_id)
        )
    existing = await linking(ctx).first_user(ctx.uow, customer_id)
    if result.reason == "has_user" and existing is not None:
        lead = t._("You already have an e-service User ID, so I've linked this chat to it.")
        return replies + await _link(ctx, existing.id, customer_id, _notice(ctx), "otp", lead)
    if result.reason in ("user_id_taken", "user_id_format"):
        ctx.enter(STEP_NEW_USER_ID, {k: v for k, v in data.items() if k != "new_user_id"})
        return [*replies, TextReply(t._("That User ID is taken. Please choose another."))]
    ctx.enter(STEP_NEW_PASSWORD, data)
    return [*replies, TextReply(password_problem_text(t, result.reason), secret=True)]
