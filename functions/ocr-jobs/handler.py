"""ocr-jobs: take a document in, answer with its job, its results, and its end.

The caller is whoever the access token names, and sees only their own jobs. A document
comes in one of two ways. Uploaded here (multipart), it is checked from its bytes (size,
type, pages and pixels from the headers, ``scanline.ocr.documents``) before anything is
stored. Or the client asks for a presigned upload (JSON): a browser-based POST to S3 bound
to the declared type and at most the declared size, and then asks for ``/<id>/submit``,
which checks the stored object the same way, deletes it if it is refused, and pins the
job to the object as checked (its ETag). Either way the job row and its ``ocr.requested``
event (bucket, key, job, user; never the bytes) are written in one transaction.

Creating is idempotent with an ``Idempotency-Key`` and bounded by per-user quotas
(``scanline.ocr.intake``); waiting for a job (``?wait``) is bounded per user and per
process (``scanline.adapters.job_watch``). A job can name a ``callback_url`` that gets its
signed ``ocr.completed`` event when it ends (``scanline.adapters.callback_sender``; the
keys that verify it are at ``/event-keys``). A job is deleted by its owner, or with its
upload and results after the retention period, by the housekeeping function.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

from werkzeug.datastructures import FileStorage

from scanline.adapters.job_watch import JobWatch
from scanline.adapters.ocr_lifecycle_repository import Callback
from scanline.adapters.store import ObjectStore
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.auth import Claims
from scanline.clock import Clock
from scanline.domain import idempotency, ocr
from scanline.domain.job_policy import JobPolicy
from scanline.domain.ocr import Job
from scanline.errors import Conflict, NotFound, ScanlineError
from scanline.ocr import intake, outputs
from scanline.ocr.documents import MEDIA_TYPES, inspect
from scanline.ocr.intake import Asked, KeyTaken
from scanline.ocr.service import OcrSettings
from scanline.payloads import OcrRequested
from scanline.runtime import Response, Routes
from scanline.settings import Settings
from scanline.signing import Keyring
from scanline.validation import strict_object

LIST_LIMIT = 100

# What a job may ask for; the allow-lists themselves are settings (OcrSettings, JobPolicy).
# No pattern here: whatever is not a list of allowed codes (``en``, ``ENG``, ``eng,deu``)
# gets the allow-list's answer, which names the codes to use (OcrSettings.languages_of).
LANGUAGES = {"type": "string", "minLength": 1, "maxLength": 64,
             "description": "tesseract language codes joined with +, e.g. eng+deu; the "
                            "first is the page's main language (its readings are tried "
                            "first, so list the language of most words first)"}
ENGINE = {"enum": list(ocr.ENGINES)}
CALLBACK_URL = {"type": "string", "minLength": 8, "maxLength": 2048, "format": "uri",
                "description": "POSTed the job's signed io.scanline.ocr.completed.v1 "
                               "CloudEvent when it ends (a host on OCR_CALLBACK_HOSTS)"}
NOTIFY = {"enum": list(ocr.NOTIFY), "default": ocr.NOTIFY_EMAIL,
          "description": "who is told when the job ends: its owner by mail (email), or "
                         "nobody (none: the callback_url, if any, and polling)"}
OPTIONS = {"languages": LANGUAGES, "engine": ENGINE, "callback_url": CALLBACK_URL,
           "notify": NOTIFY}
PRESIGN_REQUEST = strict_object(
    {"content_type": {"enum": sorted(MEDIA_TYPES)},
     "size": {"type": "integer", "minimum": 1,
              "description": "the file's size in bytes: the upload may not be larger"},
     **OPTIONS},
    required=["content_type", "size"],
)
# The document itself, checked from its bytes (never from the part's name or Content-Type).
UPLOAD = {"type": "object", "required": ["file"], "additionalProperties": False,
          "properties": {"file": {"type": "string",
                                  "contentMediaType": "application/octet-stream"},
                         **OPTIONS}}
_JOB_ID = {"type": "string", "format": "uuid"}
_URL = {"type": "string", "format": "uri"}
QUEUED = strict_object({"job_id": _JOB_ID, "status": {"const": ocr.QUEUED}, "status_url": _URL},
                       required=["job_id", "status", "status_url"])
PRESIGNED = strict_object(
    {"job_id": _JOB_ID, "status_url": _URL, "submit_url": _URL,
     "upload_url": _URL,
     "upload_fields": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "form fields to POST with the file (as `file`, last)"},
     "expires_in": {"type": "integer", "minimum": 1}},
    required=["job_id", "status_url", "submit_url", "upload_url", "upload_fields",
              "expires_in"])
JOBS = strict_object({"jobs": {"type": "array", "items": ocr.JOB_SUMMARY, "maxItems": LIST_LIMIT},
                      "next_cursor": {"type": ["string", "null"]}},
                     required=["jobs", "next_cursor"])
LISTING = {"status": {"enum": sorted(ocr.STATUSES)},
           "cursor": {"type": "string", "minLength": 1, "maxLength": 200},
           "limit": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT, "default": 20}}
# ?wait=N: hold the answer up to N seconds until the job is finished.
WAIT = {"type": "integer", "minimum": 0, "maximum": JobPolicy.max_wait_seconds, "default": 0}
KEYRING = {"type": "object", "required": ["keys"],
           "properties": {"keys": {"type": "array", "items": {"type": "object"}}}}

# Results are served from the gateway's origin, the console's too: a browser that opens
# one must treat it as inert data (the hOCR is XHTML of recognised text), never as a page
# of that origin that could run something.
INERT_DOCUMENT = {"Content-Security-Policy": "default-src 'none'; sandbox",
                  "X-Content-Type-Options": "nosniff"}

routes = Routes()


def _status_url(settings: Settings, job_id: str) -> str:
    return ocr.job_url(settings.public_url, job_id)


def _queued(settings: Settings, job_id: str) -> Response:
    url = _status_url(settings, job_id)
    return Response({"job_id": job_id, "status": ocr.QUEUED, "status_url": url}, status=202,
                    headers={"Location": url})


def _requested(store: ObjectStore, job: Job) -> OcrRequested:
    return OcrRequested(bucket=store.bucket, key=job.object_key, job_id=job.id,
                        user_id=job.user_id)


@routes.http("/", "POST", auth=True,
             summary="Upload a document (multipart), or ask for a presigned upload (JSON)",
             body={"multipart/form-data": UPLOAD, "application/json": PRESIGN_REQUEST},
             headers={idempotency.HEADER: idempotency.KEY},
             responses={202: QUEUED, 201: PRESIGNED}, emits=[OcrRequested])
def create_job(caller: Claims, body: dict[str, Any], files: dict[str, FileStorage],
               headers: dict[str, str], uow: UnitOfWork, store: ObjectStore,
               ocr_settings: OcrSettings, job_policy: JobPolicy, clock: Clock,
               settings: Settings) -> Response:
    # Checked before anything is stored or counted: a wrong one is a 422 that costs nothing.
    options = intake.asked(body, ocr_settings, job_policy)
    user, key, now = caller.subject, headers.get(idempotency.HEADER), clock.now()
    if "file" in files:
        # Read to one byte past the limit, no further: a larger file's size is not known.
        document = files["file"].stream.read(ocr_settings.limits.max_bytes + 1)
        intake.check_size(len(document), ocr_settings, read_to_the_limit=True)
        media_type = inspect(document, ocr_settings.limits).media_type
        request = idempotency.fingerprint(kind="upload", options=options.columns(),
                                          sha256=hashlib.sha256(document).hexdigest())
    else:
        size, media_type = int(body["size"]), body["content_type"]
        intake.check_size(size, ocr_settings)
        request = idempotency.fingerprint(kind="presign", options=options.columns(),
                                          size=size, content_type=media_type)
    replay = intake.replayed(uow, user, key, request, now, job_policy)
    if replay is not None:
        return replay
    job_id = str(uuid.uuid4())
    object_key = ocr.object_key(user, job_id)
    try:
        with intake.charged(uow, user, len(document) if "file" in files else size, now,
                            job_policy):
            if "file" in files:
                return _upload(job_id, object_key, document, media_type, options, request,
                               caller, key, uow, store, job_policy, clock, settings)
            answer = _presigned(job_id, object_key, media_type, size, store, job_policy,
                                settings)
            with uow:
                uow.jobs.create(job_id=job_id, user_id=user, status=ocr.AWAITING_UPLOAD,
                                object_key=object_key, content_type=media_type, size=size,
                                upload_expires_at=now + timedelta(
                                    seconds=job_policy.upload_url_ttl),
                                **options.columns())
                intake.remember(uow, user, key, request, answer, now, job_policy)
            return answer
    except KeyTaken:
        # A request with the same key made its job meanwhile: its answer is this one's.
        replay = intake.replayed(uow, user, key, request, now, job_policy)
        if replay is None:
            raise Conflict("a request with this Idempotency-Key is in progress; retry "
                           "it shortly") from None
        return replay


def _upload(job_id: str, object_key: str, document: bytes, media_type: str, options: Asked,
            request: str, caller: Claims, key: str | None, uow: UnitOfWork,
            store: ObjectStore, policy: JobPolicy, clock: Clock,
            settings: Settings) -> Response:
    store.put(object_key, document, media_type)
    answer = _queued(settings, job_id)
    try:
        with uow:
            job = uow.jobs.create(job_id=job_id, user_id=caller.subject, status=ocr.QUEUED,
                                  object_key=object_key, content_type=media_type,
                                  size=len(document), **options.columns())
            uow.emit(_requested(store, job), subject=job_id)
            intake.remember(uow, caller.subject, key, request, answer, clock.now(), policy)
    except BaseException:
        store.delete(object_key)  # no job was made: its document does not stay behind
        raise
    return answer


def _presigned(job_id: str, object_key: str, media_type: str, size: int, store: ObjectStore,
               policy: JobPolicy, settings: Settings) -> Response:
    upload = store.presign_post(object_key, media_type, size, policy.upload_url_ttl)
    status_url = _status_url(settings, job_id)
    return Response({"job_id": job_id, "status_url": status_url,
                     "submit_url": f"{status_url}/submit", "upload_url": upload["url"],
                     "upload_fields": upload["fields"], "expires_in": policy.upload_url_ttl},
                    status=201)


def _owned(uow: UnitOfWork, user_id: str, job_id: str) -> Job:
    with uow:
        job = uow.jobs.get_owned(job_id, user_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


@routes.http("/<uuid:job_id>/submit", "POST", auth=True,
             summary="Queue a job whose document was POSTed to its presigned upload",
             responses={202: QUEUED}, emits=[OcrRequested])
def submit(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork, store: ObjectStore,
           ocr_settings: OcrSettings, settings: Settings) -> Response:
    job = _owned(uow, caller.subject, str(job_id))
    if job.status == ocr.FAILED and job.upload_etag is None:
        raise Conflict(f"job {job.id} was refused: {job.error}")
    if job.status != ocr.AWAITING_UPLOAD:
        return _queued(settings, job.id)  # submitted before: same answer, no second event
    try:
        stored = intake.stored_document(store, job.object_key, job.size or 0,
                                        job.content_type or "", ocr_settings)
    except ScanlineError as refused:
        if refused.status == 409:  # nothing uploaded yet: the client may still upload
            raise
        store.delete(job.object_key)
        with uow:
            uow.jobs.refuse_upload(job.id, refused.detail)
        raise
    with uow:
        if uow.jobs.mark_uploaded(job.id, content_type=stored.info.media_type,
                                  size=stored.size, etag=stored.etag):
            uow.emit(_requested(store, job), subject=job.id)
    return _queued(settings, job.id)


@routes.http("/<uuid:job_id>", "GET", auth=True, summary="A job's status and result",
             query={"wait": WAIT}, responses={200: ocr.JOB})
def get_job(caller: Claims, job_id: uuid.UUID, query: dict[str, Any], uow: UnitOfWork,
            job_watch: JobWatch, job_policy: JobPolicy, settings: Settings) -> Response:
    job, callback = _owned_with_callback(uow, caller.subject, str(job_id))
    wait = min(query.get("wait", 0), job_policy.max_wait_seconds)
    if wait and job.status not in ocr.FINISHED:
        with job_watch.admitted(caller.subject):
            job_watch.wait(job.id, wait)
        job, callback = _owned_with_callback(uow, caller.subject, job.id)
    return Response(ocr.job_view(job, _status_url(settings, job.id), job_policy.retention,
                                 callback.view() if callback else None))


def _owned_with_callback(uow: UnitOfWork, user_id: str,
                         job_id: str) -> tuple[Job, Callback | None]:
    with uow:
        job = _owned(uow, user_id, job_id)
        return job, uow.callbacks.get(job.id)


@routes.http("/<uuid:job_id>", "DELETE", auth=True,
             summary="Delete a job with its stored document and results",
             responses={204: None})
def delete_job(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork,
               store: ObjectStore, clock: Clock) -> Response:
    job = _owned(uow, caller.subject, str(job_id))
    store.delete(*ocr.stored_keys(job))  # first: if S3 is down, the job is still there
    with uow:
        uow.jobs.delete_owned(job.id, caller.subject, clock.now())
    return Response(None, status=204)


def _finished(uow: UnitOfWork, user_id: str, job_id: str) -> Job:
    job = _owned(uow, user_id, job_id)
    if job.status == ocr.FAILED:
        raise Conflict(f"job {job_id} failed and has no results: {job.error}")
    if job.status != ocr.DONE:
        raise Conflict(f"job {job_id} is {job.status}; its results exist once it is done")
    return job


@routes.http("/<uuid:job_id>/text", "GET", auth=True,
             summary="A done job's text (text/plain; pages separated by form feeds)")
def get_text(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork) -> Response:
    job = _finished(uow, caller.subject, str(job_id))
    return Response(job.text or "", content_type="text/plain; charset=utf-8",
                    headers=INERT_DOCUMENT)


@routes.http("/<uuid:job_id>/hocr", "GET", auth=True,
             summary="A done job's hOCR (XHTML: ocr_page, ocr_line, ocrx_word)")
def get_hocr(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork) -> Response:
    job = _finished(uow, caller.subject, str(job_id))
    if job.pages is None:
        raise NotFound(f"job {job.id} was read before hOCR existed")
    return Response(outputs.hocr(job.pages, job.languages or "eng"),
                    content_type="text/html; charset=utf-8", headers=INERT_DOCUMENT)


@routes.http("/<uuid:job_id>/pdf", "GET", auth=True,
             summary="A done job's searchable PDF: its pages with an invisible text layer")
def get_pdf(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork, store: ObjectStore) -> Response:
    job = _finished(uow, caller.subject, str(job_id))
    if job.pages is None:
        raise NotFound(f"job {job.id} was read before searchable PDFs existed")
    return Response(store.get(ocr.pdf_key(job.user_id, job.id)),
                    content_type="application/pdf",
                    headers={"X-Content-Type-Options": "nosniff",
                             "Content-Disposition": f'inline; filename="{job.id}.pdf"'})


@routes.http("/", "GET", auth=True, summary="The caller's jobs, newest first, a page at a time",
             query=LISTING, responses={200: JOBS})
def list_jobs(caller: Claims, query: dict[str, Any], uow: UnitOfWork, job_policy: JobPolicy,
              settings: Settings) -> Response:
    limit = query.get("limit", 20)
    after = ocr.from_cursor(query["cursor"]) if "cursor" in query else None
    with uow:
        jobs = uow.jobs.page(caller.subject, limit=limit + 1, status=query.get("status"),
                             after=after)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return Response({"jobs": [ocr.summary_view(j, _status_url(settings, j.id),
                                               job_policy.retention) for j in jobs],
                     "next_cursor": ocr.cursor_after(jobs[-1]) if more else None})


@routes.http("/event-keys", "GET", summary="The public keys that verify Scanline's signed "
                                           "events (completion callbacks): a JWK set",
             responses={200: KEYRING})
def event_keys(event_keyring: Keyring) -> Response:
    return Response(event_keyring.document(), headers={"Cache-Control": "public, max-age=300"})
