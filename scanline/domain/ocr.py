"""OCR jobs as the product sees them: states, results, object keys, the completion email.

Pure logic only; the SQL lives in ``scanline.adapters.ocr_jobs_repository`` and the
engines in ``scanline.ocr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from scanline.payloads import EmailRequested

# A presigned job waits for the client's PUT; a multipart upload starts queued.
AWAITING_UPLOAD = "awaiting_upload"
QUEUED = "queued"
PROCESSING = "processing"
DONE = "done"
FAILED = "failed"
FINISHED = frozenset({DONE, FAILED})
# States the worker may (re)claim: "processing" too, because a worker killed mid-job
# leaves it there and the broker redelivers the message.
CLAIMABLE = frozenset({QUEUED, PROCESSING})

# Engines a job may ask for; "auto" lets the deployment decide (scanline.ocr.service).
AUTO_ENGINE = "auto"
ENGINES = ("auto", "tesseract", "keras-ocr")
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

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def box(self) -> Box:
        return bounding_box(self.words)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box],
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

    @property
    def all_words(self) -> list[dict[str, Any]] | None:
        return flat_words(self.pages) if self.pages is not None else self.words


def object_key(user_id: str, job_id: str) -> str:
    """Made by the server only: a client's filename never reaches a key or a path."""
    return f"uploads/{quote(user_id, safe='')}/{job_id}"


def pdf_key(user_id: str, job_id: str) -> str:
    """Where the worker keeps a job's searchable PDF (it outlives the upload)."""
    return f"outputs/{quote(user_id, safe='')}/{job_id}.pdf"


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
    "status": {"enum": [AWAITING_UPLOAD, QUEUED, PROCESSING, DONE, FAILED]},
    "status_url": {"type": "string", "format": "uri"},
    "created_at": _TIMESTAMP,
    "completed_at": {"anyOf": [_TIMESTAMP, {"type": "null"}]},
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
_LINE = {"type": "object", "required": ["text", "box", "words"], "additionalProperties": False,
         "properties": {"text": {"type": "string"}, "box": _BOX,
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
    "timings": {"type": ["object", "null"]},
}
JOB: dict[str, Any] = {"type": "object", "properties": _JOB_FIELDS,
                       "required": list(_JOB_FIELDS), "additionalProperties": False}


def job_view(job: Job, status_url: str) -> dict[str, Any]:
    """The document ``GET /function/ocr-jobs/<id>`` answers with."""
    return {
        "job_id": job.id, "status": job.status, "status_url": status_url,
        "text": job.text, "words": job.all_words, "pages": job.pages,
        "languages": job.languages, "requested_engine": job.requested_engine,
        "engine": job.engine, "timings": job.timings,
        "error": job.error, "created_at": job.created_at.isoformat(),
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
    }


def summary_view(job: Job, status_url: str) -> dict[str, Any]:
    return {"job_id": job.id, "status": job.status, "status_url": status_url,
            "created_at": job.created_at.isoformat(),
            "completed_at": job.completed_at.isoformat() if job.completed_at else None}


def completion_email(to: str, job_id: str, text: str) -> EmailRequested:
    """The mail that tells the owner a job is done."""
    body = text if text.strip() else "(no text was found in the image)"
    return EmailRequested(
        to=to, subject=f"Your OCR result is ready (job {job_id})",
        text=f"Scanline read the following text from your image (job {job_id}):\n\n{body}\n")
