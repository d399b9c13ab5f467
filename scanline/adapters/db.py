"""PostgreSQL through SQLAlchemy 2 on pg8000 (handlers use it through ``uow``).

The engine is built on first use, never at import; a connection failure becomes
``DependencyUnavailable`` so the caller gets a 503 (or the message is retried), and the
pool's pre-ping lets the process recover by itself once the server is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from scanline.adapters.pg_listener import Listener
from scanline.errors import DependencyUnavailable

log = logging.getLogger(__name__)

# pg8000 and SQLAlchemy report a dead or unreachable server through these.
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                ConnectionError, TimeoutError)
# SQLSTATE classes of a server that is restarting or overloaded, which pg8000 raises as
# ProgrammingError: 08 connection exception, 53 insufficient resources, 57 operator
# intervention (57P03 "the database system is starting up").
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")


def _transient(exc: Exception) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    details = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    code = details.get("C", "") if isinstance(details, dict) else ""
    return code[:2] in _TRANSIENT_SQLSTATE_CLASSES


def database_url(url: str, password: str | None) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+pg8000")  # SQLAlchemy 2.1 means psycopg
    if password and not parsed.password:
        parsed = parsed.set(password=password)
    return parsed


class Database:
    """Lazily built engine plus ``transaction()``; one per process."""

    def __init__(self, url: str, password: Callable[[], str | None], *,
                 timeout: float = 2.0, pool_size: int = 8) -> None:
        self._url, self._password = url, password
        self._timeout, self._pool_size = timeout, pool_size
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = sa.create_engine(
                    database_url(self._url, self._password()),
                    pool_pre_ping=True, pool_size=self._pool_size, max_overflow=4,
                    pool_timeout=self._timeout, pool_recycle=1800,
                    client_encoding="utf8", connect_args={"timeout": max(self._timeout, 5)},
                )
            return self._engine

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any exception."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (sa_exc.DBAPIError, *_UNAVAILABLE) as exc:
            if not _transient(exc):
                raise
            detail = f"database error: {type(exc).__name__}"
            raise DependencyUnavailable("postgresql", detail) from exc

    def listener(self, channel: str) -> Listener:
        """A connection of its own for ``channel``'s notifications: not one of the pool's,
        which it would hold for as long as anyone listens."""
        engine = self.engine
        _, params = engine.dialect.create_connect_args(engine.url)
        return Listener(params, channel, max(self._timeout, 5))

    def ping(self) -> None:
        with self.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
