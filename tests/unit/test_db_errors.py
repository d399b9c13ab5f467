"""Which database failures are outages (503, retry) and which are bugs (500)."""

import pg8000.dbapi
from sqlalchemy import exc as sa_exc

from scanline.adapters.db import _transient


def wrapped(code: str) -> Exception:
    orig = pg8000.dbapi.ProgrammingError({"S": "FATAL", "C": code, "M": "..."})
    return sa_exc.ProgrammingError("SELECT 1", {}, orig)


def test_restarting_database_errors_are_transient() -> None:
    assert _transient(wrapped("57P03"))  # the database system is starting up
    assert _transient(wrapped("53300"))  # too many connections
    assert _transient(sa_exc.OperationalError("SELECT 1", {}, OSError("refused")))


def test_sql_errors_are_not_outages() -> None:
    assert not _transient(wrapped("42P01"))  # undefined table: a bug, not an outage
    assert not _transient(ValueError("x"))
