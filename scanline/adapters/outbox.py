"""Moves committed events from the outbox table to the broker.

``flush`` runs right after the transaction that wrote the events; ``relay`` picks up
whatever an earlier flush could not send (broker down, process killed) and runs on a
background thread in every process that has a database. Rows are locked with
``SKIP LOCKED`` so replicas never publish the same row at the same time; consumers still
de-duplicate on the event id, because a crash after publish and before delete resends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import sqlalchemy as sa

from scanline.adapters.bus import Publisher
from scanline.adapters.db import Database
from scanline.adapters.tables import outbox
from scanline.errors import DependencyUnavailable
from scanline.runtime import metrics

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, db: Database, publisher: Publisher, *, relay_after: float = 5.0,
                 batch: int = 100) -> None:
        self._db, self._publisher = db, publisher
        self._relay_after, self._batch = relay_after, batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _send(self, where: sa.ColumnElement[bool]) -> int:
        # One statement takes the rows and keeps them locked until the publish is done:
        # a concurrent flush or relay skips them, and if publishing fails the transaction
        # rolls back and they stay for the relay.
        picked = (sa.select(outbox.c.id).where(where).order_by(outbox.c.created_at)
                  .limit(self._batch).with_for_update(skip_locked=True))
        try:
            with self._db.connect() as conn:
                rows = conn.execute(
                    outbox.delete().where(outbox.c.id.in_(picked.scalar_subquery()))
                    .returning(outbox.c.id, outbox.c.type, outbox.c.body,
                               outbox.c.created_at)).all()
                if rows:
                    self._publisher.publish(sorted(rows, key=lambda r: r.created_at))
                return len(rows)
        except DependencyUnavailable as exc:
            log.warning("outbox: events kept for later: %s", exc.detail)
            return 0

    def flush(self, ids: Sequence[str]) -> None:
        if ids:
            self._send(outbox.c.id.in_(list(ids)))

    def relay(self) -> int:
        """Send events older than ``relay_after`` seconds; returns how many were sent."""
        cutoff = sa.func.now() - sa.text(f"interval '{float(self._relay_after)} seconds'")
        sent = total = self._send(outbox.c.created_at < cutoff)
        while sent == self._batch:
            sent = self._send(outbox.c.created_at < cutoff)
            total += sent
        return total

    def start(self, interval: float = 5.0) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(interval,),
                                            name="outbox-relay", daemon=True)
            self._thread.start()

    def backlog(self) -> int:
        """How many events are committed and not yet confirmed by the broker."""
        with self._db.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one())

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if self.relay():
                    log.info("outbox: relayed pending events")
                metrics.OUTBOX_BACKLOG.set(self.backlog())
            except DependencyUnavailable as exc:  # the relay already said the database is down
                log.debug("outbox: backlog unknown: %s", exc.detail)
            except Exception:  # the relay must outlive any single bad round
                log.exception("outbox relay round failed")

    def stop(self) -> None:
        self._stop.set()
