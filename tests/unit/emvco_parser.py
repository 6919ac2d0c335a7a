"""A reader of EMVCo merchant-presented QR payloads, for tests only.

Written from the EMVCo MPM specification (EMV QRCPS Merchant-Presented Mode v1.1,
sections 4.7 "Data objects" and 4.7.3 "CRC") without looking at the code it checks:
it shares nothing with ``core.promptpay`` so that a mistake there is not repeated
here. The CRC is table-driven where the production one is bitwise.
"""

from __future__ import annotations

# Merchant account information templates (26-51) and the additional data field
# template (62) hold data objects of their own; every other top-level tag is a value.
TEMPLATE_TAGS = frozenset({f"{tag:02d}" for tag in range(26, 52)} | {"62"})

Fields = dict[str, str | dict[str, str]]


class EmvcoFormatError(ValueError):
    """The text is not a well-formed EMVCo payload."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for high in range(256):
        value = high << 8
        for _ in range(8):
            value = (value << 1) ^ 0x1021 if value & 0x8000 else value << 1
        table.append(value & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, xorout 0)."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def split_data_objects(text: str) -> list[tuple[str, str]]:
    """The (tag, value) pairs of ``text`` in order; raises EmvcoFormatError if malformed."""
    objects: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        header = text[position : position + 4]
        if len(header) < 4 or not header.isascii() or not header.isdigit():
            raise EmvcoFormatError(f"bad tag/length header {header!r} at {position}")
        tag, length = header[:2], int(header[2:])
        value = text[position + 4 : position + 4 + length]
        if len(value) != length:
            raise EmvcoFormatError(f"tag {tag} at {position} runs past the end")
        objects.append((tag, value))
        position += 4 + length
    return objects


def _unique(objects: list[tuple[str, str]], where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for tag, value in objects:
        if tag in found:
            raise EmvcoFormatError(f"tag {tag} appears twice in {where}")
        found[tag] = value
    return found


def crc_is_valid(payload: str) -> bool:
    """Whether ``payload`` ends in tag 63 whose value is the CRC of all that precedes it."""
    if len(payload) < 8 or payload[-8:-4] != "6304":
        return False
    stated = payload[-4:]
    if any(c not in "0123456789ABCDEF" for c in stated):
        return False
    return crc16_ccitt_false(payload[:-4].encode("utf-8")) == int(stated, 16)


def parse_payload(payload: str) -> Fields:
    """The data objects of a payload, templates opened into dicts of their own.

    Checks what the spec asks of every payload: 00 first with value "01", 63 last
    with length 4 and a matching CRC, no tag twice. Raises EmvcoFormatError otherwise.
    """
    objects = split_data_objects(payload)
    if not objects or objects[0] != ("00", "01"):
        raise EmvcoFormatError("payload does not start with 000201")
    if objects[-1][0] != "63" or len(objects[-1][1]) != 4:
        raise EmvcoFormatError("payload does not end with a 4-character tag 63")
    if not crc_is_valid(payload):
        raise EmvcoFormatError("CRC does not match")
    fields: Fields = {}
    for tag, value in _unique(objects, "payload").items():
        if tag in TEMPLATE_TAGS:
            fields[tag] = _unique(split_data_objects(value), f"template {tag}")
        else:
            fields[tag] = value
    return fields


def top_level_tags(payload: str) -> list[str]:
    """The top-level tags of ``payload`` in the order they appear."""
    return [tag for tag, _ in split_data_objects(payload)]
