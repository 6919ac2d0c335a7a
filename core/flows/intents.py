"""Free text to an intent, by keywords in Thai and English.

Thai is written without spaces, so Thai keywords match anywhere in the text once spaces are
removed; English keywords match whole words (``bill*`` also matches ``bills``, ``billing``).
A keyword found inside a longer keyword does not count ("ภาษา" inside "ภาษาไทย", "ชำระ"
inside "ค้างชำระ"); of the intents left, the one listed first in :class:`Intent` wins
("จ่ายบิล" is PAY, not BILL).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Intent", "detect_intent", "normalise"]

# Enough for any real request; bounds the work done on a pasted novel.
MAX_TEXT_LENGTH = 500


class Intent(enum.StrEnum):
    """What a customer's free text asks for, strongest first (the order breaks ties)."""

    LANG_TH = "lang_th"
    LANG_EN = "lang_en"
    CANCEL = "cancel"
    FORGET = "forget"
    MYDATA = "mydata"
    UNLINK = "unlink"
    LINK = "link"
    PAY = "pay"
    BILL = "bill"
    CONSENT = "consent"
    CORRECTION = "correction"
    PROFILE = "profile"
    PRIVACY = "privacy"
    LANGUAGE = "language"
    HELP = "help"
    MENU = "menu"
    GREETING = "greeting"


_KEYWORDS: dict[Intent, tuple[str, ...]] = {
    Intent.LANG_TH: ("ภาษาไทย", "พูดไทย", "thai"),
    Intent.LANG_EN: ("ภาษาอังกฤษ", "อังกฤษ", "english", "eng"),
    Intent.CANCEL: ("ยกเลิก", "ไม่เอาแล้ว", "cancel", "never mind", "nevermind", "quit"),
    Intent.FORGET: (
        "ลบข้อมูล",
        "ลืมฉัน",
        "forget me",
        "erase my data",
        "delete my data",
        "delete my account",
    ),
    Intent.MYDATA: ("สำเนาข้อมูล", "ขอข้อมูลของฉัน", "my data", "copy of my data"),
    Intent.UNLINK: ("ยกเลิกการเชื่อม", "ยกเลิกผูก", "unlink", "disconnect"),
    Intent.LINK: ("เชื่อมบัญชี", "ผูกบัญชี", "เชื่อมต่อบัญชี", "userid", "user id", "link*"),
    Intent.PAY: ("จ่าย", "ชำระ", "โอนเงิน", "พร้อมเพย์", "pay*", "promptpay"),
    Intent.BILL: (
        "ยอด",
        "บิล",
        "ค่าโทร",
        "ค่าบริการ",
        "ค่าเน็ต",
        "ใบแจ้งหนี้",
        "ค้างชำระ",
        "bill*",
        "invoice*",
        "balance",
        "how much",
        "owe",
    ),
    Intent.CONSENT: (
        "โปรโมชัน",
        "โปรโมชั่น",
        "โปร",
        "ข่าวสาร",
        "ยกเลิกรับ",
        "promo*",
        "marketing",
        "unsubscribe",
        "opt out",
        "opt in",
        "consent",
    ),
    Intent.CORRECTION: (
        "ข้อมูลผิด",
        "ข้อมูลไม่ถูกต้อง",
        "แก้ไขข้อมูล",
        "ชื่อผิด",
        "ที่อยู่ผิด",
        "wrong data",
        "wrong details",
        "is wrong",
        "incorrect",
        "correction",
    ),
    Intent.PROFILE: (
        "โปรไฟล์",
        "ข้อมูลส่วนตัว",
        "ที่อยู่",
        "เปลี่ยนเบอร์",
        "อีเมล",
        "profile",
        "address",
        "my details",
        "email",
    ),
    Intent.PRIVACY: (
        "ความเป็นส่วนตัว",
        "นโยบาย",
        "นโยบายข้อมูลส่วนตัว",
        "pdpa",
        "privacy",
    ),
    Intent.LANGUAGE: ("ภาษา", "language", "lang"),
    Intent.HELP: ("ช่วยด้วย", "ช่วยเหลือ", "ทำอะไรได้บ้าง", "วิธีใช้", "help", "how to"),
    Intent.MENU: ("เมนู", "menu", "main menu", "options"),
    Intent.GREETING: (
        "สวัสดี",
        "หวัดดี",
        "hi",
        "hello",
        "hey",
        "good morning",
        "good afternoon",
        "good evening",
        "start",
    ),
}

_PRIORITY = {intent: rank for rank, intent in enumerate(Intent)}


def normalise(text: str) -> str:
    """Compare-ready text: NFKC, case-folded, punctuation, symbols and emoji turned into
    single spaces. Letters, digits and combining marks (Thai vowels, tone marks) stay."""
    folded = unicodedata.normalize("NFKC", text[:MAX_TEXT_LENGTH]).casefold()
    kept = [ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in folded]
    return " ".join("".join(kept).split())


@dataclass(frozen=True, slots=True)
class _Match:
    start: int
    end: int
    intent: Intent

    def inside(self, other: _Match) -> bool:
        return (
            other.start <= self.start
            and self.end <= other.end
            and (other.end - other.start) > (self.end - self.start)
        )


def _compile() -> tuple[tuple[tuple[str, Intent], ...], tuple[tuple[re.Pattern[str], Intent], ...]]:
    thai: list[tuple[str, Intent]] = []
    latin: list[tuple[re.Pattern[str], Intent]] = []
    for intent, keywords in _KEYWORDS.items():
        for keyword in keywords:
            if keyword.isascii():
                prefix = keyword.endswith("*")
                words = normalise(keyword.rstrip("*"))
                tail = "" if prefix else r"(?![a-z0-9])"
                latin.append((re.compile(r"(?<![a-z0-9])" + re.escape(words) + tail), intent))
            else:
                # Keywords go through the same normalisation as the text (NFKC splits "ำ").
                thai.append((normalise(keyword).replace(" ", ""), intent))
    return tuple(thai), tuple(latin)


_THAI_KEYWORDS, _LATIN_KEYWORDS = _compile()


def _matches(text: str) -> list[_Match]:
    spaced = normalise(text)
    compact = spaced.replace(" ", "")
    found: list[_Match] = []
    for keyword, intent in _THAI_KEYWORDS:
        start = compact.find(keyword)
        while start != -1:
            found.append(_Match(start, start + len(keyword), intent))
            start = compact.find(keyword, start + 1)
    # Latin matches live in the spaced text; offset them so they never nest with Thai ones.
    offset = len(compact) + 1
    for pattern, intent in _LATIN_KEYWORDS:
        for hit in pattern.finditer(spaced):
            found.append(_Match(offset + hit.start(), offset + hit.end(), intent))
    return found


def detect_intent(text: str) -> Intent | None:
    """The intent ``text`` most likely asks for, or None when no keyword is found."""
    found = _matches(text)
    standing = [m for m in found if not any(m.inside(other) for other in found)]
    if not standing:
        return None
    return min((m.intent for m in standing), key=_PRIORITY.__getitem__)
