"""Canonical forms of what customers type to identify themselves: phone numbers and
e-service User IDs. Lookups (blind indexes), rate limits and lockouts all key on these
forms, so ``081-234-5678`` and ``+66812345678`` are one number and ``Demo`` is ``demo``."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalise_phone", "normalise_user_id"]

_PHONE_SEPARATORS = re.compile(r"[\s\-.()]")


def normalise_phone(value: str) -> str:
    """Return a Thai phone number in domestic form, e.g. ``"+66 81 234 5678"`` -> ``"0812345678"``.

    Accepts spaces, dashes, dots, parentheses, a ``+66`` or ``66`` prefix and Thai or
    full-width digits. Raises ValueError unless the result is 9-10 digits starting with 0.
    """
    # Thai digits (๐-๙) and full-width digits are what some keyboards send.
    text = "".join(
        str(unicodedata.decimal(ch)) if ch.isdecimal() else ch
        for ch in unicodedata.normalize("NFKC", value)
    )
    text = _PHONE_SEPARATORS.sub("", text)
    if text.startswith("+"):
        if not text.startswith("+66"):
            raise ValueError("not a Thai phone number")
        text = text[1:]
    if not text.isascii() or not text.isdigit():
        raise ValueError("a phone number holds only digits")
    if text.startswith("66"):
        # "+66 (0)81 ..." keeps the trunk zero after the country code.
        text = "0" + text[2:].removeprefix("0")
    if not text.startswith("0") or not 9 <= len(text) <= 10:
        raise ValueError("a Thai phone number has 9 or 10 digits starting with 0")
    return text


def normalise_user_id(value: str) -> str:
    """Return ``value`` NFKC-normalised, stripped and case-folded, for blind-index lookups."""
    # Case folding can produce characters NFKC would change again, hence the second pass.
    folded = unicodedata.normalize("NFKC", value).casefold()
    return unicodedata.normalize("NFKC", folded).strip()
