"""housekeeping: delete what has expired, on a schedule.

OpenFaaS' cron-connector calls it (stack.yml: ``topic: cron-function`` and ``schedule``);
the local stack's scheduler does the same. The account rules are in
``scanline.adapters.housekeeping``; OCR jobs past their retention (or abandoned before
their upload) go with their stored documents and results. A run is idempotent and
bounded, and runs no more than once a minute however often it is called (it is reachable
through the gateway like every OpenFaaS function), so calling it costs a caller nothing
it could abuse.
"""

from datetime import datetime, timedelta

from scanline.adapters.store import ObjectStore
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import ocr
from scanline.domain.job_policy import JobPolicy
from scanline.domain.rate_limits import HOUSEKEEPING_RUNS
from scanline.runtime import Response, Routes
from scanline.settings import Settings
from scanline.validation import strict_object

# Expired jobs per transaction: two objects each, within one S3 DeleteObjects call (1,000).
JOB_BATCH = 500
MAX_JOB_BATCHES = 20

REPORT = strict_object(
    {"status": {"enum": ["done", "skipped"]},
     "deleted": {"type": "object", "additionalProperties": {"type": "integer"}}},
    required=["status"])

routes = Routes()


@routes.http("/", "POST", summary="Delete expired registrations, codes, sessions, counters, "
                                  "event ids, audit rows, idempotency keys and OCR jobs",
             responses={200: REPORT})
def prune(uow: UnitOfWork, store: ObjectStore, clock: Clock, job_policy: JobPolicy,
          settings: Settings) -> Response:
    now = clock.now()
    with uow:
        if uow.limits.hit(HOUSEKEEPING_RUNS, "run", now) is not None:
            return Response({"status": "skipped"})
        deleted = uow.housekeeping.prune(
            now, replay_window=timedelta(seconds=settings.event_max_age),
            audit_retention=timedelta(days=settings.audit_retention_days))
        deleted["idempotency_keys"] = uow.idempotency.prune(now - job_policy.idempotency_window)
    deleted["ocr_jobs"] = _expired_jobs(uow, store, now, job_policy)
    deleted["abandoned_uploads"] = _abandoned_uploads(uow, store, now)
    return Response({"status": "done", "deleted": deleted})


def _expired_jobs(uow: UnitOfWork, store: ObjectStore, now: datetime,
                  policy: JobPolicy) -> int:
    """Jobs past retention, a batch per transaction: the rows stay locked until their
    objects are gone, so a failure leaves them for the next run, never orphans objects."""
    total = 0
    for _ in range(MAX_JOB_BATCHES):
        with uow:
            jobs = uow.jobs.expired(now, retention=policy.retention, limit=JOB_BATCH)
            if not jobs:
                break
            store.delete(*(key for job in jobs for key in ocr.stored_keys(job)))
            total += uow.jobs.delete(job.id for job in jobs)
    return total


def _abandoned_uploads(uow: UnitOfWork, store: ObjectStore, now: datetime) -> int:
    """Objects stored through the upload URL of a job deleted before the URL expired."""
    total = 0
    for _ in range(MAX_JOB_BATCHES):
        with uow:
            keys = uow.jobs.abandoned(now, limit=JOB_BATCH)
            if not keys:
                break
            store.delete(*keys)
            uow.jobs.forget(keys)
            total += len(keys)
    return total
