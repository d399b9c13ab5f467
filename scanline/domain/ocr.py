"""OCR jobs as the product sees them: states, results, object keys, the completion email.

Pure logic only; the SQL lives in ``scanline.adapters.ocr_jobs_repository`` and the
engines in ``scanline.ocr``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from scanline.errors import InvalidInput
from scanline.payloads import EmailRequested

# A presigned job waits for the client's PUT; a multipart upload starts queued.
AWAITING_UPLOAD = "awaiting_upload"
QUEUED = "queued"
PROCESSING = "processing"
DONE = "done"
FAILED = "failed"
FINISHED = frozenset({DONE, FAILED})
STATUSES = frozenset({AWAITING_UPLOAD, QUEUED, PROCESSING, DONE, FAILED})
# States the worker may (re)claim: "processing" too, because a worker killed mid-job
# leaves it there and the broker redelivers the message.
CLAIMABLE = frozenset({QUEUED, PROCESSING})

# Engines a job may ask for; "auto" lets the deployment decide (scanline.ocr.service).
AUTO_ENGINE = "auto"
ENGINES = ("auto", "tesseract", "keras-ocr")
# Who is told when a job ends, besides its callback_url: its owner by mail, or nobody.
NOTIFY_EMAIL, NOTIFY_NONE = "email", "none"
NOTIFY = (NOTIFY_EMAIL, NOTIFY_NONE)
# Pages of a result are joined with a form feed in the job's ``text`` (as pdftotext does).
PAGE_BREAK = "\f"

Point = tuple[int, int]
Box = tuple[Point, Point, Point, Point]


@dataclass(frozen=True)
class Word:
    text: str
    # Corners clockwise from top-left, in pixels of the upright page.
    box: Box
    # 0-1 as the engine reports it; None when the engine reports none (keras-ocr).
    confidence: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box],
                "confidence": self.confidence}


@dataclass(frozen=True)
class Line:
    words: tuple[Word, ...]
    paragraph: int = 1  # which of the page's paragraphs (from 1) the line belongs to

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def box(self) -> Box:
        return bounding_box(self.words)

    @property
    def confidence(self) -> float | None:
        """The mean of its words' (Textract's LINE confidence is one of the same kind)."""
        known = [w.confidence for w in self.words if w.confidence is not None]
        return round(sum(known) / len(known), 3) if known else None

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box],
                "paragraph": self.paragraph, "confidence": self.confidence,
                "words": [w.to_json() for w in self.words]}


@dataclass(frozen=True)
class Recognition:
    """One page as an engine read it: ``text`` keeps the engine's layout (a blank line
    between paragraphs), ``lines`` its words in reading order."""

    text: str
    lines: list[Line] = field(default_factory=list)

    @property
    def words(self) -> list[Word]:
        return [w for line in self.lines for w in line.words]


@dataclass(frozen=True)
class PageResult:
    page: int  # from 1
    width: int
    height: int
    angle: int  # 0/90/180/270: clockwise turn of the upload's content; undone before reading
    recognition: Recognition

    def to_json(self) -> dict[str, Any]:
        return {"page": self.page, "width": self.width, "height": self.height,
                "angle": self.angle, "text": self.recognition.text,
                "lines": [line.to_json() for line in self.recognition.lines]}


def bounding_box(words: Sequence[Word]) -> Box:
    xs = [x for w in words for x, _ in w.box]
    ys = [y for w in words for _, y in w.box]
    return rectangle(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))  # type: ignore[return-value]


def document_text(pages: Sequence[dict[str, Any]]) -> str:
    return PAGE_BREAK.join(page["text"] for page in pages)


def flat_words(pages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Today's ``words`` field from a paged result: every word, with its page number."""
    return [{**word, "page": page["page"]} for page in pages for line in page["lines"]
            for word in line["words"]]


@dataclass(frozen=True)
class Job:
    id: str
    user_id: str
    status: str
    object_key: str
    content_type: str | None
    size: int | None
    created_at: datetime
    attempts: int = 0
    engine: str | None = None
    text: str | None = None
    words: list[dict[str, Any]] | None = None
    timings: dict[str, Any] | None = None
    error: str | None = None
    completed_at: datetime | None = None
    languages: str | None = None  # what the job asked for (None: the deployment's default)
    requested_engine: str | None = None
    pages: list[dict[str, Any]] | None = None  # None for jobs done before documents
    upload_etag: str | None = None  # the upload as checked at submit: what the worker reads
    callback_url: str | None = None
    upload_expires_at: datetime | None = None  # a presigned job is abandoned after it
    notify: str = NOTIFY_EMAIL  # who hears of its end: its owner by mail, or nobody

    def expires_at(self, retention: timedelta) -> datetime | None:
        """When housekeeping deletes the job with its upload and results."""
        if self.status == AWAITING_UPLOAD:
            return self.upload_expires_at
        return self.completed_at + retention if self.completed_at else None

    @property
    def all_words(self) -> list[dict[str, Any]] | None:
        return flat_words(self.pages) if self.pages is not None else self.words


def object_key(user_id: str, job_id: str) -> str:
    """Made by the server only: a client's filename never reaches a key or a path."""
    return f"uploads/{quote(user_id, safe='')}/{job_id}"


def pdf_key(user_id: str, job_id: str) -> str:
    """Where the worker keeps a job's searchable PDF (it outlives the upload)."""
    return f"outputs/{quote(user_id, safe='')}/{job_id}.pdf"


def stored_keys(job: Job) -> tuple[str, str]:
    """Every object a job may have in the store: deleting a job deletes these."""
    return job.object_key, pdf_key(job.user_id, job.id)


def rectangle(left: int, top: int, width: int, height: int) -> tuple[Point, ...]:
    return ((left, top), (left + width, top), (left + width, top + height),
            (left, top + height))


def reading_order(words: Sequence[Word]) -> list[Line]:
    """Lines from boxes that come in no particular order (keras-ocr): top to bottom, and
    left to right within a line; a word joins a line when its vertical centre falls
    inside the line's first word."""
    def centre(w: Word) -> float:
        return sum(y for _, y in w.box) / 4

    lines: list[list[Word]] = []
    for word in sorted(words, key=lambda w: (centre(w), min(x for x, _ in w.box))):
        if lines:
            first = lines[-1][0]
            top, bottom = min(y for _, y in first.box), max(y for _, y in first.box)
            if top <= centre(word) <= bottom:
                lines[-1].append(word)
                continue
        lines.append([word])
    return [Line(tuple(sorted(line, key=lambda w: min(x for x, _ in w.box))))
            for line in lines]


_NULLABLE_TEXT = {"type": ["string", "null"]}
_TIMESTAMP = {"type": "string", "format": "date-time"}
_SUMMARY_FIELDS: dict[str, Any] = {
    "job_id": {"type": "string", "format": "uuid"},
    "status": {"enum": sorted(STATUSES)},
    "status_url": {"type": "string", "format": "uri"},
    "created_at": _TIMESTAMP,
    "completed_at": {"anyOf": [_TIMESTAMP, {"type": "null"}]},
    # When the job, its upload and its results are deleted (null while it runs).
    "expires_at": {"anyOf": [_TIMESTAMP, {"type": "null"}]},
}
_POINT = {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}
_BOX = {"type": "array", "items": _POINT, "minItems": 4, "maxItems": 4}
_CONFIDENCE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_PAGE_WORD = {"type": "object", "required": ["text", "box", "confidence"],
              "additionalProperties": False,
              "properties": {"text": {"type": "string"}, "box": _BOX, "confidence": _CONFIDENCE}}
# Today's flat list; ``confidence`` and ``page`` are there for jobs read since documents.
_WORD = {"type": "object", "required": ["text", "box"], "additionalProperties": False,
         "properties": {"text": {"type": "string"}, "box": _BOX, "confidence": _CONFIDENCE,
                        "page": {"type": "integer", "minimum": 1}}}
# ``paragraph`` and ``confidence`` are there for jobs read since they were added.
_LINE = {"type": "object", "required": ["text", "box", "words"], "additionalProperties": False,
         "properties": {"text": {"type": "string"}, "box": _BOX,
                        "paragraph": {"type": "integer", "minimum": 1},
                        "confidence": _CONFIDENCE,
                        "words": {"type": "array", "items": _PAGE_WORD}}}
_PAGE = {"type": "object", "additionalProperties": False,
         "required": ["page", "width", "height", "angle", "text", "lines"],
         "properties": {"page": {"type": "integer", "minimum": 1},
                        "width": {"type": "integer", "minimum": 1},
                        "height": {"type": "integer", "minimum": 1},
                        "angle": {"enum": [0, 90, 180, 270]}, "text": {"type": "string"},
                        "lines": {"type": "array", "items": _LINE}}}
# JSON Schemas of the two views below (they document ocr-jobs' answers).
JOB_SUMMARY: dict[str, Any] = {"type": "object", "properties": _SUMMARY_FIELDS,
                               "required": list(_SUMMARY_FIELDS), "additionalProperties": False}
_JOB_FIELDS: dict[str, Any] = {
    **_SUMMARY_FIELDS, "text": _NULLABLE_TEXT, "engine": _NULLABLE_TEXT, "error": _NULLABLE_TEXT,
    "words": {"type": ["array", "null"], "items": _WORD},
    "pages": {"type": ["array", "null"], "items": _PAGE},
    "languages": _NULLABLE_TEXT, "requested_engine": {"enum": [*ENGINES, None]},
    "notify": {"enum": list(NOTIFY)},
    "timings": {"type": ["object", "null"]},
    # The completion callback's delivery (null: the job named no callback_url).
    "callback": {"anyOf": [{"type": "null"}, {
        "type": "object", "additionalProperties": False,
        "required": ["url", "state", "attempts", "last_error", "delivered_at"],
        "properties": {"url": {"type": "string", "format": "uri"},
                       "state": {"enum": ["pending", "delivered", "dead"]},
                       "attempts": {"type": "integer", "minimum": 0},
                       "last_error": _NULLABLE_TEXT,
                       "delivered_at": {"anyOf": [_TIMESTAMP, {"type": "null"}]}}}]},
}
JOB: dict[str, Any] = {"type": "object", "properties": _JOB_FIELDS,
                       "required": list(_JOB_FIELDS), "additionalProperties": False}


def cursor_after(job: Job) -> str:
    """The opaque ``cursor`` of the page after ``job``: its creation time and id."""
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def from_cursor(cursor: str) -> tuple[datetime, str]:
    """The (creation time, id) a ``cursor`` stands for; 422 for one this API did not give."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), str(uuid.UUID(job_id))
    except (ValueError, TypeError):
        raise InvalidInput("cursor is not one a listing of jobs returned") from None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def summary_view(job: Job, status_url: str, retention: timedelta) -> dict[str, Any]:
    return {"job_id": job.id, "status": job.status, "status_url": status_url,
            "created_at": job.created_at.isoformat(), "completed_at": _iso(job.completed_at),
            "expires_at": _iso(job.expires_at(retention))}


def job_view(job: Job, status_url: str, retention: timedelta,
             callback: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document ``GET /function/ocr-jobs/<id>`` answers with."""
    return {
        **summary_view(job, status_url, retention),
        "text": job.text, "words": job.all_words, "pages": job.pages,
        "languages": job.languages, "requested_engine": job.requested_engine,
        "notify": job.notify, "engine": job.engine, "timings": job.timings, "error": job.error,
        "callback": callback if callback is not None else (
            None if job.callback_url is None else
            {"url": job.callback_url, "state": "pending", "attempts": 0, "last_error": None,
             "delivered_at": None}),
    }


def job_url(public_url: str, job_id: str) -> str:
    """Where the job's owner reads it (its results at ``/text``, ``/hocr``, ``/pdf``)."""
    return f"{public_url}/function/ocr-jobs/{job_id}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def completion_email(to: str, job_id: str, url: str,
                     pages: Sequence[dict[str, Any]]) -> EmailRequested:
    """The mail that tells the owner a job is done: how much was read and where, never the
    text itself. A document's words do not belong in every mailbox and mail server on the
    way (the callback carries no text either); the owner fetches them signed in."""
    words = sum(len(line["words"]) for page in pages for line in page["lines"])
    read = _count(len(pages), "page") + (f", {_count(words, 'word')} read" if words
                                         else ", no text found")
    return EmailRequested(
        to=to, subject=f"Your OCR result is ready (job {job_id})",
        text=(f"Scanline has read your document (job {job_id}): {read}.\n\n"
              f"Sign in to get the results:\n  {url}\n  text: {url}/text\n"
              f"  searchable PDF: {url}/pdf\n  hOCR: {url}/hocr\n"))
