"""SQL for OCR jobs. Every state change is a conditional UPDATE, so the row itself
decides races: only a ``processing`` job can finish, and only once, which is what keeps
a redelivered or duplicated ``ocr.requested`` from sending a second email."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from scanline.adapters.accounts_tables import users
from scanline.adapters.ocr_jobs_tables import ocr_jobs
from scanline.domain import ocr
from scanline.domain.ocr import Job


def _job(row: Row[Any]) -> Job:
    return Job(id=row.id, user_id=row.user_id, status=row.status, object_key=row.object_key,
               content_type=row.content_type, size=row.size, created_at=row.created_at,
               attempts=row.attempts, engine=row.engine, text=row.text, words=row.words,
               timings=row.timings, error=row.error, completed_at=row.completed_at)


def create(conn: Connection, *, job_id: str, user_id: str, status: str, object_key: str,
           content_type: str | None, size: int | None) -> Job:
    row = conn.execute(ocr_jobs.insert().values(
        id=job_id, user_id=user_id, status=status, object_key=object_key,
        content_type=content_type, size=size).returning(*ocr_jobs.c)).one()
    return _job(row)


def get(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(sa.select(ocr_jobs).where(ocr_jobs.c.id == job_id)).first()
    return _job(row) if row else None


def get_owned(conn: Connection, job_id: str, user_id: str) -> Job | None:
    """The job if ``user_id`` owns it; someone else's job is indistinguishable from none."""
    row = conn.execute(sa.select(ocr_jobs).where(
        ocr_jobs.c.id == job_id, ocr_jobs.c.user_id == user_id)).first()
    return _job(row) if row else None


def recent(conn: Connection, user_id: str, limit: int) -> list[Job]:
    rows = conn.execute(sa.select(ocr_jobs).where(ocr_jobs.c.user_id == user_id)
                        .order_by(ocr_jobs.c.created_at.desc()).limit(limit))
    return [_job(r) for r in rows]


def _transition(conn: Connection, job_id: str, from_states: Iterable[str],
                **values: Any) -> Job | None:
    row = conn.execute(
        ocr_jobs.update()
        .where(ocr_jobs.c.id == job_id, ocr_jobs.c.status.in_(sorted(from_states)))
        .values(updated_at=sa.func.now(), **values)
        .returning(*ocr_jobs.c)).first()
    return _job(row) if row else None


def mark_uploaded(conn: Connection, job_id: str, *, content_type: str, size: int) -> Job | None:
    """Presigned flow: the object has been checked; the job joins the queue."""
    return _transition(conn, job_id, {ocr.AWAITING_UPLOAD}, status=ocr.QUEUED,
                       content_type=content_type, size=size)


def claim(conn: Connection, job_id: str) -> Job | None:
    """Start (or restart, after a crash) a job; None when it is finished or unknown."""
    return _transition(conn, job_id, ocr.CLAIMABLE, status=ocr.PROCESSING,
                       attempts=ocr_jobs.c.attempts + 1)


def complete(conn: Connection, job_id: str, *, engine: str, text: str,
             words: list[dict[str, Any]], timings: dict[str, float]) -> Job | None:
    return _transition(conn, job_id, {ocr.PROCESSING}, status=ocr.DONE, engine=engine,
                       text=text, words=words, timings=timings, error=None,
                       completed_at=sa.func.now())


def fail(conn: Connection, job_id: str, error: str) -> Job | None:
    return _transition(conn, job_id, {ocr.QUEUED, ocr.PROCESSING}, status=ocr.FAILED,
                       error=error, completed_at=sa.func.now())


def user_email(conn: Connection, user_id: str) -> str | None:
    """The owner's address, read from the accounts table (read-only)."""
    try:
        key = uuid.UUID(user_id)
    except ValueError:
        return None
    return conn.execute(sa.select(users.c.email).where(users.c.id == key)).scalar_one_or_none()
