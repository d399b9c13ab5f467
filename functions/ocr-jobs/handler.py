"""ocr-jobs: stage a document in S3, create the job, answer with its status and results.

The caller is whoever the access token names. Uploads are checked from their bytes (size
while streaming; type, page count and pixels from the headers, ``scanline.ocr.documents``)
before anything is stored; the object key is made here from the user and job ids, never
from the client's filename. What the job asks for (``languages``, ``engine``) is checked
against what the deployment offers and kept on the job row. The job row and its
``ocr.requested`` event (bucket, key, job, user — never the bytes) are written in one
transaction. Large files can skip this process: the client PUTs to a presigned URL and then
asks for ``/<id>/submit``, which checks the stored object. A finished job's owner can read
its text, its hOCR and its searchable PDF.
"""

from __future__ import annotations

import io
import time
import uuid
from typing import IO, Any

from werkzeug.datastructures import FileStorage

from scanline.adapters.store import ObjectStore
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.auth import Claims
from scanline.domain import ocr
from scanline.domain.ocr import Job
from scanline.errors import Conflict, NotFound, PayloadTooLarge, UnsupportedMediaType
from scanline.ocr import outputs
from scanline.ocr.documents import MEDIA_TYPES, DocumentInfo, inspect
from scanline.ocr.service import OcrSettings
from scanline.payloads import OcrRequested
from scanline.runtime import Response, Routes
from scanline.settings import Settings
from scanline.validation import strict_object

WAIT_POLL_SECONDS = 0.025
LIST_LIMIT = 50

# What a job may ask for; the allow-lists themselves are settings (OcrSettings).
LANGUAGES = {"type": "string", "minLength": 3, "maxLength": 64,
             "pattern": r"^[a-z_]{3,12}(\+[a-z_]{3,12})*$",
             "description": "tesseract language codes joined with +, e.g. eng+deu"}
ENGINE = {"enum": list(ocr.ENGINES)}
PRESIGN_REQUEST = strict_object(
    {"content_type": {"enum": sorted(MEDIA_TYPES)},
     "size": {"type": "integer", "minimum": 1}, "languages": LANGUAGES, "engine": ENGINE},
    required=["content_type", "size"],
)
# The document itself, checked from its bytes (never from the part's name or Content-Type).
UPLOAD = {"type": "object", "required": ["file"],
          "properties": {"file": {"type": "string",
                                  "contentMediaType": "application/octet-stream"},
                         "languages": LANGUAGES, "engine": ENGINE}}
_JOB_ID = {"type": "string", "format": "uuid"}
_URL = {"type": "string", "format": "uri"}
QUEUED = strict_object({"job_id": _JOB_ID, "status": {"const": ocr.QUEUED}, "status_url": _URL},
                       required=["job_id", "status", "status_url"])
PRESIGNED = strict_object(
    {"job_id": _JOB_ID, "upload_url": _URL, "expires_in": {"type": "integer", "minimum": 1},
     "status_url": _URL},
    required=["job_id", "upload_url", "expires_in", "status_url"])
JOBS = strict_object({"jobs": {"type": "array", "items": ocr.JOB_SUMMARY, "maxItems": LIST_LIMIT}},
                     required=["jobs"])
# ?wait=N: hold the answer up to N seconds until the job is finished.
WAIT = {"type": "integer", "minimum": 0, "maximum": OcrSettings.max_wait_seconds,
        "default": 0}

routes = Routes()


def _status_url(settings: Settings, job_id: str) -> str:
    return f"{settings.public_url}/function/ocr-jobs/{job_id}"


def _check_size(size: int, config: OcrSettings) -> None:
    if size > config.limits.max_bytes:
        raise PayloadTooLarge(f"the file is {size} bytes; the limit is "
                              f"{config.limits.max_bytes} bytes")


def _requested(store: ObjectStore, job_id: str, user_id: str, key: str) -> OcrRequested:
    return OcrRequested(bucket=store.bucket, key=key, job_id=job_id, user_id=user_id)


def _queued(settings: Settings, job_id: str) -> Response:
    url = _status_url(settings, job_id)
    return Response({"job_id": job_id, "status": ocr.QUEUED, "status_url": url}, status=202,
                    headers={"Location": url})


@routes.http("/", "POST", auth=True,
             summary="Upload a document (multipart), or ask for a presigned upload URL (JSON)",
             body={"multipart/form-data": UPLOAD, "application/json": PRESIGN_REQUEST},
             responses={202: QUEUED, 201: PRESIGNED}, emits=[OcrRequested])
def create_job(caller: Claims, body: dict[str, Any], files: dict[str, FileStorage],
               uow: UnitOfWork, store: ObjectStore, ocr_settings: OcrSettings,
               settings: Settings) -> Response:
    # Both checked before anything is read or stored: a wrong one is a 422 that costs nothing.
    asked = {"languages": ocr_settings.languages_of(body.get("languages")),
             "requested_engine": ocr_settings.engine_of(body.get("engine"))}
    if "file" in files:
        return _upload(caller.subject, files["file"].stream, asked, uow, store, ocr_settings,
                       settings)
    return _presign(caller.subject, body, asked, uow, store, ocr_settings, settings)


def _upload(user_id: str, stream: IO[bytes], asked: dict[str, str], uow: UnitOfWork,
            store: ObjectStore, config: OcrSettings, settings: Settings) -> Response:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    _check_size(size, config)
    if size == 0:
        raise UnsupportedMediaType("the file is empty")
    info = inspect(stream.read(), config.limits)
    stream.seek(0)
    job_id = str(uuid.uuid4())
    key = ocr.object_key(user_id, job_id)
    store.put(key, stream, info.media_type)
    with uow:
        uow.jobs.create(job_id=job_id, user_id=user_id, status=ocr.QUEUED, object_key=key,
                        content_type=info.media_type, size=size, **asked)
        uow.emit(_requested(store, job_id, user_id, key), subject=job_id)
    return _queued(settings, job_id)


def _presign(user_id: str, request: dict[str, Any], asked: dict[str, str], uow: UnitOfWork,
             store: ObjectStore, config: OcrSettings, settings: Settings) -> Response:
    size = int(request["size"])  # JSON Schema counts 250.0 as an integer; the column does not
    _check_size(size, config)
    job_id = str(uuid.uuid4())
    key = ocr.object_key(user_id, job_id)
    url = store.presign_put(key, request["content_type"], config.upload_url_ttl)
    with uow:
        uow.jobs.create(job_id=job_id, user_id=user_id, status=ocr.AWAITING_UPLOAD,
                        object_key=key, content_type=request["content_type"], size=size,
                        **asked)
    return Response({"job_id": job_id, "upload_url": url, "expires_in": config.upload_url_ttl,
                     "status_url": _status_url(settings, job_id)}, status=201)


def _owned(uow: UnitOfWork, user_id: str, job_id: str) -> Job:
    with uow:
        job = uow.jobs.get_owned(job_id, user_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _stored_document(store: ObjectStore, key: str,
                     config: OcrSettings) -> tuple[int, DocumentInfo]:
    """Size and type of an object the client uploaded itself, read from S3, not trusted.
    The whole (size-checked) object is read: a TIFF's directories and a PDF's page tree
    may be anywhere in the file."""
    try:
        size = int(store.head(key)["ContentLength"])
    except NotFound:
        raise Conflict("nothing has been uploaded to the job's upload URL yet") from None
    _check_size(size, config)
    if size == 0:
        raise UnsupportedMediaType("the uploaded file is empty")
    return size, inspect(store.get(key), config.limits)


@routes.http("/<uuid:job_id>/submit", "POST", auth=True,
             summary="Queue a job whose image was PUT to its presigned URL",
             responses={202: QUEUED}, emits=[OcrRequested])
def submit(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork, store: ObjectStore,
           ocr_settings: OcrSettings, settings: Settings) -> Response:
    job = _owned(uow, caller.subject, str(job_id))
    if job.status != ocr.AWAITING_UPLOAD:
        return _queued(settings, job.id)  # submitted before: same answer, no second event
    size, info = _stored_document(store, job.object_key, ocr_settings)
    if info.media_type != job.content_type:
        raise UnsupportedMediaType(f"the upload is {info.media_type}, not the declared "
                                   f"{job.content_type}")
    with uow:
        if uow.jobs.mark_uploaded(job.id, content_type=info.media_type, size=size):
            uow.emit(_requested(store, job.id, caller.subject, job.object_key), subject=job.id)
    return _queued(settings, job.id)


@routes.http("/<uuid:job_id>", "GET", auth=True, summary="A job's status and result",
             query={"wait": WAIT}, responses={200: ocr.JOB})
def get_job(caller: Claims, job_id: uuid.UUID, query: dict[str, Any], uow: UnitOfWork,
            settings: Settings) -> Response:
    deadline = time.monotonic() + query.get("wait", 0)
    job = _owned(uow, caller.subject, str(job_id))
    # Polling by primary key is a sub-millisecond query; it keeps waiting free of any
    # per-process subscription state and works the same on every replica.
    while job.status not in ocr.FINISHED and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_SECONDS)
        job = _owned(uow, caller.subject, job.id)
    return Response(ocr.job_view(job, _status_url(settings, job.id)))


def _finished(uow: UnitOfWork, user_id: str, job_id: str) -> Job:
    job = _owned(uow, user_id, job_id)
    if job.status != ocr.DONE:
        raise Conflict(f"job {job_id} is {job.status}; its results exist once it is done")
    return job


@routes.http("/<uuid:job_id>/text", "GET", auth=True,
             summary="A done job's text (text/plain; pages separated by form feeds)")
def get_text(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork) -> Response:
    job = _finished(uow, caller.subject, str(job_id))
    return Response(job.text or "", content_type="text/plain; charset=utf-8")


@routes.http("/<uuid:job_id>/hocr", "GET", auth=True,
             summary="A done job's hOCR (XHTML: ocr_page, ocr_line, ocrx_word)")
def get_hocr(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork) -> Response:
    job = _finished(uow, caller.subject, str(job_id))
    if job.pages is None:
        raise NotFound(f"job {job.id} was read before hOCR existed")
    return Response(outputs.hocr(job.pages, job.languages or "eng"),
                    content_type="text/html; charset=utf-8")


@routes.http("/<uuid:job_id>/pdf", "GET", auth=True,
             summary="A done job's searchable PDF: its pages with an invisible text layer")
def get_pdf(caller: Claims, job_id: uuid.UUID, uow: UnitOfWork, store: ObjectStore) -> Response:
    job = _finished(uow, caller.subject, str(job_id))
    if job.pages is None:
        raise NotFound(f"job {job.id} was read before searchable PDFs existed")
    return Response(store.get(ocr.pdf_key(job.user_id, job.id)),
                    content_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{job.id}.pdf"'})


@routes.http("/", "GET", auth=True, summary="The caller's most recent jobs",
             responses={200: JOBS})
def list_jobs(caller: Claims, uow: UnitOfWork, settings: Settings) -> Response:
    with uow:
        recent = uow.jobs.recent(caller.subject, LIST_LIMIT)
    return Response({"jobs": [ocr.summary_view(j, _status_url(settings, j.id))
                              for j in recent]})
