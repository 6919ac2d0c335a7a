"""Free text in Thai and English understood as an intent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.flows.intents import Intent, detect_intent, normalise


@pytest.mark.parametrize(
    ("said", "meant"),
    [
        # Thai, written without spaces
        ("ยอดเดือนนี้เท่าไหร่คะ", Intent.BILL),
        ("ขอดูบิลหน่อยค่ะ 🙏", Intent.BILL),
        ("ค่าโทรเดือนนี้", Intent.BILL),
        ("ค่าบริการเท่าไร", Intent.BILL),
        ("ยอดค้างชำระ", Intent.BILL),
        ("อยากจ่ายบิล", Intent.PAY),
        ("ชำระค่าบริการ", Intent.PAY),
        ("💸 จ่ายเงิน", Intent.PAY),
        ("โปรไฟล์", Intent.PROFILE),
        ("ข้อมูลส่วนตัว", Intent.PROFILE),
        ("ขอเปลี่ยนที่อยู่", Intent.PROFILE),
        ("เมนู", Intent.MENU),
        ("ช่วยด้วย", Intent.HELP),
        ("ภาษา", Intent.LANGUAGE),
        ("ภาษาไทย", Intent.LANG_TH),
        ("ขอภาษาอังกฤษ", Intent.LANG_EN),
        ("ยกเลิก", Intent.CANCEL),
        ("สวัสดีค่ะ", Intent.GREETING),
        ("หวัดดี", Intent.GREETING),
        ("นโยบายข้อมูลส่วนตัว", Intent.PRIVACY),
        ("ยกเลิกรับโปรโมชัน", Intent.CONSENT),
        ("ยกเลิกการเชื่อมบัญชี", Intent.UNLINK),
        ("ผูกบัญชี", Intent.LINK),
        ("ขอลบข้อมูล", Intent.FORGET),
        ("สวัสดีค่ะ ขอดูบิล", Intent.BILL),
        # English
        ("bill", Intent.BILL),
        ("My BILLS??", Intent.BILL),
        ("how much do I owe", Intent.BILL),
        ("How do I pay?", Intent.PAY),
        ("pay my bill", Intent.PAY),
        ("payment", Intent.PAY),
        ("profile", Intent.PROFILE),
        ("change my address", Intent.PROFILE),
        ("menu", Intent.MENU),
        ("help!", Intent.HELP),
        ("language", Intent.LANGUAGE),
        ("English please", Intent.LANG_EN),
        ("thai", Intent.LANG_TH),
        ("cancel", Intent.CANCEL),
        ("hi", Intent.GREETING),
        ("Hello there 👋", Intent.GREETING),
        ("privacy", Intent.PRIVACY),
        ("stop promotions", Intent.CONSENT),
        ("unlink", Intent.UNLINK),
        ("forget me", Intent.FORGET),
        ("send me my data", Intent.MYDATA),
        # Full-width letters and mixed scripts
        ("ＢＩＬＬ", Intent.BILL),
        ("จ่ายbill", Intent.PAY),
        # Nothing to go on
        ("", None),
        ("   \n\t ", None),
        ("🙂🙂🙂", None),
        ("this is it", None),  # "hi" inside "this" is not a greeting
        ("qwerty", None),
        ("12345", None),
        ("x" * 100_000, None),
    ],
)
def test_intent_of_free_text(said: str, meant: Intent | None) -> None:
    assert detect_intent(said) is meant


def test_sql_looking_text_is_just_text() -> None:
    # It mentions bills, so it is read as a question about bills, and nothing more.
    assert detect_intent("'; DROP TABLE bills;--") is Intent.BILL
    assert detect_intent("' OR 1=1 --") is None


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Hello,   World! ", "hello world"),
        ("ＢＩＬＬ", "bill"),
        ("บิล🧾ค่ะ!!", "บิล ค่ะ"),
        ("ค่า\u200bโทร", "ค่า โทร"),  # a zero-width space is a break, not a letter
        ("ไม่ได้", "ไม่ได้"),  # Thai vowels and tone marks stay
    ],
)
def test_normalise(raw: str, clean: str) -> None:
    assert normalise(raw) == clean


def test_very_long_text_is_still_understood() -> None:
    # How fast this is belongs in a benchmark, not here; that it answers at all does.
    assert detect_intent("ยอด" * 200_000) == detect_intent("ยอด")
    assert detect_intent("bill " * 200_000) == detect_intent("bill")


@given(st.text())
def test_any_text_gives_an_intent_or_none(said: str) -> None:
    assert detect_intent(said) in {*Intent, None}
