"""How OCR jobs may be used and how long they are kept: the settings of the job lifecycle.

Every setting name of a job's life outside the engine is spelled here (the engine's and
the document limits' are in ``scanline.ocr.service.OcrSettings``): upload URLs, waiting,
quotas, idempotency, completion callbacks, retention. The defaults follow what users
of AWS Textract know (results kept 7 days, a client token that returns the same job)
and bound what one account can cost everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from scanline.domain import callbacks
from scanline.domain.rate_limits import DAY, HOUR, Limit
from scanline.settings import Settings


@dataclass(frozen=True)
class JobPolicy:
    # A presigned upload's life; a job still waiting for its upload after it is abandoned.
    upload_url_ttl: int = 900
    # ?wait=N holds an answer at most this long; each user may hold this many at once,
    # and a process this many in all (the rest are 429 with Retry-After).
    max_wait_seconds: int = 30
    waits_per_user: int = 2
    waits_per_process: int = 4
    # Per-user quotas (429 with Retry-After beyond them).
    jobs_per_hour: int = 100
    bytes_per_day: int = 1024 ** 3
    # Uploads, results and searchable PDFs are deleted this long after the job ended.
    retention: timedelta = timedelta(days=7)
    # An Idempotency-Key answers with its first job for this long.
    idempotency_window: timedelta = timedelta(hours=24)
    # Completion callbacks: only to these hosts; retried with back-off for this long.
    callback_hosts: frozenset[str] = frozenset()
    callback_retry_for: timedelta = timedelta(hours=24)
    callback_timeout: float = 5.0
    # A job that has not finished in this long fails (the worker stops reading it).
    job_timeout: timedelta = timedelta(minutes=10)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobPolicy:
        get, d = settings.get, cls()
        return cls(
            upload_url_ttl=int(get("OCR_UPLOAD_URL_TTL", str(d.upload_url_ttl))),
            max_wait_seconds=int(get("OCR_MAX_WAIT_SECONDS", str(d.max_wait_seconds))),
            waits_per_user=int(get("OCR_WAITS_PER_USER", str(d.waits_per_user))),
            waits_per_process=int(get("OCR_WAITS_PER_PROCESS", str(d.waits_per_process))),
            jobs_per_hour=int(get("OCR_JOBS_PER_HOUR", str(d.jobs_per_hour))),
            bytes_per_day=int(get("OCR_BYTES_PER_DAY", str(d.bytes_per_day))),
            retention=timedelta(days=float(get("OCR_RETENTION_DAYS",
                                               str(d.retention.days)))),
            callback_hosts=callbacks.parse_hosts(get("OCR_CALLBACK_HOSTS", "")),
            callback_retry_for=timedelta(hours=float(get(
                "OCR_CALLBACK_RETRY_HOURS", str(d.callback_retry_for.total_seconds() / 3600)))),
            callback_timeout=float(get("OCR_CALLBACK_TIMEOUT_SECONDS",
                                       str(d.callback_timeout))),
            job_timeout=timedelta(seconds=float(get(
                "OCR_JOB_TIMEOUT_SECONDS", str(d.job_timeout.total_seconds())))),
        )

    @property
    def jobs_quota(self) -> Limit:
        return Limit("ocr-jobs-hour", allowed=self.jobs_per_hour, window=HOUR)

    @property
    def bytes_quota(self) -> Limit:
        return Limit("ocr-bytes-day", allowed=self.bytes_per_day, window=DAY)
