"""ocr: recognise the staged image of an ``ocr.requested`` event and report the result.

The job row is the source of truth for the message's fate. Claiming moves it to
``processing`` (again, after a crash: the broker redelivers and the job is redone);
finishing is a conditional update in the same transaction as the ``ocr.completed`` and
``email.requested`` events, so a duplicate delivery finds nothing to finish and sends no
second email. An image that cannot be decoded fails the job with the reason and answers
4xx: the message is dead-lettered instead of retried. The engine is built once per process,
on first use, and concurrent deliveries are recognised together (``deps.ocr``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from scanline import events
from scanline.adapters import ocr_jobs_repository as jobs
from scanline.bootstrap import Container
from scanline.domain import ocr
from scanline.domain.ocr import Job
from scanline.errors import BadRequest, InvalidInput, ScanlineError
from scanline.events import Event
from scanline.ocr.images import load_page
from scanline.runtime import Context, Response
from scanline.validation import strict_object, validate

DEPENDS_ON = ("db", "bus", "store")
log = logging.getLogger(__name__)

OCR_REQUESTED = strict_object(
    {"bucket": {"type": "string", "minLength": 3, "maxLength": 63},
     "key": {"type": "string", "minLength": 1, "maxLength": 1024},
     "job_id": {"type": "string", "format": "uuid"},
     "user_id": {"type": "string", "minLength": 1, "maxLength": 200}},
    required=["bucket", "key", "job_id", "user_id"],
)


def on_start(container: Container) -> None:
    """Say which engine this process will run (the model itself loads at first use)."""
    log.info("%s", container.ocr.describe())


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _fail(context: Context, job: Job, error: ScanlineError) -> None:
    deps = context.deps
    with deps.uow() as uow:
        if jobs.fail(uow.conn, job.id, error.detail):
            uow.emit(deps.event(events.OCR_COMPLETED, {
                "job_id": job.id, "user_id": job.user_id, "status": ocr.FAILED,
                "error": error.detail}, subject=job.id))
    log.warning("ocr job %s failed: %s", job.id, error.detail)


def _finish(context: Context, job: Job, result: dict[str, Any]) -> bool:
    deps = context.deps
    with deps.uow() as uow:
        if not jobs.complete(uow.conn, job.id, **result):
            return False  # a concurrent duplicate finished it first
        uow.emit(deps.event(events.OCR_COMPLETED, {
            "job_id": job.id, "user_id": job.user_id, "status": ocr.DONE,
            "engine": result["engine"]}, subject=job.id))
        to = jobs.user_email(uow.conn, job.user_id)
        if to:
            uow.emit(deps.event(events.EMAIL_REQUESTED,
                                {"to": to, **ocr.completion_email(job.id, result["text"])},
                                subject=job.user_id))
        else:
            log.warning("ocr job %s: owner has no email address; no email sent", job.id)
    return True


def handle(event: Event, context: Context) -> Response:
    if event.type != events.OCR_REQUESTED:
        raise BadRequest(f"ocr handles {events.OCR_REQUESTED} events, not {event.type}")
    data = validate(event.data, OCR_REQUESTED)
    deps = context.deps
    service = deps.ocr
    if data["bucket"] != deps.store.bucket:
        raise BadRequest(f"bucket {data['bucket']!r} is not this deployment's upload bucket")
    with deps.uow() as uow:
        job = jobs.claim(uow.conn, data["job_id"])
    if job is None:
        return Response({"status": "ignored", "job_id": data["job_id"]})
    if job.object_key != data["key"] or job.user_id != data["user_id"]:
        raise BadRequest("the event does not match the job it names")
    if job.attempts > service.config.max_attempts:
        error = InvalidInput(f"gave up after {job.attempts - 1} attempts that did not finish")
        _fail(context, job, error)
        raise error
    started = time.monotonic()
    try:
        blob = deps.store.get(job.object_key)
        fetched = time.monotonic()
        page = load_page(blob, service.config.limits)
    except ScanlineError as exc:
        if exc.status >= 500:
            raise  # S3 unavailable: the message is retried
        _fail(context, job, exc)  # object gone (404), not an image (415), a bomb (413)
        raise
    decoded = time.monotonic()
    outcome = service.recognize(page)
    timings = {"fetch_ms": round((fetched - started) * 1000, 1),
               "decode_ms": round((decoded - fetched) * 1000, 1),
               "batch_wait_ms": outcome.queued_ms, "engine_ms": outcome.engine_ms,
               "batch_size": outcome.batch_size, "total_ms": _ms(started)}
    finished = _finish(context, job, {
        "engine": outcome.engine, "text": outcome.recognition.text,
        "words": [w.to_json() for w in outcome.recognition.words], "timings": timings})
    if finished and service.config.delete_after_success:
        deps.store.delete(job.object_key)
    return Response({"status": ocr.DONE if finished else "duplicate", "job_id": job.id})
