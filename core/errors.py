"""Errors the use cases raise. Messages are for operators and logs: never personal data."""


class SelfcareError(Exception):
    """Base class of every error the core raises on purpose."""


class NotFound(SelfcareError):
    """A thing asked for by id does not exist."""


class Conflict(SelfcareError):
    """The change clashes with data already stored (a duplicate key, a stale version)."""


class InvalidInput(SelfcareError):
    """A value from outside is not acceptable; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
