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

Point = tuple[int, int]


@dataclass(frozen=True)
class Word:
    text: str
    # Corners clockwise from top-left, in pixels of the uploaded image.
    box: tuple[Point, Point, Point, Point]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box]}


@dataclass(frozen=True)
class Recognition:
    text: str
    words: list[Word] = field(default_factory=list)


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
    timings: dict[str, float] | None = None
    error: str | None = None
    completed_at: datetime | None = None


def object_key(user_id: str, job_id: str) -> str:
    """Made by the server only: a client's filename never reaches a key or a path."""
    return f"uploads/{quote(user_id, safe='')}/{job_id}"


def rectangle(left: int, top: int, width: int, height: int) -> tuple[Point, ...]:
    return ((left, top), (left + width, top), (left + width, top + height),
            (left, top + height))


def reading_order(words: Sequence[Word]) -> str:
    """Text from boxes that come in no particular order (keras-ocr): top to bottom, and
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
    return "\n".join(" ".join(w.text for w in sorted(line, key=lambda w: min(x for x, _ in w.box)))
                     for line in lines)


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
_WORD = {"type": "object", "required": ["text", "box"], "additionalProperties": False,
         "properties": {"text": {"type": "string"},
                        "box": {"type": "array", "items": _POINT, "minItems": 4, "maxItems": 4}}}
# JSON Schemas of the two views below (they document ocr-jobs' answers).
JOB_SUMMARY: dict[str, Any] = {"type": "object", "properties": _SUMMARY_FIELDS,
                               "required": list(_SUMMARY_FIELDS), "additionalProperties": False}
_JOB_FIELDS: dict[str, Any] = {
    **_SUMMARY_FIELDS, "text": _NULLABLE_TEXT, "engine": _NULLABLE_TEXT, "error": _NULLABLE_TEXT,
    "words": {"type": ["array", "null"], "items": _WORD},
    "timings": {"type": ["object", "null"], "additionalProperties": {"type": "number"}},
}
JOB: dict[str, Any] = {"type": "object", "properties": _JOB_FIELDS,
                       "required": list(_JOB_FIELDS), "additionalProperties": False}


def job_view(job: Job, status_url: str) -> dict[str, Any]:
    """The document ``GET /function/ocr-jobs/<id>`` answers with."""
    return {
        "job_id": job.id, "status": job.status, "status_url": status_url,
        "text": job.text, "words": job.words, "engine": job.engine, "timings": job.timings,
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
