"""ocr: read the staged document of an ``ocr.requested`` event and report the result.

The job row is the source of truth for the message's fate, so the event is checked
against it before anything changes: the job must exist (a deleted job's event is
acknowledged and dropped), its object key and owner must be the event's. Claiming it is a
lease (``scanline.ocr.lease``): a duplicate that arrives while a live worker holds the job
answers 503 and is retried until the job has ended, then dropped; a redelivery after a
crash takes the job over once the dead worker's lease has run out. Finishing is
conditional on still holding the lease, in the same transaction as the ``ocr.completed``
and ``email.requested`` events, so no job is finished twice and no second email is sent.
A document that cannot be read (undecodable, encrypted, over a limit, a language or
engine this deployment lacks) fails the job with the reason and answers 4xx: the message is
dead-lettered instead of retried. Pages are decoded one at a time, read by the job's engine
in its languages (built once per process, on first use; concurrent pages of concurrent
jobs are recognised in parallel, ``ocr_service``), and the searchable PDF is made from the
page images while they are at hand and kept beside the result.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from scanline.adapters.callback_sender import CallbackSender
from scanline.adapters.ocr_jobs_repository import ClaimOutcome
from scanline.adapters.store import ObjectStore
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import ocr
from scanline.domain.job_policy import JobPolicy
from scanline.domain.ocr import Job
from scanline.errors import (
    BadRequest,
    Conflict,
    DependencyUnavailable,
    InvalidInput,
    ScanlineError,
)
from scanline.ocr import lease, outputs
from scanline.ocr.documents import PDF, PageImage, inspect, pages
from scanline.ocr.engines import PageRequest
from scanline.ocr.service import OcrService, Outcome
from scanline.payloads import EmailRequested, OcrCompleted, OcrRequested
from scanline.runtime import Response, Routes
from scanline.settings import Settings

log = logging.getLogger(__name__)

routes = Routes()


class JobTimedOut(InvalidInput):
    """The job ran past ``OCR_JOB_TIMEOUT_SECONDS``: it fails, it is not retried."""


@routes.on_start
def announce(ocr_service: OcrService) -> None:
    """Say which engine this process will run (the model itself loads at first use)."""
    log.info("%s", ocr_service.describe())


@routes.on_start
def deliver_callbacks(callback_sender: CallbackSender) -> None:
    """Completion callbacks are delivered from here, in the background."""
    callback_sender.start()


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


def _ended(uow: UnitOfWork, job: Job, completed: OcrCompleted) -> None:
    """The job's ``ocr.completed`` event, and its callback if it named one, in the
    transaction that ends it."""
    event = uow.emit(completed, subject=job.id)
    if job.callback_url:
        uow.callbacks.add(job.id, job.callback_url, event.to_structured().decode())


def _wake_for(job: Job, callback_sender: CallbackSender) -> None:
    """After a job ended: its callback is delivered now, not at the sender's next round.
    A job without one wakes nobody (each wake is a query for due callbacks)."""
    if job.callback_url:
        callback_sender.wake()


def _fail(uow: UnitOfWork, job: Job, token: str, error: ScanlineError) -> None:
    with uow:
        if uow.jobs.fail(job.id, token, error.detail):
            _ended(uow, job, OcrCompleted(job_id=job.id, user_id=job.user_id,
                                          status=ocr.FAILED, error=error.detail[:2000]))
    log.warning("ocr job %s failed: %s", job.id, error.detail)


def _release(uow: UnitOfWork, job_id: str, token: str) -> None:
    """An attempt that failed on our side hands its lease back, so that the broker's next
    delivery claims the job at once and counts an attempt. Held until it ran out, every
    redelivery meanwhile found the job busy (503) and spent the queue's delivery limit
    before ``OCR_MAX_ATTEMPTS`` could fail the job: it stayed ``processing`` for ever."""
    try:
        with uow:
            uow.jobs.release(job_id, token)
    except DependencyUnavailable as exc:  # the lease runs out by itself
        log.warning("ocr job %s: lease not released: %s", job_id, exc.detail)


def _finish(uow: UnitOfWork, job: Job, token: str, result: dict[str, Any],
            settings: Settings) -> bool:
    with uow:
        if not uow.jobs.complete(job.id, token, **result):
            return False  # the lease passed to another worker, or the job was deleted
        _ended(uow, job, OcrCompleted(job_id=job.id, user_id=job.user_id, status=ocr.DONE,
                                      engine=result["engine"]))
        if job.notify == ocr.NOTIFY_EMAIL:
            _mail_owner(uow, job, result, settings)
    return True


def _mail_owner(uow: UnitOfWork, job: Job, result: dict[str, Any], settings: Settings) -> None:
    to = uow.users.email_of(job.user_id)
    if to:
        uow.emit(ocr.completion_email(to, job.id, ocr.job_url(settings.public_url, job.id),
                                      result["pages"]), subject=job.user_id)
    else:
        log.warning("ocr job %s: owner has no email address; no email sent", job.id)


@routes.event(OcrRequested, emits=[OcrCompleted, EmailRequested], inbox=False)
def recognise(event: OcrRequested, uow: UnitOfWork, store: ObjectStore,
              ocr_service: OcrService, job_policy: JobPolicy, callback_sender: CallbackSender,
              clock: Clock, settings: Settings) -> Response:
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
        _wake_for(job, callback_sender)
        raise error
    started = time.monotonic()
    with lease.kept(uow, job.id, token, clock, config.lease):
        try:
            result = _read(job, store, ocr_service, time.monotonic()
                           + job_policy.job_timeout.total_seconds())
        except ScanlineError as exc:
            if exc.status >= 500:  # S3 or the engine unavailable: the message is retried
                _release(uow, job.id, token)
                raise
            # Object gone (404) or changed since submit (409), not a document (415), a
            # bomb (413), encrypted, too slow, a language/engine this deployment lacks (422).
            _fail(uow, job, token, exc)
            _wake_for(job, callback_sender)
            raise
        except Exception:  # a fault of ours: retried, and counted, until it gives up
            _release(uow, job.id, token)
            raise
    result["timings"]["total_ms"] = _ms(started)
    finished = _finish(uow, job, token, result, settings)
    _wake_for(job, callback_sender)
    if finished and config.delete_after_success:
        store.delete(job.object_key)
    if not finished:
        with uow:
            gone = uow.jobs.get(job.id) is None
        if gone:  # deleted while it was read: what this run stored goes too
            store.delete(*ocr.stored_keys(job))
    return Response({"status": ocr.DONE if finished else "duplicate", "job_id": job.id})


def _read(job: Job, store: ObjectStore, ocr_service: OcrService,
          deadline: float) -> dict[str, Any]:
    """Fetch (exactly the object checked at submit, never more than the size limit),
    check, then per page: decode, recognise, keep for the searchable PDF; a job still
    reading at ``deadline`` fails."""
    config = ocr_service.config
    started = time.monotonic()
    try:
        blob = store.get(job.object_key, etag=job.upload_etag,
                         max_bytes=config.limits.max_bytes)
    except Conflict:
        raise Conflict("the upload changed after the job was submitted; its document was "
                       "not read (create a new job)") from None
    fetched = time.monotonic()
    info = inspect(blob, config.limits)
    languages = job.languages or config.languages_of(None)
    engine = ocr_service.engine_for(job.requested_engine, languages=languages,
                                    document=info.media_type == PDF or info.pages > 1)
    workers = ocr_service.engine_named(engine).workers
    results: list[dict[str, Any]] = []
    for_pdf: list[Any] = []
    per_page: list[dict[str, Any]] = []
    over_pdf = info.media_type == PDF
    # An image's own data goes into the searchable PDF, where it is the page as read.
    original = blob if info.media_type != PDF and info.pages == 1 else None
    decode_started = time.monotonic()
    decode_ms = 0.0

    def recognise_page(page: PageImage) -> tuple[PageImage, Outcome]:
        return page, ocr_service.recognize(PageRequest(page.image, page.dpi, languages), engine)

    # A job's pages are read by every engine worker at once, in order, with at most that
    # many pages decoded ahead: a 50-page PDF takes 50 pages' time over the workers, and
    # only a few page images are in memory at any moment.
    with ThreadPoolExecutor(workers, thread_name_prefix="ocr-page") as pool:
        window: deque[Future[tuple[PageImage, Outcome]]] = deque()
        for page in pages(blob, config.limits):
            if time.monotonic() > deadline:
                raise JobTimedOut(f"the job took longer than {_ms(started) / 1000:.0f} s "
                                  f"(OCR_JOB_TIMEOUT_SECONDS) and was stopped at page "
                                  f"{page.number}")
            decode_ms += _ms(decode_started)
            window.append(pool.submit(recognise_page, page))
            while len(window) >= workers:
                _collect(window.popleft().result(), results, for_pdf, per_page,
                         over_pdf=over_pdf, original=original)
            decode_started = time.monotonic()
        while window:
            _collect(window.popleft().result(), results, for_pdf, per_page, over_pdf=over_pdf,
                     original=original)
    pdf_started = time.monotonic()
    store.put(ocr.pdf_key(job.user_id, job.id),
              _searchable_pdf(blob, info.media_type, for_pdf, ocr_service), PDF)
    timings = {"fetch_ms": round((fetched - started) * 1000, 1), "decode_ms": round(decode_ms, 1),
               "pdf_ms": _ms(pdf_started),
               "engine_ms": round(sum(p["engine_ms"] for p in per_page), 1),
               "batch_wait_ms": round(sum(p["batch_wait_ms"] for p in per_page), 1),
               "batch_size": max(p["batch_size"] for p in per_page), "pages": per_page}
    return {"engine": engine, "text": ocr.document_text(results), "pages": results,
            "timings": timings}


def _collect(done: tuple[PageImage, Outcome], results: list[dict[str, Any]],
             for_pdf: list[Any], per_page: list[dict[str, Any]], *, over_pdf: bool,
             original: bytes | None) -> None:
    page, outcome = done
    read = outcome.read
    results.append(ocr.PageResult(page.number, read.width, read.height, read.angle,
                                  read.recognition).to_json())
    words = [w.to_json() for w in read.recognition.words]
    if over_pdf:  # the text goes over the PDF's own pages: no page image to keep
        for_pdf.append(outputs.PageText(read.width, read.height, read.angle, words))
    else:
        for_pdf.append(_image_page(page, read.angle, words, original))
    per_page.append({"engine_ms": outcome.engine_ms, "batch_wait_ms": outcome.queued_ms,
                     "batch_size": outcome.batch_size, "steps": list(read.steps)})


def _searchable_pdf(blob: bytes, media_type: str, for_pdf: list[Any],
                    ocr_service: OcrService) -> bytes:
    if media_type != PDF:
        return outputs.searchable_pdf(for_pdf)
    try:
        return outputs.text_over_pdf(blob, for_pdf)
    except Exception as exc:  # PDFium read what pypdf cannot: the pages as images, then
        log.warning("the text could not be laid over the PDF (%s); page images instead", exc)
        return outputs.searchable_pdf([
            _image_page(page, text.angle, text.words)
            for page, text in zip(pages(blob, ocr_service.config.limits), for_pdf,
                                  strict=True)])


def _image_page(page: PageImage, angle: int, words: list[dict[str, Any]],
                original: bytes | None = None) -> outputs.PdfPage:
    """A page of the image-based searchable PDF: the page turned as it was read (the
    ``original`` upload's image data is embedded only if it was read as it is)."""
    if angle:
        return outputs.pdf_page(page.image.rotate(angle, expand=True), page.dpi, words)
    return outputs.pdf_page(page.image, page.dpi, words, original)
