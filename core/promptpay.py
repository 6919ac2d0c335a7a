"""Thai QR payloads for PromptPay: the text a customer's banking app scans to pay.

Two kinds are built here:

- *credit transfer* (tag 29): pay a phone number, a national / tax id or an e-wallet;
- *bill payment* (tag 30): pay a biller (the operator) with references the biller
  reconciles on: ref1 = the customer's account, ref2 = the bill.

Every payload is a string of EMVCo data objects, each ``ID (2 digits) + length
(2 digits) + value``, ending with a CRC-16 over the whole text. Money is integer
satang throughout; only the payload carries baht with two decimals.

Sources:
- EMVCo, "EMV QR Code Specification for Payment Systems: Merchant-Presented Mode"
  (EMV QRCPS MPM) v1.1: data object layout, tags 00/01/53/54/58/62/63, CRC-16/CCITT.
- Bank of Thailand / Thai Bankers' Association, "Thai QR Code Standard" for payments
  (มาตรฐาน Thai QR Code, 2017): PromptPay AIDs A000000677010111 (credit transfer, tag 29)
  and A000000677010112 (bill payment, tag 30), their sub-tags and reference fields.
"""

from __future__ import annotations

import io
import re

import segno

__all__ = [
    "MAX_AMOUNT_SATANG",
    "PromptPayError",
    "amount_from_baht",
    "bill_payment_payload",
    "crc16_ccitt",
    "promptpay_payload",
    "render_png",
]

# Highest amount a Thai QR carries: 99,999,999.99 baht.
MAX_AMOUNT_SATANG = 9_999_999_999

_AID_CREDIT_TRANSFER = "A000000677010111"
_AID_BILL_PAYMENT = "A000000677010112"

_TAG_PAYLOAD_FORMAT = "00"
_TAG_POINT_OF_INITIATION = "01"
_TAG_CREDIT_TRANSFER = "29"
_TAG_BILL_PAYMENT = "30"
_TAG_CURRENCY = "53"
_TAG_AMOUNT = "54"
_TAG_COUNTRY = "58"
_TAG_ADDITIONAL_DATA = "62"
_TAG_CRC = "63"

_PAYLOAD_FORMAT_V1 = "01"
_STATIC = "11"  # the same QR may be paid many times, the payer types the amount
_DYNAMIC = "12"  # one payment of a fixed amount
_CURRENCY_THB = "764"  # ISO 4217 numeric
_COUNTRY_TH = "TH"

# Sub-tags inside the merchant account templates (29 and 30) and tag 62.
_SUB_AID = "00"
_SUB_PHONE = "01"
_SUB_NATIONAL_ID = "02"
_SUB_EWALLET = "03"
_SUB_BILLER_ID = "01"
_SUB_REF1 = "02"
_SUB_REF2 = "03"
_SUB_REF3 = "07"  # EMVCo "terminal label", which the Thai standard uses for ref3

_REF_MAX_LENGTH = 20
_REF_PATTERN = re.compile(rf"[A-Z0-9]{{1,{_REF_MAX_LENGTH}}}")
_DIGITS = re.compile(r"[0-9]+")
# "1234.5", "1,234.50", "0.01": thousands separators only in groups of three.
_BAHT_PATTERN = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]+))?")


class PromptPayError(ValueError):
    """An input to a PromptPay payload is not acceptable; the message names it."""


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data``: poly 0x1021, init 0xFFFF, no reflection, xorout 0.

    This is the checksum EMVCo puts in tag 63 (``"123456789"`` gives 0x29B1).
    """
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def promptpay_payload(*, target: str, amount_satang: int | None) -> str:
    """The Thai QR payload of a PromptPay credit transfer to ``target``.

    ``target`` is a mobile number of 10 digits starting with 0 (``0812345678``), a
    national or tax id of 13 digits, or an e-wallet id of 15 digits; digits only.
    ``amount_satang`` None makes a static QR (the payer types the amount), an int a
    dynamic QR for exactly that amount.

    Raises PromptPayError when the target is not one of those forms or the amount
    is outside 0.01 to 99,999,999.99 baht.
    """
    account = _tlv(_SUB_AID, _AID_CREDIT_TRANSFER) + _credit_transfer_target(target)
    amount = None if amount_satang is None else _format_amount(amount_satang)
    return _payload(_TAG_CREDIT_TRANSFER, account, amount=amount, additional_data=None)


def bill_payment_payload(
    *,
    biller_id: str,
    ref1: str,
    ref2: str | None,
    amount_satang: int,
    ref3: str | None = None,
) -> str:
    """The Thai QR payload of a bill payment to ``biller_id`` for ``amount_satang``.

    ``biller_id`` is 15 digits (the biller's 13-digit tax id and a 2-digit suffix).
    ``ref1`` (the customer's account) and ``ref2`` (the bill; None to leave it out)
    are 1-20 upper-case letters and digits, as banks key them in; so is ``ref3``,
    which goes in the additional data (tag 62) when given. The QR is dynamic.

    Raises PromptPayError naming the first input that is malformed, or when the
    amount is outside 0.01 to 99,999,999.99 baht.
    """
    _require_digits("biller_id", biller_id, lengths=(15,))
    account = (
        _tlv(_SUB_AID, _AID_BILL_PAYMENT)
        + _tlv(_SUB_BILLER_ID, biller_id)
        + _tlv(_SUB_REF1, _reference("ref1", ref1))
    )
    if ref2 is not None:
        account += _tlv(_SUB_REF2, _reference("ref2", ref2))
    additional_data = None if ref3 is None else _tlv(_SUB_REF3, _reference("ref3", ref3))
    return _payload(
        _TAG_BILL_PAYMENT,
        account,
        amount=_format_amount(amount_satang),
        additional_data=additional_data,
    )


def amount_from_baht(text: str) -> int:
    """Satang from an amount in baht as a person types it: ``"1,234.5"`` -> 123450.

    Accepts ASCII digits, optional thousands commas (in groups of three) and up to two
    decimals. Raises PromptPayError for anything else: an empty or malformed text,
    more than two decimals, zero, a negative amount, or more than 99,999,999.99.
    """
    cleaned = text.strip()
    if cleaned.startswith("-") and _BAHT_PATTERN.fullmatch(cleaned[1:]):
        raise PromptPayError("amount must be positive")
    match = _BAHT_PATTERN.fullmatch(cleaned)
    if match is None:
        raise PromptPayError(f"amount {text!r} is not a number of baht like 1,234.50")
    decimals = match.group(1)
    if decimals is not None and len(decimals) > 2:
        raise PromptPayError("amount must have at most two decimals (satang)")
    whole, _, fraction = cleaned.replace(",", "").partition(".")
    # Checked before int(): a thousand-digit text must not cost a big-number parse.
    if len(whole.lstrip("0")) > len(str(MAX_AMOUNT_SATANG // 100)):
        raise PromptPayError("amount must be at most 99,999,999.99 baht")
    satang = int(whole) * 100 + int(fraction.ljust(2, "0"))
    _check_amount(satang)
    return satang


def render_png(payload: str, *, scale: int = 8) -> bytes:
    """A PNG image of ``payload`` as a QR code: error correction M, 4-module quiet zone.

    ``scale`` is the size of one module in pixels. Encoding is CPU-bound (tens of
    milliseconds): callers on the event loop run it in a thread
    (``asyncio.to_thread``). Raises PromptPayError when ``scale`` is not a positive
    int or the payload is empty or too long for a QR code.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise PromptPayError("scale must be a positive integer")
    if not payload:
        raise PromptPayError("payload must not be empty")
    try:
        # boost_error=False: keep exactly level M, as the Thai QR standard asks.
        code = segno.make(payload, error="m", boost_error=False, micro=False)
    except segno.DataOverflowError as exc:
        raise PromptPayError("payload is too long for a QR code") from exc
    out = io.BytesIO()
    code.save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def _payload(
    account_tag: str,
    account: str,
    *,
    amount: str | None,
    additional_data: str | None,
) -> str:
    # Tags in ascending order, as banks' own Thai QR codes have them; EMVCo only
    # requires 00 first and 63 last.
    fields = _tlv(_TAG_PAYLOAD_FORMAT, _PAYLOAD_FORMAT_V1)
    fields += _tlv(_TAG_POINT_OF_INITIATION, _STATIC if amount is None else _DYNAMIC)
    fields += _tlv(account_tag, account)
    fields += _tlv(_TAG_CURRENCY, _CURRENCY_THB)
    if amount is not None:
        fields += _tlv(_TAG_AMOUNT, amount)
    fields += _tlv(_TAG_COUNTRY, _COUNTRY_TH)
    if additional_data is not None:
        fields += _tlv(_TAG_ADDITIONAL_DATA, additional_data)
    # The CRC covers its own tag and length ("6304") as well.
    fields += _TAG_CRC + "04"
    return fields + f"{crc16_ccitt(fields.encode('ascii')):04X}"


def _tlv(tag: str, value: str) -> str:
    # Every value built here is validated ASCII well under 100 characters; a longer
    # one would be a bug in this module, not bad input.
    assert len(value) < 100, f"tag {tag} value too long"
    return f"{tag}{len(value):02d}{value}"


def _credit_transfer_target(target: str) -> str:
    _require_digits("target", target, lengths=(10, 13, 15))
    if len(target) == 10:
        if not target.startswith("0"):
            raise PromptPayError("target phone number must start with 0, like 0812345678")
        # Country code 66 in place of the trunk 0, left-padded to 13 digits.
        return _tlv(_SUB_PHONE, "0066" + target[1:])
    if len(target) == 13:
        return _tlv(_SUB_NATIONAL_ID, target)
    return _tlv(_SUB_EWALLET, target)


def _require_digits(name: str, value: str, *, lengths: tuple[int, ...]) -> None:
    if not isinstance(value, str) or _DIGITS.fullmatch(value) is None:
        raise PromptPayError(f"{name} must be digits only")
    if len(value) not in lengths:
        expected = " or ".join(str(n) for n in lengths)
        raise PromptPayError(f"{name} must be {expected} digits, got {len(value)}")


def _reference(name: str, value: str) -> str:
    if not isinstance(value, str) or _REF_PATTERN.fullmatch(value) is None:
        raise PromptPayError(
            f"{name} must be 1-{_REF_MAX_LENGTH} upper-case letters A-Z and digits"
        )
    return value


def _check_amount(amount_satang: int) -> None:
    # bool is an int subclass; True satang is a bug, not an amount.
    if isinstance(amount_satang, bool) or not isinstance(amount_satang, int):
        raise PromptPayError("amount must be an integer number of satang")
    if amount_satang <= 0:
        raise PromptPayError("amount must be positive")
    if amount_satang > MAX_AMOUNT_SATANG:
        raise PromptPayError("amount must be at most 99,999,999.99 baht")


def _format_amount(amount_satang: int) -> str:
    _check_amount(amount_satang)
    baht, satang = divmod(amount_satang, 100)
    return f"{baht}.{satang:02d}"
