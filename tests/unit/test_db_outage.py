"""Which database errors mean "not there right now" (answer 503, retry later) and which
mean a bug or bad data (never retried as if the database were down)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from storage.db import is_database_outage, is_unavailable


class DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver says no")
        self.sqlstate = sqlstate


def wrapped(sqlstate: str | None, kind: type[sa_exc.DBAPIError] = sa_exc.DBAPIError) -> Exception:
    return kind("SELECT 1", {}, DriverError(sqlstate))


@pytest.mark.parametrize(
    "exc",
    [
        wrapped("57P03"),  # the database system is starting up
        wrapped("57P01"),  # terminating connection due to administrator command
        wrapped("08006"),  # connection failure
        wrapped("53300"),  # too many connections
        wrapped(None, sa_exc.OperationalError),  # SQLite: database is locked
        wrapped(None, sa_exc.InterfaceError),  # connection already closed
        sa_exc.TimeoutError("QueuePool limit reached"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(getattr(getattr(e, "orig", None), "sqlstate", "")),
)
def test_an_outage_is_unavailable(exc: Exception) -> None:
    assert is_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        wrapped("23505", sa_exc.IntegrityError),  # unique violation: bad data or a bug
        wrapped("42P01", sa_exc.ProgrammingError),  # undefined table: a bug
        wrapped("22P02", sa_exc.DataError),
        wrapped(None),
        ValueError("not a database error"),
        KeyError("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_bug_or_bad_data_is_not(exc: Exception) -> None:
    assert not is_unavailable(exc)


def test_a_lost_connection_flagged_by_sqlalchemy_is_an_outage() -> None:
    lost = sa_exc.DBAPIError("SELECT 1", {}, DriverError(None), connection_invalidated=True)
    assert is_database_outage(lost)
    # Unwrapped socket errors happen while connecting, outside the database layer.
    assert not is_database_outage(ConnectionResetError())
