"""ocr-jobs: stage an image in S3, create the job, answer with its status and result.

The caller is whoever the access token names. Uploads are checked from their bytes (size
while streaming, type and pixel count from the header) before anything is stored; the
object key is made here from the user and job ids, never from the client's filename. The
job row and its ``ocr.requested`` event (bucket, key, job, user — never the bytes) are
written in one transaction. Large files can skip this process: the client PUTs to a
presigned URL and then asks for ``/<id>/submit``, which checks the stored object.
"""

from __future__ import annotations

import io
import time
import uuid
from typing import IO, Any

from scanline import events
from scanline.adapters import ocr_jobs_repository as jobs
from scanline.domain import ocr
from scanline.domain.ocr import Job
from scanline.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from scanline.events import Event
from scanline.ocr.images import MEDIA_TYPES, ImageInfo, sniff
from scanline.ocr.service import OcrSettings
from scanline.runtime import Context, Response, Routes
from scanline.validation import strict_object, validate

DEPENDS_ON = ("db", "bus", "store")
# Enough of an object for Pillow to read any accepted format's header.
SNIFF_BYTES = 256 * 1024
WAIT_POLL_SECONDS = 0.025
LIST_LIMIT = 50

PRESIGN_REQUEST = strict_object(
    {"content_type": {"enum": sorted(MEDIA_TYPES.values())},
     "size": {"type": "integer", "minimum": 1}},
    required=["content_type", "size"],
)
# The image itself, checked from its bytes (never from the part's name or Content-Type).
UPLOAD = {"type": "object", "required": ["file"],
          "properties": {"file": {"type": "string",
                                  "contentMediaType": "application/octet-stream"}}}
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
WAIT = {"type": "integer", "minimum": 0, "maximum": OcrSettings.max_wait_seconds}

routes = Routes()


def _caller(context: Context) -> str:
    return context.deps.tokens.verify(context.bearer_token()).subject


def _config(context: Context) -> OcrSettings:
    return OcrSettings.from_settings(context.deps.settings)


def _status_url(context: Context, job_id: str) -> str:
    return f"{context.deps.settings.public_url}/function/ocr-jobs/{job_id}"


def _check_size(size: int, config: OcrSettings) -> None:
    if size > config.limits.max_bytes:
        raise PayloadTooLarge(f"the image is {size} bytes; the limit is "
                              f"{config.limits.max_bytes} bytes")


def _requested(context: Context, job_id: str, user_id: str, key: str) -> Event:
    return context.deps.event(events.OCR_REQUESTED, {
        "bucket": context.deps.store.bucket, "key": key, "job_id": job_id, "user_id": user_id,
    }, subject=job_id)


def _queued(context: Context, job_id: str) -> Response:
    url = _status_url(context, job_id)
    return Response({"job_id": job_id, "status": ocr.QUEUED, "status_url": url}, status=202,
                    headers={"Location": url})


@routes.route("/", "POST", auth=True,
              summary="Upload an image (multipart), or ask for a presigned upload URL (JSON)",
              request={"multipart/form-data": UPLOAD, "application/json": PRESIGN_REQUEST},
              responses={202: QUEUED, 201: PRESIGNED})
def create_job(event: Event, context: Context) -> Response:
    user_id = _caller(context)
    if "file" in context.files:
        return _upload(context, user_id, context.files["file"].stream)
    if event.datacontenttype == "multipart/form-data":
        raise InvalidInput("the image must be sent in the multipart field 'file'",
                           errors=[{"pointer": "/file", "detail": "required"}])
    if not isinstance(event.data, dict):
        raise BadRequest("send the image as multipart/form-data (field 'file'), or JSON "
                         '{"content_type", "size"} for a presigned upload URL')
    return _presign(context, user_id, validate(event.data, PRESIGN_REQUEST))


def _upload(context: Context, user_id: str, stream: IO[bytes]) -> Response:
    config = _config(context)
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    _check_size(size, config)
    if size == 0:
        raise UnsupportedMediaType("the file is empty")
    info = sniff(stream, config.limits)
    job_id = str(uuid.uuid4())
    key = ocr.object_key(user_id, job_id)
    deps = context.deps
    deps.store.put(key, stream, info.media_type)
    with deps.uow() as uow:
        jobs.create(uow.conn, job_id=job_id, user_id=user_id, status=ocr.QUEUED,
                    object_key=key, content_type=info.media_type, size=size)
        uow.emit(_requested(context, job_id, user_id, key))
    return _queued(context, job_id)


def _presign(context: Context, user_id: str, request: dict[str, Any]) -> Response:
    config = _config(context)
    size = int(request["size"])  # JSON Schema counts 250.0 as an integer; the column does not
    _check_size(size, config)
    job_id = str(uuid.uuid4())
    key = ocr.object_key(user_id, job_id)
    deps = context.deps
    url = deps.store.presign_put(key, request["content_type"], config.upload_url_ttl)
    with deps.db.connect() as conn:
        jobs.create(conn, job_id=job_id, user_id=user_id, status=ocr.AWAITING_UPLOAD,
                    object_key=key, content_type=request["content_type"], size=size)
    return Response({"job_id": job_id, "upload_url": url, "expires_in": config.upload_url_ttl,
                     "status_url": _status_url(context, job_id)}, status=201)


def _owned(context: Context, user_id: str, job_id: str) -> Job:
    with context.deps.db.connect() as conn:
        job = jobs.get_owned(conn, job_id, user_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def _stored_image(context: Context, key: str, config: OcrSettings) -> tuple[int, ImageInfo]:
    """Size and type of an object the client uploaded itself, read from S3, not trusted."""
    store = context.deps.store
    try:
        size = int(store.head(key)["ContentLength"])
    except NotFound:
        raise Conflict("nothing has been uploaded to the job's upload URL yet") from None
    _check_size(size, config)
    if size == 0:
        raise UnsupportedMediaType("the uploaded file is empty")
    head = store.read_range(key, min(size, SNIFF_BYTES))
    try:
        return size, sniff(io.BytesIO(head), config.limits)
    except UnsupportedMediaType:
        if size <= SNIFF_BYTES:
            raise
        # A TIFF may keep its directory at the end: look at the whole (size-checked) object.
        return size, sniff(io.BytesIO(store.get(key)), config.limits)


@routes.route("/<uuid:job_id>/submit", "POST", auth=True,
              summary="Queue a job whose image was PUT to its presigned URL",
              responses={202: QUEUED})
def submit(event: Event, context: Context, job_id: uuid.UUID) -> Response:
    user_id = _caller(context)
    job = _owned(context, user_id, str(job_id))
    if job.status != ocr.AWAITING_UPLOAD:
        return _queued(context, job.id)  # submitted before: same answer, no second event
    config = _config(context)
    size, info = _stored_image(context, job.object_key, config)
    if info.media_type != job.content_type:
        raise UnsupportedMediaType(f"the upload is {info.media_type}, not the declared "
                                   f"{job.content_type}")
    with context.deps.uow() as uow:
        if jobs.mark_uploaded(uow.conn, job.id, content_type=info.media_type, size=size):
            uow.emit(_requested(context, job.id, user_id, job.object_key))
    return _queued(context, job.id)


def _wait_seconds(context: Context) -> float:
    raw = context.query.get("wait", "0")
    limit = _config(context).max_wait_seconds
    # isdigit() alone also accepts "²" and digit strings too long for int().
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(limit))) or int(raw) > limit:
        raise InvalidInput(f"wait must be a whole number of seconds from 0 to {limit}",
                           errors=[{"pointer": "/wait", "detail": f"0..{limit}"}])
    return float(raw)


@routes.route("/<uuid:job_id>", "GET", auth=True, summary="A job's status and result",
              query={"wait": WAIT}, responses={200: ocr.JOB})
def get_job(event: Event, context: Context, job_id: uuid.UUID) -> Response:
    user_id = _caller(context)
    deadline = time.monotonic() + _wait_seconds(context)
    job = _owned(context, user_id, str(job_id))
    # Polling by primary key is a sub-millisecond query; it keeps waiting free of any
    # per-process subscription state and works the same on every replica.
    while job.status not in ocr.FINISHED and time.monotonic() < deadline:
        time.sleep(WAIT_POLL_SECONDS)
        job = _owned(context, user_id, job.id)
    return Response(ocr.job_view(job, _status_url(context, job.id)))


@routes.route("/", "GET", auth=True, summary="The caller's most recent jobs",
              responses={200: JOBS})
def list_jobs(event: Event, context: Context) -> Response:
    user_id = _caller(context)
    with context.deps.db.connect() as conn:
        recent = jobs.recent(conn, user_id, LIST_LIMIT)
    return Response({"jobs": [ocr.summary_view(j, _status_url(context, j.id)) for j in recent]})


def handle(event: Event, context: Context) -> Any:
    return routes.dispatch(event, context)
