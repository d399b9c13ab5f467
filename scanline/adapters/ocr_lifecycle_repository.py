"""The rows of an OCR job's lifecycle around the job itself: its ``Idempotency-Key``
(``uow.idempotency``) and its completion callback (``uow.callbacks``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from scanline.adapters.ocr_jobs_tables import idempotency_keys, ocr_callbacks

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class Remembered:
    """The answer an ``Idempotency-Key`` was first given, and the request it came with."""

    fingerprint: str
    job_id: str
    status: int
    response: dict[str, Any]


class IdempotencyKeys:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find(self, user_id: str, key: str, since: datetime) -> Remembered | None:
        row = self._conn.execute(sa.select(idempotency_keys).where(
            idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key,
            idempotency_keys.c.created_at >= since)).first()
        return Remembered(row.fingerprint, row.job_id, row.status, row.response) if row else None

    def remember(self, user_id: str, key: str, answer: Remembered, now: datetime,
                 window: timedelta) -> bool:
        """Keep the key's first answer; False if another request with the same key got
        there first (its answer is the one that counts). An expired key is replaced."""
        stmt = insert(idempotency_keys).values(
            user_id=user_id, key=key, fingerprint=answer.fingerprint, job_id=answer.job_id,
            status=answer.status, response=answer.response, created_at=now)
        expired = idempotency_keys.c.created_at < now - window
        row = self._conn.execute(stmt.on_conflict_do_update(
            index_elements=[idempotency_keys.c.user_id, idempotency_keys.c.key],
            set_={c: stmt.excluded[c] for c in ("fingerprint", "job_id", "status", "response",
                                                  "created_at")},
            where=expired).returning(idempotency_keys.c.job_id)).first()
        return row is not None

    def prune(self, before: datetime) -> int:
        return self._conn.execute(idempotency_keys.delete().where(
            idempotency_keys.c.created_at < before)).rowcount


@dataclass(frozen=True)
class Callback:
    job_id: str
    url: str
    body: str
    state: str
    attempts: int
    created_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        return {"url": self.url, "state": self.state, "attempts": self.attempts,
                "last_error": self.last_error,
                "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None}


def _callback(row: Any) -> Callback:
    return Callback(row.job_id, row.url, row.body, row.state, row.attempts, row.created_at,
                    row.last_error, row.delivered_at)


class OcrCallbacks:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, job_id: str, url: str, body: str) -> None:
        """Due at once; a job ends once, so a second add (a redelivery) changes nothing."""
        self._conn.execute(insert(ocr_callbacks).values(job_id=job_id, url=url, body=body)
                           .on_conflict_do_nothing())

    def get(self, job_id: str) -> Callback | None:
        row = self._conn.execute(sa.select(ocr_callbacks)
                                 .where(ocr_callbacks.c.job_id == job_id)).first()
        return _callback(row) if row else None

    def claim_due(self, now: datetime, *, hold: timedelta, limit: int) -> list[Callback]:
        """The callbacks due now, each claimed for ``hold`` (a sender that dies while
        posting leaves it due again after that), counted as one more attempt."""
        due = (sa.select(ocr_callbacks.c.job_id)
               .where(ocr_callbacks.c.state == PENDING, ocr_callbacks.c.next_attempt_at <= now)
               .order_by(ocr_callbacks.c.next_attempt_at).limit(limit)
               .with_for_update(skip_locked=True))
        rows = self._conn.execute(
            ocr_callbacks.update().where(ocr_callbacks.c.job_id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + hold, attempts=ocr_callbacks.c.attempts + 1)
            .returning(*ocr_callbacks.c))
        return [_callback(r) for r in rows]

    def delivered(self, job_id: str, now: datetime) -> None:
        self._conn.execute(ocr_callbacks.update().where(ocr_callbacks.c.job_id == job_id)
                           .values(state=DELIVERED, delivered_at=now, last_error=None))

    def retry(self, job_id: str, at: datetime, error: str) -> None:
        self._conn.execute(ocr_callbacks.update().where(ocr_callbacks.c.job_id == job_id)
                           .values(next_attempt_at=at, last_error=error[:2000]))

    def give_up(self, job_id: str, error: str) -> None:
        """Dead-lettered: kept with its reason (``python -m scanline.callbacks``)."""
        self._conn.execute(ocr_callbacks.update().where(ocr_callbacks.c.job_id == job_id)
                           .values(state=DEAD, last_error=error[:2000]))

    def dead(self, limit: int = 100) -> list[Callback]:
        rows = self._conn.execute(sa.select(ocr_callbacks).where(ocr_callbacks.c.state == DEAD)
                                  .order_by(ocr_callbacks.c.created_at).limit(limit))
        return [_callback(r) for r in rows]

    def replay(self, job_id: str, now: datetime) -> bool:
        """A dead callback due again, with a fresh retry period."""
        return self._conn.execute(
            ocr_callbacks.update().where(ocr_callbacks.c.job_id == job_id,
                                         ocr_callbacks.c.state == DEAD)
            .values(state=PENDING, next_attempt_at=now, created_at=now, attempts=0)).rowcount == 1
