"""Masks for personal values shown on screen or written to a log (08x-xxx-5678)."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\D")


def mask_phone(phone: str) -> str:
    """``0812345678`` → ``08x-xxx-5678``; keeps only the first two and last four digits."""
    digits = _DIGITS.sub("", phone)
    if digits.startswith("66") and len(digits) == 11:
        digits = "0" + digits[2:]
    if len(digits) < 6:
        return "x" * len(digits)
    return f"{digits[:2]}x-xxx-{digits[-4:]}"


def mask_email(email: str) -> str:
    """``somchai@mail.com`` → ``s***@mail.com``."""
    local, sep, domain = email.partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_text(value: str, keep: int = 1) -> str:
    """A name or address: the first ``keep`` characters, then asterisks."""
    value = value.strip()
    return value[:keep] + "*" * max(len(value) - keep, 3)


_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?66|0)[\s-]?\d(?:[\s-]?\d){7,8}(?!\d)")
_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NATIONAL_ID_IN_TEXT = re.compile(r"(?<!\d)\d(?:[\s-]?\d){12}(?!\d)")


def redact(text: str) -> str:
    """Mask anything that looks like a phone number, email or national id in free text
    (a last line of defence for log messages)."""
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group()), text)
    text = _NATIONAL_ID_IN_TEXT.sub("x-xxxx-xxxxx-xx-x", text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()), text)
