"""ocr: recognise the staged image of an ``ocr.requested`` event and report the result.

The job row is the source of truth for the message's fate, so the event is checked
against it before anything changes: the job must exist (a deleted job's event is
acknowledged and dropped), its object key and owner must be the event's. Claiming it is a
lease (``scanline.ocr.lease``): a duplicate that arrives while a live worker holds the job
answers 503 and is retried until the job has ended, then dropped; a redelivery after a
crash takes the job over once the dead worker's lease has run out. Finishing is
conditional on still holding the lease, in the same transaction as the ``ocr.completed``
and ``email.requested`` events, so no job is finished twice and no second email is sent.
An image that cannot be decoded fails the job with the reason and answers 4xx: the
message is dead-lettered instead of retried. The engine is built once per process, on
first use, and concurrent deliveries are recognised together (``ocr_service``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from scanline.adapters.ocr_jobs_repository import ClaimOutcome
from scanline.adapters.store import ObjectStore
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import ocr
from scanline.domain.ocr import Job
from scanline.errors import BadRequest, DependencyUnavailable, InvalidInput, ScanlineError
from scanline.ocr import lease
from scanline.ocr.images import load_page
from scanline.ocr.service import OcrService
from scanline.payloads import EmailRequested, OcrCompleted, OcrRequested
from scanline.runtime import Response, Routes

log = logging.getLogger(__name__)

routes = Routes()


@routes.on_start
def announce(ocr_service: OcrService) -> None:
    """Say which engine this process will run (the model itself loads at first use)."""
    log.info("%s", ocr_service.describe())


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _fail(uow: UnitOfWork, job: Job, token: str, error: ScanlineError) -> None:
    with uow:
        if uow.jobs.fail(job.id, token, error.detail):
            uow.emit(OcrCompleted(job_id=job.id, user_id=job.user_id, status=ocr.FAILED,
                                  error=error.detail[:2000]), subject=job.id)
    log.warning("ocr job %s failed: %s", job.id, error.detail)


def _finish(uow: UnitOfWork, job: Job, token: str, result: dict[str, Any]) -> bool:
    with uow:
        if not uow.jobs.complete(job.id, token, **result):
            return False  # the lease passed to another worker, which finishes the job
        uow.emit(OcrCompleted(job_id=job.id, user_id=job.user_id, status=ocr.DONE,
                              engine=result["engine"]), subject=job.id)
        to = uow.users.email_of(job.user_id)
        if to:
            uow.emit(ocr.completion_email(to, job.id, result["text"]), subject=job.user_id)
        else:
            log.warning("ocr job %s: owner has no email address; no email sent", job.id)
    return True


@routes.event(OcrRequested, emits=[OcrCompleted, EmailRequested], inbox=False)
def recognise(event: OcrRequested, uow: UnitOfWork, store: ObjectStore,
              ocr_service: OcrService, clock: Clock) -> Response:
    if event.bucket != store.bucket:
        raise BadRequest(f"bucket {event.bucket!r} is not this deployment's upload bucket")
    config = ocr_service.config
    with uow:
        job = uow.jobs.get(event.job_id)
        if job is not None and (job.object_key, job.user_id) != (event.key, event.user_id):
            raise BadRequest("the event does not match the job it names")
        claim = uow.jobs.claim(event.job_id, now=clock.now(), lease=config.lease)
    if claim.outcome is ClaimOutcome.FINISHED:
        return Response({"status": "ignored", "job_id": event.job_id})
    if claim.outcome is ClaimOutcome.BUSY:
        raise DependencyUnavailable(
            "ocr-job", f"job {event.job_id} is being recognised by another worker",
            headers={"Retry-After": str(int(config.lease.total_seconds()))})
    job, token = claim.job, claim.token
    assert job is not None and token is not None
    if job.attempts > config.max_attempts:
        error = InvalidInput(f"gave up after {job.attempts - 1} attempts that did not finish")
        _fail(uow, job, token, error)
        raise error
    started = time.monotonic()
    with lease.kept(uow, job.id, token, clock, config.lease):
        try:
            blob = store.get(job.object_key)
            fetched = time.monotonic()
            page = load_page(blob, config.limits)
        except ScanlineError as exc:
            if exc.status >= 500:
                raise  # S3 unavailable: the message is retried
            _fail(uow, job, token, exc)  # object gone (404), not an image (415), a bomb (413)
            raise
        decoded = time.monotonic()
        outcome = ocr_service.recognize(page)
    timings = {"fetch_ms": round((fetched - started) * 1000, 1),
               "decode_ms": round((decoded - fetched) * 1000, 1),
               "batch_wait_ms": outcome.queued_ms, "engine_ms": outcome.engine_ms,
               "batch_size": outcome.batch_size, "total_ms": _ms(started)}
    finished = _finish(uow, job, token, {
        "engine": outcome.engine, "text": outcome.recognition.text,
        "words": [w.to_json() for w in outcome.recognition.words], "timings": timings})
    if finished and config.delete_after_success:
        store.delete(job.object_key)
    return Response({"status": ocr.DONE if finished else "duplicate", "job_id": job.id})
