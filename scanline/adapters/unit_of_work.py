"""The unit of work a handler gets as ``uow``: a transaction, its repositories, and the
events it emits.

``with uow:`` opens a transaction (committed when the block ends, rolled back on any
exception); inside it ``uow.users``, ``uow.jobs``, ... work on that transaction, and
``uow.emit(payload)`` signs the event and writes it to the outbox in the same transaction,
so a crash between commit and publish loses nothing (the relay sends it later). After the
commit the events are published at once. A ``with uow:`` inside another joins it, which is
how the runtime can claim an event id (``uow.inbox``) in the very transaction the handler's
effects commit in. Each thread has its own transaction, so a background heartbeat can use
the same ``uow`` while the handler works.

The runtime builds one per invocation, knowing the function (the consumer name of the
inbox, the producer of what is emitted) and the events the route declared it emits: an
emit of anything else is a programming error, refused before it reaches the outbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from scanline.adapters.accounts_repo import (
    Audit,
    CodeRequests,
    OtpCodes,
    RateLimits,
    RefreshTokens,
    Registrations,
    Sessions,
    Users,
)
from scanline.adapters.db import Database
from scanline.adapters.housekeeping import Housekeeping
from scanline.adapters.ocr_jobs_repository import OcrJobs
from scanline.adapters.ocr_lifecycle_repository import IdempotencyKeys, OcrCallbacks
from scanline.adapters.tables import outbox, processed_events
from scanline.events import Event
from scanline.payloads import Payload


class Inbox:
    """The event ids a consumer has handled: the de-duplication of every delivery."""

    def __init__(self, conn: Connection, consumer: str) -> None:
        self._conn, self._consumer = conn, consumer

    def claim(self, event_id: str) -> bool:
        """Record the event; False if it was handled before. A concurrent duplicate blocks
        on the primary key until this transaction ends, then sees the row."""
        result = self._conn.execute(
            insert(processed_events).values(consumer=self._consumer, event_id=event_id)
            .on_conflict_do_nothing())
        return result.rowcount == 1


@dataclass(frozen=True)
class Emitter:
    """Turns a payload into this function's signed event (``Container.emitter``)."""

    producer: str
    build: Callable[[Payload, str | None], Event]


class _Transaction(threading.local):
    depth = 0
    conn: Connection | None = None
    scope: AbstractContextManager[Connection] | None = None
    events: list[Event]


class UnitOfWork:
    def __init__(self, db: Database, *, consumer: str, emitter: Emitter | None,
                 emits: Sequence[type[Payload]] = (),
                 published: Callable[[list[str]], None] = lambda ids: None) -> None:
        self._db, self._consumer, self._emitter = db, consumer, emitter
        self._emits = frozenset(emits)
        self._published = published
        self._tx = _Transaction()

    def __enter__(self) -> UnitOfWork:
        tx = self._tx
        if tx.depth == 0:
            tx.scope = self._db.connect()
            tx.conn = tx.scope.__enter__()
            tx.events = []
        tx.depth += 1
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        tx = self._tx
        tx.depth -= 1
        if tx.depth:
            return
        scope, events = tx.scope, tx.events
        tx.scope = tx.conn = None
        tx.events = []
        assert scope is not None
        scope.__exit__(kind, error, trace)  # commits, or rolls back and re-raises
        if kind is None and events:
            self._published([e.id for e in events])

    @property
    def conn(self) -> Connection:
        if self._tx.conn is None:
            raise RuntimeError("the unit of work is used outside `with uow:`")
        return self._tx.conn

    # Repositories, each on this thread's transaction.
    @property
    def users(self) -> Users:
        return Users(self.conn)

    @property
    def registrations(self) -> Registrations:
        return Registrations(self.conn)

    @property
    def otps(self) -> OtpCodes:
        return OtpCodes(self.conn)

    @property
    def code_requests(self) -> CodeRequests:
        return CodeRequests(self.conn)

    @property
    def limits(self) -> RateLimits:
        return RateLimits(self.conn)

    @property
    def sessions(self) -> Sessions:
        return Sessions(self.conn)

    @property
    def refresh_tokens(self) -> RefreshTokens:
        return RefreshTokens(self.conn)

    @property
    def audit(self) -> Audit:
        return Audit(self.conn)

    @property
    def jobs(self) -> OcrJobs:
        return OcrJobs(self.conn)

    @property
    def idempotency(self) -> IdempotencyKeys:
        return IdempotencyKeys(self.conn)

    @property
    def callbacks(self) -> OcrCallbacks:
        return OcrCallbacks(self.conn)

    @property
    def housekeeping(self) -> Housekeeping:
        return Housekeeping(self.conn)

    @property
    def inbox(self) -> Inbox:
        return Inbox(self.conn, self._consumer)

    def emit(self, payload: Payload, *, subject: str | None = None) -> Event:
        """Sign ``payload`` as this function's event and add it to the outbox."""
        if type(payload) not in self._emits or self._emitter is None:
            raise RuntimeError(f"{type(payload).__name__} is not among the events this "
                               "route declares it emits")
        event = self._emitter.build(payload, subject)
        self.conn.execute(outbox.insert().values(id=event.id, type=event.type,
                                                 body=event.to_structured()))
        self._tx.events.append(event)
        return event
