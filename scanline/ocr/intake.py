"""Taking a job in: what it asks for, what its user may still spend, what was uploaded.

The steps of ``ocr-jobs``' create and submit that decide whether a job is accepted, in
the order the handler applies them: the request's options (``asked``), a replay of the
same ``Idempotency-Key`` (``replayed``), the user's quotas (``charged``), and for a
presigned job the object the client stored (``stored_document``). Each refusal is a 4xx
that says why and leaves nothing behind: a quota refused is given back, an upload refused
is deleted from the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scanline.adapters.ocr_lifecycle_repository import Remembered
from scanline.adapters.store import ObjectStore
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.domain import callbacks, ocr
from scanline.domain.job_policy import JobPolicy
from scanline.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ScanlineError,
    TooManyRequests,
    UnsupportedMediaType,
)
from scanline.ocr.documents import DocumentInfo, inspect
from scanline.ocr.service import OcrSettings
from scanline.runtime import Response


@dataclass(frozen=True)
class Asked:
    """A job's options, checked against what the deployment offers."""

    languages: str
    requested_engine: str
    callback_url: str | None
    notify: str

    def columns(self) -> dict[str, Any]:
        return {"languages": self.languages, "requested_engine": self.requested_engine,
                "callback_url": self.callback_url, "notify": self.notify}


def asked(body: dict[str, Any], ocr_settings: OcrSettings, policy: JobPolicy) -> Asked:
    callback = body.get("callback_url") or None
    if callback is not None and not callbacks.allowed(callback, policy.callback_hosts):
        raise InvalidInput("callback_url must be an http(s) URL on a host this deployment "
                           "allows (OCR_CALLBACK_HOSTS)")
    languages = ocr_settings.languages_of(body.get("languages"))
    return Asked(languages, ocr_settings.engine_of(body.get("engine"), languages), callback,
                 body.get("notify") or ocr.NOTIFY_EMAIL)


def replayed(uow: UnitOfWork, user_id: str, key: str | None, fingerprint: str,
             now: datetime, policy: JobPolicy) -> Response | None:
    """The first answer to ``key`` if this is its retry; 409 if the key was used for
    another request; None if the key is new (or there is none)."""
    if key is None:
        return None
    with uow:
        first = uow.idempotency.find(user_id, key, now - policy.idempotency_window)
    if first is None:
        return None
    if first.fingerprint != fingerprint:
        raise Conflict("this Idempotency-Key was used for a different request; use a new "
                       "key for a new job")
    return Response(first.response, status=first.status,
                    headers={"Idempotent-Replayed": "true"})


class KeyTaken(Exception):
    """Another request with the same key created its job first (raised inside the job's
    transaction, which rolls back)."""


def remember(uow: UnitOfWork, user_id: str, key: str | None, fingerprint: str,
             answer: Response, now: datetime, policy: JobPolicy) -> None:
    """Keep the answer under ``key``, in the job's own transaction."""
    if key is None:
        return
    first = Remembered(fingerprint, answer.body["job_id"], answer.status, answer.body)
    if not uow.idempotency.remember(user_id, key, first, now, policy.idempotency_window):
        raise KeyTaken


@contextmanager
def charged(uow: UnitOfWork, user_id: str, size: int, now: datetime,
            policy: JobPolicy) -> Iterator[None]:
    """One job and ``size`` bytes against the user's quotas for the block's work; 429 with
    ``Retry-After`` if either is spent. Refused or failed work costs nothing."""
    quotas = ((policy.jobs_quota, 1), (policy.bytes_quota, size))
    with uow:
        waits = [(limit, weight, uow.limits.hit(limit, user_id, now, weight))
                 for limit, weight in quotas]
        refused = [(limit, wait) for limit, weight, wait in waits if wait is not None]
        if refused:
            for limit, weight in quotas:
                uow.limits.refund(limit, user_id, weight)
    if refused:
        limit, wait = max(refused, key=lambda r: r[1] or 0)
        what = "jobs an hour" if limit == policy.jobs_quota else "bytes a day"
        raise TooManyRequests(f"your quota of {limit.allowed} {what} is spent",
                              retry_after=wait)
    try:
        yield
    except (ScanlineError, KeyTaken):
        with uow:
            for limit, weight in quotas:
                uow.limits.refund(limit, user_id, weight)
        raise


def check_size(size: int, ocr_settings: OcrSettings, *, read_to_the_limit: bool = False) -> None:
    """``size`` within the limit; ``read_to_the_limit``: it is what was read of a file
    that may be larger (its true size unknown, so not quoted)."""
    limit = ocr_settings.limits.max_bytes
    if size > limit:
        told = f"over {limit}" if read_to_the_limit else str(size)
        raise PayloadTooLarge(f"the file is {told} bytes; the limit is {limit} bytes")
    if size == 0:
        raise UnsupportedMediaType("the file is empty")


@dataclass(frozen=True)
class StoredDocument:
    size: int
    etag: str
    info: DocumentInfo


def stored_document(store: ObjectStore, key: str, declared_size: int, declared_type: str,
                    ocr_settings: OcrSettings) -> StoredDocument:
    """The object a client stored through its presigned upload, checked as an upload
    would be: its size (from its metadata first, never more than was declared), its type
    from its bytes, its pages and pixels. The ETag it had is what the worker will read."""
    try:
        head = store.head(key)
    except NotFound:
        raise Conflict("nothing has been uploaded to the job's upload URL yet") from None
    size, etag = int(head["ContentLength"]), str(head["ETag"])
    check_size(size, ocr_settings)
    if size > declared_size:
        raise PayloadTooLarge(f"the upload is {size} bytes; the job declared {declared_size}")
    # Pinned to the ETag: an object swapped while we read is refused, not half-checked.
    info = inspect(store.get(key, etag=etag, max_bytes=ocr_settings.limits.max_bytes),
                   ocr_settings.limits)
    if info.media_type != declared_type:
        raise UnsupportedMediaType(f"the upload is {info.media_type}, not the declared "
                                   f"{declared_type}")
    return StoredDocument(size, etag, info)
