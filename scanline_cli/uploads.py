"""Sending documents to ocr-jobs, with a progress bar over their bytes.

Small files go in one multipart request through the gateway; larger ones (over
``DIRECT_LIMIT``) go straight to the object store with the presigned POST ocr-jobs hands
out, then the job is submitted: the gateway never carries the big body. Either way the
file is streamed from disk, never read whole into memory, and an ``Idempotency-Key``
makes a retried upload the same job.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

from scanline_cli.api import Api, ApiError, document

DIRECT_LIMIT = 4 * 1024 * 1024
# What ocr-jobs takes (it checks the bytes, not the name; this only labels the upload).
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp",
               ".bmp": "image/bmp", ".pdf": "application/pdf"}
Progress = Callable[[int], None]


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
        or "application/octet-stream"


def _monitored(fields: dict[str, Any], progress: Progress) -> MultipartEncoderMonitor:
    sent = 0

    def advance(monitor: MultipartEncoderMonitor) -> None:
        nonlocal sent
        progress(monitor.bytes_read - sent)
        sent = monitor.bytes_read

    return MultipartEncoderMonitor(MultipartEncoder(fields), advance)


def upload(api: Api, path: Path, options: dict[str, str], idempotency_key: str | None,
           progress: Progress) -> dict[str, Any]:
    """Create one job for ``path``; its answer (``job_id``, ``status_url``)."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    size = path.stat().st_size
    with path.open("rb") as stream:
        if size <= DIRECT_LIMIT:
            body = _monitored({**options, "file": (path.name, stream, media_type(path))},
                              progress)
            return document(api.call("POST", "ocr-jobs", auth=True, expect=(202,), data=body,
                                     headers={**headers, "Content-Type": body.content_type}))
        offer = api.call("POST", "ocr-jobs", auth=True, expect=(201, 202), headers=headers,
                         json={"content_type": media_type(path), "size": size, **options})
        if offer.status_code == 202:  # the same key already made and queued this job
            return document(offer)
        presigned = document(offer)
        # The file goes last: S3 ignores form fields after it.
        body = _monitored({**presigned["upload_fields"],
                           "file": (path.name, stream, media_type(path))}, progress)
        stored = api.send_to(presigned["upload_url"], data=body,
                             headers={"Content-Type": body.content_type})
        if stored.status_code not in (200, 201, 204):
            raise ApiError(f"the object store refused the upload of {path.name}: HTTP "
                           f"{stored.status_code} {stored.text[:200]}")
    return document(api.call("POST", "ocr-jobs", f"/{presigned['job_id']}/submit", auth=True,
                             expect=(202,)))
