"""/profile: the linked customer's details, masked until they ask, and changing them.

- ``/profile`` (or "โปรไฟล์", "my details"): name, address, mobile, email, language and
  notification settings, personal values masked (08x-xxx-5678, s***@mail.com).
- ``profile:show``: the same in full; the decryption is audited as the owner's own view.
- ``profile:address``: asks for the new address, checks it (length, Thai or Latin text, a
  5-digit postal code) and saves it.
- ``profile:email`` / ``profile:phone``: asks for the new value, sends a 6-digit code to it
  (email / SMS) and changes it when the code is typed here. Offered only when a sender is
  configured (development prints the code).
- ``profile:lang[:th|en]``: the language of the customer's messages (this chat follows).
- ``profile:notify:<kind>:on|off``: each kind of bill notification, one tap either way.
- "Report wrong data" goes to the ``correction`` flow (core/flows/correction.py).
"""

from __future__ import annotations

from core.chat import Button, InboundEvent, Reply, SharedContact, TextMessage, TextReply
from core.domain import ContactKind, Customer, NotificationKind
from core.flows.bill import linked_customer
from core.flows.context import FlowContext
from core.flows.intents import detect_intent
from core.flows.lang import LANGUAGE_NAMES, parse_language
from core.flows.menu import keyboard
from core.flows.privacy import contact_line
from core.i18n import SUPPORTED_LANGUAGES, Translator
from core.masking import mask_email, mask_phone
from core.services.profile import (
    CODE_DIGITS,
    AddressProblem,
    AddressRefused,
    CodeExhausted,
    CodeExpired,
    CodeMissing,
    CodeNotSent,
    CodeSent,
    CodeThrottled,
    CodeWrong,
    ContactChanged,
    ContactProblem,
    ContactRefused,
    ProfileService,
    ProfileView,
)

__all__ = [
    "answer",
    "handle",
    "mask_address",
    "mask_name",
    "needs_link",
    "notification_name",
]

STEP_ADDRESS = "address"
STEP_EMAIL = "email"
STEP_PHONE = "phone"
STEP_EMAIL_CODE = "email_code"
STEP_PHONE_CODE = "phone_code"
_CODE_STEPS = {STEP_EMAIL_CODE: ContactKind.EMAIL, STEP_PHONE_CODE: ContactKind.PHONE}
_VALUE_STEPS = {STEP_EMAIL: ContactKind.EMAIL, STEP_PHONE: ContactKind.PHONE}


# --- shared with /consent, /mydata, /forget and corrections ----------------------------------


def needs_link(t: Translator, lead: str) -> TextReply:
    """``lead`` (what the chat cannot do yet) with a button to link first and the menu."""
    return TextReply(
        text=lead + "\n" + t._("Please link this chat to your e-service account first."),
        buttons=((Button(t._("🔗 Link my account"), "link"),), *keyboard(t)),
    )


def mask_name(name: str) -> str:
    """``สมหญิง ใจดี`` → ``ส*** ใ***``: the first letter of each word."""
    words = name.split()
    return " ".join(word[:1] + "***" for word in words) if words else "***"


def mask_address(address: str) -> str:
    """``99 ถนนแจ้งวัฒนะ … 10210`` → ``9***``."""
    address = address.strip()
    return address[:1] + "***" if address else "***"


def notification_name(t: Translator, kind: NotificationKind) -> str:
    match kind:
        case NotificationKind.BILL_ISSUED:
            return t._("new bill messages")
        case NotificationKind.BILL_DUE:
            return t._("due-date reminders")
    return str(kind)


def _notification_button(t: Translator, kind: NotificationKind, on: bool) -> Button:
    match kind, on:
        case NotificationKind.BILL_ISSUED, True:
            label = t._("🔕 New bill: off")
        case NotificationKind.BILL_ISSUED, False:
            label = t._("🔔 New bill: on")
        case NotificationKind.BILL_DUE, True:
            label = t._("🔕 Reminders: off")
        case _:
            label = t._("🔔 Reminders: on")
    return Button(label, f"profile:notify:{kind.value}:{'off' if on else 'on'}")


def _service(ctx: FlowContext) -> ProfileService:
    return ctx.service(ProfileService)


def _onoff(t: Translator, on: bool) -> str:
    return t._("on ✅") if on else t._("off ❌")


def _profile_buttons(ctx: FlowContext, view: ProfileView) -> tuple[tuple[Button, ...], ...]:
    t = ctx.t
    service = _service(ctx)
    change = [Button(t._("🏠 Address"), "profile:address")]
    if service.can_change(ContactKind.EMAIL):
        change.append(Button(t._("📧 Email"), "profile:email"))
    if service.can_change(ContactKind.PHONE):
        change.append(Button(t._("📱 Mobile"), "profile:phone"))
    return (
        (Button(t._("👁 Show in full"), "profile:show"),),
        tuple(change),
        (Button(t._("🌐 Language"), "profile:lang"),),
        tuple(_notification_button(t, k, on) for k, on in view.notifications.items()),
        (Button(t._("⚠️ Report wrong data"), "correction"), Button(t._("🏠 Menu"), "menu")),
    )


def _details(t: Translator, customer: Customer, *, full: bool) -> list[str]:
    if full:
        name, address, phone = customer.name, customer.address, customer.phone
        email = customer.email
    else:
        name, address = mask_name(customer.name), mask_address(customer.address)
        phone, email = mask_phone(customer.phone), customer.email and mask_email(customer.email)
    return [
        t._("Name: {name}").format(name=name),
        t._("Address: {address}").format(address=address),
        t._("Mobile: {phone}").format(phone=phone),
        t._("Email: {email}").format(email=email or t._("(none)")),
        t._("Language: {language}").format(
            language=LANGUAGE_NAMES.get(customer.language, customer.language)
        ),
    ]


async def _overview(
    ctx: FlowContext, lead: str | None = None, *, full: bool = False
) -> list[Reply]:
    t = ctx.t
    ctx.leave()
    customer = await linked_customer(ctx)
    view = None if customer is None else await _service(ctx).view(ctx.uow, customer.id)
    if view is None:
        return [needs_link(t, t._("I can show your profile once I know who you are."))]
    lines = [lead, ""] if lead else []
    lines.append(t._("👤 Your details in full") if full else t._("👤 Your profile"))
    lines += _details(t, view.customer, full=full)
    notes = [
        t._("{what}: {state}").format(what=notification_name(t, kind), state=_onoff(t, on))
        for kind, on in view.notifications.items()
    ]
    lines.append(t._("Bill notifications: {states}").format(states="; ".join(notes)))
    lines.append("")
    if full:
        lines.append(
            t._(
                "This full view is recorded in our access log for your security. "
                "If anything is wrong, change it below or report it."
            )
        )
        await _service(ctx).record_own_view(
            ctx.uow,
            view.customer,
            fields=["name", "address", "phone", "email"],
            channel=ctx.incoming.channel,
            now=ctx.now,
        )
    else:
        lines.append(t._('Personal details are partly hidden. Tap "Show in full" to see them.'))
    return [TextReply("\n".join(lines), buttons=_profile_buttons(ctx, view))]


# --- asking for a new value ----------------------------------------------------------------


def _ask_address(ctx: FlowContext, note: str | None = None) -> list[Reply]:
    t = ctx.t
    ctx.enter(STEP_ADDRESS)
    question = t._(
        "Please type your new postal address in one message, with the 5-digit postal code, "
        "for example: 99/1 Chaeng Watthana Road, Thung Song Hong, Lak Si, Bangkok 10210"
    )
    return [TextReply(question if note is None else f"{note}\n{question}")]


def _ask_contact(ctx: FlowContext, kind: ContactKind, note: str | None = None) -> list[Reply]:
    t = ctx.t
    if kind is ContactKind.EMAIL:
        ctx.enter(STEP_EMAIL)
        question = t._(
            "Please type your new email address. I'll send a {digits}-digit code to it "
            "to confirm it is yours."
        ).format(digits=CODE_DIGITS)
        return [TextReply(question if note is None else f"{note}\n{question}")]
    ctx.enter(STEP_PHONE)
    question = t._(
        "Please type your new mobile number (for example 081 234 5678), or share it with "
        "the button. I'll send a {digits}-digit code to it by SMS to confirm it is yours."
    ).format(digits=CODE_DIGITS)
    return [
        TextReply(
            question if note is None else f"{note}\n{question}",
            request_contact=t._("Share my number"),
        )
    ]


def _address_problem_text(t: Translator, problem: AddressProblem) -> str:
    match problem:
        case AddressProblem.TOO_SHORT:
            return t._(
                "That address is too short. Please give the house number, road, "
                "district, province and postal code."
            )
        case AddressProblem.TOO_LONG:
            return t._("That address is too long (300 characters at most). Please shorten it.")
        case AddressProblem.CHARACTERS:
            return t._(
                "Please use Thai or English letters, digits and ordinary punctuation only "
                "(no emoji or other scripts)."
            )
    return t._(
        "I couldn't find a 5-digit Thai postal code in that address (for example 10210). "
        "Please add it."
    )


def _contact_problem_text(t: Translator, kind: ContactKind, reason: ContactProblem) -> str:
    email = kind is ContactKind.EMAIL
    match reason:
        case ContactProblem.SAME:
            return (
                t._("That is already the email address on your account.")
                if email
                else t._("That is already the mobile number on your account.")
            )
        case ContactProblem.TAKEN:
            return (
                t._(
                    "That email address is already used by another account. Please use another one."
                )
                if email
                else t._("That number is already used by another account. Please use another one.")
            )
    return (
        t._("That doesn't look like an email address (for example name@example.com).")
        if email
        else t._("That doesn't look like a Thai mobile number (10 digits starting 06, 08 or 09).")
    )


async def _got_address(ctx: FlowContext, customer: Customer, text: str) -> list[Reply]:
    t = ctx.t
    result = await _service(ctx).change_address(
        ctx.uow, customer, text, channel=ctx.incoming.channel, now=ctx.now
    )
    if isinstance(result, AddressRefused):
        return _ask_address(ctx, _address_problem_text(t, result.problem))
    return await _overview(
        ctx, t._("✅ Done. Your address is now: {address}").format(address=result.address)
    )


async def _got_contact(
    ctx: FlowContext, customer: Customer, kind: ContactKind, raw: str
) -> list[Reply]:
    t = ctx.t
    result = await _service(ctx).request_contact_change(
        ctx.uow,
        customer,
        kind,
        raw,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        t=t,
        now=ctx.now,
    )
    if isinstance(result, ContactRefused):
        return _ask_contact(ctx, kind, _contact_problem_text(t, kind, result.reason))
    if isinstance(result, CodeThrottled):
        return await _overview(
            ctx,
            t._(
                "You've asked for several codes in a short time. Please wait until {time} "
                "before asking again."
            ).format(time=t.datetime(result.until)),
        )
    if isinstance(result, CodeNotSent):
        return await _overview(
            ctx, t._("Sorry, I couldn't send the code just now. Please try again shortly.")
        )
    assert isinstance(result, CodeSent)
    ctx.enter(STEP_EMAIL_CODE if kind is ContactKind.EMAIL else STEP_PHONE_CODE)
    minutes = int(_service(ctx).policy.code_ttl.total_seconds() // 60)
    return [
        TextReply(
            t._(
                "I've sent a {digits}-digit code to {where}. Please type it here; it is "
                "valid for {minutes} minutes."
            ).format(digits=CODE_DIGITS, where=result.masked, minutes=minutes)
        )
    ]


def _code_in(text: str) -> str | None:
    digits = "".join(ch for ch in text if not ch.isspace() and ch != "-")
    if len(digits) == CODE_DIGITS and digits.isascii() and digits.isdigit():
        return digits
    return None


async def _got_code(
    ctx: FlowContext, customer: Customer, kind: ContactKind, code: str
) -> list[Reply]:
    t = ctx.t
    result = await _service(ctx).confirm_contact_change(
        ctx.uow,
        customer,
        kind,
        code,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        now=ctx.now,
    )
    again = Button(
        t._("📧 New code") if kind is ContactKind.EMAIL else t._("📱 New code"),
        f"profile:{'email' if kind is ContactKind.EMAIL else 'phone'}",
    )
    match result:
        case ContactChanged(customer=changed):
            if kind is ContactKind.EMAIL:
                lead = t._("✅ Done. Your email address is now {email}.").format(
                    email=changed.email
                )
            else:
                lead = t._("✅ Done. Your mobile number is now {phone}.").format(
                    phone=changed.phone
                )
            return await _overview(ctx, lead)
        case CodeWrong(tries_left=left):
            ctx.enter(STEP_EMAIL_CODE if kind is ContactKind.EMAIL else STEP_PHONE_CODE)
            return [
                TextReply(
                    t.ngettext(
                        "That code isn't right. You have {n} more try.",
                        "That code isn't right. You have {n} more tries.",
                        left,
                    ).format(n=left)
                )
            ]
        case CodeExhausted():
            text = t._("That code no longer works after too many wrong tries.")
        case CodeExpired() | CodeMissing():
            text = t._("That code has expired.")
        case ContactRefused(reason=reason):
            text = _contact_problem_text(t, kind, reason)
    ctx.leave()
    return [
        TextReply(
            text + "\n" + t._("You can ask for a new code."),
            buttons=((again, Button(t._("👤 My profile"), "profile")),),
        )
    ]


# --- language and notifications --------------------------------------------------------------


async def _language(ctx: FlowContext, customer: Customer, arg: str) -> list[Reply]:
    t = ctx.t
    lang = parse_language(arg) if arg else None
    if lang is None:
        ctx.leave()
        buttons = (
            tuple(
                Button(LANGUAGE_NAMES[code], f"profile:lang:{code}") for code in SUPPORTED_LANGUAGES
            ),
        )
        return [
            TextReply(
                t._("Which language would you like our messages and letters in?"),
                buttons=buttons,
            )
        ]
    await _service(ctx).set_language(
        ctx.uow, customer, lang, channel=ctx.incoming.channel, now=ctx.now
    )
    ctx.conversation.language = lang
    t = ctx.t  # the new language's
    return await _overview(
        ctx, t._("✅ Done. We'll use {language} from now on.").format(language=LANGUAGE_NAMES[lang])
    )


async def _notification(ctx: FlowContext, customer: Customer, arg: str) -> list[Reply]:
    t = ctx.t
    name, _, state = arg.partition(":")
    try:
        kind = NotificationKind(name)
    except ValueError:
        return await _overview(ctx)
    if state not in ("on", "off"):
        return await _overview(ctx)
    enabled = state == "on"
    await _service(ctx).set_notification(
        ctx.uow, customer, kind, enabled, channel=ctx.incoming.channel, now=ctx.now
    )
    what = notification_name(t, kind)
    if enabled:
        lead = t._("✅ Done: {what} are on.").format(what=what)
    else:
        lead = t._("✅ Done: {what} are off. You can turn them on again here any time.").format(
            what=what
        )
    return await _overview(ctx, lead)


# --- entry points ----------------------------------------------------------------------------


async def handle(ctx: FlowContext) -> list[Reply]:
    """``/profile``, the PROFILE intent and the ``profile:…`` buttons."""
    t = ctx.t
    action, _, rest = ctx.arg.strip().partition(":")
    if action in ("", "view"):
        return await _overview(ctx)
    customer = await linked_customer(ctx)
    if customer is None:
        ctx.leave()
        return [needs_link(t, t._("I can show your profile once I know who you are."))]
    match action:
        case "show":
            return await _overview(ctx, full=True)
        case "address":
            return _ask_address(ctx)
        case "email" | "phone":
            kind = ContactKind(action)
            if not _service(ctx).can_change(kind):
                return await _overview(
                    ctx,
                    t._(
                        "Sorry, this can't be changed in the chat right now. "
                        "Please contact {contact}."
                    ).format(contact=contact_line(t, ctx.settings)),
                )
            return _ask_contact(ctx, kind)
        case "lang":
            return await _language(ctx, customer, rest)
        case "notify":
            return await _notification(ctx, customer, rest)
    return await _overview(ctx)


async def answer(ctx: FlowContext, event: InboundEvent) -> list[Reply] | None:
    """The next message while a change is asked for."""
    step = ctx.conversation.step
    customer = await linked_customer(ctx)
    if customer is None or step is None:
        return None
    if step in _CODE_STEPS:
        if not isinstance(event, TextMessage):
            return None
        code = _code_in(event.text)
        if code is None:
            if detect_intent(event.text) is not None:
                return None  # something else entirely: route it
            return [
                TextReply(
                    ctx.t._("Please type the {digits}-digit code (or /cancel).").format(
                        digits=CODE_DIGITS
                    )
                )
            ]
        return await _got_code(ctx, customer, _CODE_STEPS[step], code)
    if step in _VALUE_STEPS:
        kind = _VALUE_STEPS[step]
        if isinstance(event, SharedContact) and kind is ContactKind.PHONE:
            if not event.is_own:
                return _ask_contact(
                    ctx,
                    kind,
                    ctx.t._("That contact card is someone else's. I can only use your own number."),
                )
            return await _got_contact(ctx, customer, kind, event.phone)
        if not isinstance(event, TextMessage):
            return None
        return await _got_contact(ctx, customer, kind, event.text)
    if step == STEP_ADDRESS:
        if not isinstance(event, TextMessage):
            return None
        return await _got_address(ctx, customer, event.text)
    return None
