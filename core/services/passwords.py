"""Rules for a new e-service User ID and password (registration in chat and on the page).

A password has at least 8 characters and is refused when it is a common password (the
bundled list ``common_passwords.txt``, loaded once at start-up with
:func:`load_common_passwords`), a single repeated character, or contains the User ID.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

from core.identifiers import normalise_user_id

__all__ = [
    "COMMON_PASSWORDS_FILE",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "USER_ID_PATTERN",
    "PasswordProblem",
    "load_common_passwords",
    "password_problem",
    "valid_user_id",
]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
#: The shape of a User ID (the same as ``selfcare users create`` accepts).
USER_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{3,64}")
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")


class PasswordProblem(enum.StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    COMMON = "common"
    CONTAINS_USER_ID = "contains_user_id"


def load_common_passwords(path: Path = COMMON_PASSWORDS_FILE) -> frozenset[str]:
    """The list, case-folded (blocking file read: call at start-up or in a thread)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().casefold() for line in lines if line.strip() and not line.startswith("#")
    )


def valid_user_id(user_id: str) -> bool:
    return USER_ID_PATTERN.fullmatch(user_id) is not None


def password_problem(
    password: str, *, user_id: str, common: frozenset[str]
) -> PasswordProblem | None:
    """Why ``password`` cannot be chosen, or None when it can."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return PasswordProblem.TOO_SHORT
    if len(password) > MAX_PASSWORD_LENGTH:
        return PasswordProblem.TOO_LONG
    folded = password.casefold()
    if folded in common or len(set(folded)) == 1:
        return PasswordProblem.COMMON
    if normalise_user_id(user_id) in folded:
        return PasswordProblem.CONTAINS_USER_ID
    return None
