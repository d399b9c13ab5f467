"""housekeeping: delete what has expired, on a schedule.

OpenFaaS' cron-connector calls it (stack.yml: ``topic: cron-function`` and ``schedule``);
the local stack's scheduler does the same. The account rules are in
``scanline.adapters.housekeeping``; OCR jobs past their retention (or abandoned before
their upload) go with their stored documents and results. A run is idempotent and
bounded, and runs no more than once a minute however often it is called (it is reachable
through the gateway like every OpenFaaS function), so calling it costs a caller nothing
it could abuse.
"""

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TypeVar

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
T = TypeVar("T")

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
    deleted["ocr_jobs"] = _with_their_objects(
        uow, store, lambda u: u.jobs.expired(now, retention=job_policy.retention,
                                             limit=JOB_BATCH),
        ocr.stored_keys, lambda u, jobs: u.jobs.delete(job.id for job in jobs))
    # Objects stored through the upload URL of a job deleted before the URL expired.
    deleted["abandoned_uploads"] = _with_their_objects(
        uow, store, lambda u: u.jobs.abandoned(now, limit=JOB_BATCH),
        lambda key: (key,), lambda u, keys: u.jobs.forget(keys))
    return Response({"status": "done", "deleted": deleted})


def _with_their_objects(uow: UnitOfWork, store: ObjectStore,
                        pick: Callable[[UnitOfWork], Sequence[T]],
                        keys: Callable[[T], Iterable[str]],
                        drop: Callable[[UnitOfWork, Sequence[T]], int]) -> int:
    """Rows that expired and their stored objects, a batch per transaction: the rows stay
    locked until their objects are gone, so a failure leaves them for the next run, never
    orphans objects."""
    total = 0
    for _ in range(MAX_JOB_BATCHES):
        with uow:
            batch = pick(uow)
            if not batch:
                break
            store.delete(*(key for item in batch for key in keys(item)))
            total += drop(uow, batch)
    return total
