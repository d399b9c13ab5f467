"""The OCR jobs repository (``uow.jobs``). Every state change is a conditional UPDATE, so
the row itself decides races.

Running a job is a lease: ``claim`` moves a queued job (or one whose lease ran out: its
worker died) to ``processing`` with a fresh lease token and an expiry, the worker renews the
lease while it works, and only the holder of the token can finish or fail the job. A
duplicate or redelivered ``ocr.requested`` that arrives while a live worker holds the lease
therefore finds the job busy instead of starting a second run, and one that arrives after
the job ended finds nothing to do (no second result, no second email).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Row

from scanline.adapters.ocr_jobs_tables import abandoned_uploads, ocr_jobs
from scanline.domain import ocr
from scanline.domain.ocr import Job


def _job(row: Row[Any]) -> Job:
    return Job(id=row.id, user_id=row.user_id, status=row.status, object_key=row.object_key,
               content_type=row.content_type, size=row.size, created_at=row.created_at,
               attempts=row.attempts, engine=row.engine, text=row.text, words=row.words,
               timings=row.timings, error=row.error, completed_at=row.completed_at,
               languages=row.languages, requested_engine=row.requested_engine,
               pages=row.pages, upload_etag=row.upload_etag, callback_url=row.callback_url,
               upload_expires_at=row.upload_expires_at, notify=row.notify)


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"
    BUSY = "busy"  # a live worker holds the lease
    FINISHED = "finished"  # done, failed, or not (or no longer) there


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    job: Job | None = None
    token: str | None = None


class OcrJobs:
    # Notified (the job's id) by the transaction that ends a job or deletes it: whoever
    # waits for it (``scanline.adapters.job_watch``) hears at commit.
    ENDED = "ocr_job_ended"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _ended(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        if ids:
            self._conn.execute(sa.text("SELECT pg_notify(:channel, id) FROM "
                                       "unnest(CAST(:ids AS text[])) AS id"),
                               {"channel": self.ENDED, "ids": ids})

    def create(self, *, job_id: str, user_id: str, status: str, object_key: str,
               content_type: str | None, size: int | None, languages: str | None = None,
               requested_engine: str | None = None, callback_url: str | None = None,
               upload_expires_at: datetime | None = None,
               notify: str = ocr.NOTIFY_EMAIL) -> Job:
        row = self._conn.execute(ocr_jobs.insert().values(
            id=job_id, user_id=user_id, status=status, object_key=object_key,
            content_type=content_type, size=size, languages=languages,
            requested_engine=requested_engine, callback_url=callback_url,
            upload_expires_at=upload_expires_at, notify=notify).returning(*ocr_jobs.c)).one()
        return _job(row)

    def get(self, job_id: str) -> Job | None:
        row = self._conn.execute(sa.select(ocr_jobs).where(ocr_jobs.c.id == job_id)).first()
        return _job(row) if row else None

    def get_owned(self, job_id: str, user_id: str) -> Job | None:
        """The job if ``user_id`` owns it; someone else's job is indistinguishable from none."""
        row = self._conn.execute(sa.select(ocr_jobs).where(
            ocr_jobs.c.id == job_id, ocr_jobs.c.user_id == user_id)).first()
        return _job(row) if row else None

    def page(self, user_id: str, *, limit: int, status: str | None = None,
             after: tuple[datetime, str] | None = None) -> list[Job]:
        """The user's jobs, newest first, from just after ``after`` (the last one of the
        previous page: its creation time and id, so a page never repeats or skips a job
        however many are created meanwhile)."""
        query = sa.select(ocr_jobs).where(ocr_jobs.c.user_id == user_id)
        if status is not None:
            query = query.where(ocr_jobs.c.status == status)
        if after is not None:
            query = query.where(sa.tuple_(ocr_jobs.c.created_at, ocr_jobs.c.id)
                                < sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
        rows = self._conn.execute(query.order_by(ocr_jobs.c.created_at.desc(),
                                                 ocr_jobs.c.id.desc()).limit(limit))
        return [_job(r) for r in rows]

    def delete_owned(self, job_id: str, user_id: str, now: datetime) -> Job | None:
        """Delete the job (its idempotency key and callback go with it); the deleted job,
        or None if ``user_id`` has no such job. If its presigned upload URL can still
        store an object, the key is kept until it cannot (``abandoned``)."""
        row = self._conn.execute(ocr_jobs.delete().where(
            ocr_jobs.c.id == job_id, ocr_jobs.c.user_id == user_id)
            .returning(*ocr_jobs.c)).first()
        if row is None:
            return None
        self._ended([job_id])
        if row.upload_expires_at is not None and row.upload_expires_at > now:
            self._conn.execute(pg_insert(abandoned_uploads).values(
                key=row.object_key, usable_until=row.upload_expires_at)
                .on_conflict_do_nothing())
        return _job(row)

    def abandoned(self, now: datetime, *, limit: int) -> list[str]:
        """Keys of deleted jobs whose upload URL can no longer store anything; row-locked,
        skipping rows another run holds. ``forget`` them once their objects are gone."""
        rows = self._conn.execute(
            sa.select(abandoned_uploads.c.key).where(abandoned_uploads.c.usable_until < now)
            .limit(limit).with_for_update(skip_locked=True))
        return [r.key for r in rows]

    def forget(self, keys: Iterable[str]) -> int:
        return self._conn.execute(abandoned_uploads.delete().where(
            abandoned_uploads.c.key.in_(list(keys)))).rowcount

    def expired(self, now: datetime, *, retention: timedelta, limit: int) -> list[Job]:
        """Jobs past their life: ended longer than ``retention`` ago, or still waiting
        for an upload whose URL has expired. Row-locked, skipping rows another run holds."""
        rows = self._conn.execute(
            sa.select(ocr_jobs).where(sa.or_(
                ocr_jobs.c.completed_at < now - retention,
                sa.and_(ocr_jobs.c.status == ocr.AWAITING_UPLOAD,
                        ocr_jobs.c.upload_expires_at < now)))
            .limit(limit).with_for_update(skip_locked=True))
        return [_job(r) for r in rows]

    def delete(self, job_ids: Iterable[str]) -> int:
        deleted = [r.id for r in self._conn.execute(ocr_jobs.delete().where(
            ocr_jobs.c.id.in_(list(job_ids))).returning(ocr_jobs.c.id))]
        self._ended(deleted)
        return len(deleted)

    def statuses(self, job_ids: Iterable[str]) -> dict[str, str]:
        """Each job's status (the waiters' one query, ``scanline.adapters.job_watch``)."""
        rows = self._conn.execute(sa.select(ocr_jobs.c.id, ocr_jobs.c.status)
                                  .where(ocr_jobs.c.id.in_(list(job_ids))))
        return {r.id: r.status for r in rows}

    def _update(self, job_id: str, from_states: Iterable[str], extra: Iterable[Any],
                values: dict[str, Any], columns: Iterable[Any]) -> Row[Any] | None:
        row = self._conn.execute(
            ocr_jobs.update()
            .where(ocr_jobs.c.id == job_id, ocr_jobs.c.status.in_(sorted(from_states)), *extra)
            .values(updated_at=sa.func.now(), **values)
            .returning(*columns)).first()
        if row is not None and values.get("status") in ocr.FINISHED:
            self._ended([job_id])
        return row

    def _transition(self, job_id: str, from_states: Iterable[str], *extra: Any,
                    **values: Any) -> Job | None:
        """The job as it is now, if it was in one of ``from_states`` (and ``extra``)."""
        row = self._update(job_id, from_states, extra, values, ocr_jobs.c)
        return _job(row) if row else None

    def _moved(self, job_id: str, from_states: Iterable[str], *extra: Any,
               **values: Any) -> bool:
        """Whether the job was in one of ``from_states`` (and ``extra``) and is moved on:
        the row is not read back (a result's pages would be parsed again for nothing)."""
        return self._update(job_id, from_states, extra, values, [ocr_jobs.c.id]) is not None

    def mark_uploaded(self, job_id: str, *, content_type: str, size: int,
                      etag: str) -> bool:
        """Presigned flow: the object has been checked; the job joins the queue, pinned to
        the object as checked (``etag``)."""
        return self._moved(job_id, {ocr.AWAITING_UPLOAD}, status=ocr.QUEUED,
                           content_type=content_type, size=size, upload_etag=etag)

    def refuse_upload(self, job_id: str, error: str) -> bool:
        """Presigned flow: the uploaded object is not what the job allows; it has been
        deleted, and the job ends with the reason."""
        return self._moved(job_id, {ocr.AWAITING_UPLOAD}, status=ocr.FAILED,
                           error=error, completed_at=sa.func.now())

    def claim(self, job_id: str, *, now: datetime, lease: timedelta) -> Claim:
        """Start a queued job, or restart one whose worker's lease has run out."""
        token = str(uuid.uuid4())
        claimable = sa.or_(ocr_jobs.c.status == ocr.QUEUED,
                           sa.and_(ocr_jobs.c.status == ocr.PROCESSING,
                                   sa.or_(ocr_jobs.c.lease_expires_at.is_(None),
                                          ocr_jobs.c.lease_expires_at <= now)))
        job = self._transition(job_id, ocr.CLAIMABLE, claimable, status=ocr.PROCESSING,
                               attempts=ocr_jobs.c.attempts + 1, lease_token=token,
                               lease_expires_at=now + lease)
        if job is not None:
            return Claim(ClaimOutcome.CLAIMED, job, token)
        current = self.get(job_id)
        if current is not None and current.status == ocr.PROCESSING:
            return Claim(ClaimOutcome.BUSY, current)
        return Claim(ClaimOutcome.FINISHED, current)

    def renew(self, job_id: str, token: str, *, now: datetime, lease: timedelta) -> bool:
        """Extend the lease; False once it is no longer this worker's."""
        return self._moved(job_id, {ocr.PROCESSING}, ocr_jobs.c.lease_token == token,
                           lease_expires_at=now + lease)

    def release(self, job_id: str, token: str) -> bool:
        """Give the lease up at once (the job stays ``processing``): the next delivery
        claims it without waiting for the lease to run out."""
        return self._moved(job_id, {ocr.PROCESSING}, ocr_jobs.c.lease_token == token,
                           lease_token=None, lease_expires_at=None)

    def complete(self, job_id: str, token: str, *, engine: str, text: str,
                 timings: dict[str, Any], pages: list[dict[str, Any]] | None = None,
                 words: list[dict[str, Any]] | None = None) -> bool:
        """The result: ``pages`` (the words live there; the flat ``words`` of older jobs
        is derived from them when read, not stored twice)."""
        return self._moved(job_id, {ocr.PROCESSING}, ocr_jobs.c.lease_token == token,
                           status=ocr.DONE, engine=engine, text=text, words=words,
                           pages=pages, timings=timings, error=None,
                           completed_at=sa.func.now(), lease_token=None,
                           lease_expires_at=None)

    def fail(self, job_id: str, token: str, error: str) -> bool:
        return self._moved(job_id, {ocr.PROCESSING}, ocr_jobs.c.lease_token == token,
                           status=ocr.FAILED, error=error, completed_at=sa.func.now(),
                           lease_token=None, lease_expires_at=None)
