"""The pure rules of a job's life: its settings, cursors, keys, quotas by weight, back-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scanline.domain import callbacks, idempotency, ocr
from scanline.domain.job_policy import JobPolicy
from scanline.domain.ocr import Job
from scanline.domain.rate_limits import DAY, Limit
from scanline.errors import InvalidInput
from scanline.settings import Settings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def job(**changes: object) -> Job:
    base = {"id": "0b7c1f6e-55c4-4c1a-9d0e-0c1b2a3d4e5f", "user_id": "u", "status": ocr.DONE,
            "object_key": "uploads/u/j", "content_type": "image/png", "size": 1,
            "created_at": NOW, "completed_at": NOW}
    return Job(**{**base, **changes})  # type: ignore[arg-type]


def test_the_policy_reads_every_setting_and_defaults_like_textract() -> None:
    default = JobPolicy.from_settings(Settings.from_env({}))
    assert default.retention == timedelta(days=7) and default.callback_hosts == frozenset()
    assert default.idempotency_window == timedelta(hours=24)
    policy = JobPolicy.from_settings(Settings.from_env({
        "OCR_RETENTION_DAYS": "1", "OCR_CALLBACK_HOSTS": "Hooks.Example.com, 10.0.0.5:8443",
        "OCR_JOBS_PER_HOUR": "3", "OCR_BYTES_PER_DAY": "5000000000",
        "OCR_WAITS_PER_USER": "1", "OCR_JOB_TIMEOUT_SECONDS": "30"}))
    assert policy.retention == timedelta(days=1)
    assert policy.callback_hosts == {"hooks.example.com", "10.0.0.5:8443"}
    assert policy.jobs_quota.allowed == 3 and policy.bytes_quota.allowed == 5_000_000_000
    assert policy.waits_per_user == 1 and policy.job_timeout == timedelta(seconds=30)


def test_a_job_expires_after_retention_or_with_its_unused_upload() -> None:
    retention = timedelta(days=7)
    assert job().expires_at(retention) == NOW + retention
    assert job(status=ocr.PROCESSING, completed_at=None).expires_at(retention) is None
    waiting = job(status=ocr.AWAITING_UPLOAD, completed_at=None,
                  upload_expires_at=NOW + timedelta(minutes=15))
    assert waiting.expires_at(retention) == NOW + timedelta(minutes=15)


def test_cursors_round_trip_and_foreign_ones_are_422() -> None:
    last = job()
    assert ocr.from_cursor(ocr.cursor_after(last)) == (NOW, last.id)
    for forged in ("x", "W10", "WyJ4IiwgInkiXQ", ocr.cursor_after(last)[:-3] + "!!!"):
        with pytest.raises(InvalidInput):
            ocr.from_cursor(forged)


def test_a_fingerprint_changes_with_any_input_and_not_with_order() -> None:
    one = idempotency.fingerprint(kind="upload", sha256="a", options={"x": 1, "y": 2})
    assert one == idempotency.fingerprint(options={"y": 2, "x": 1}, sha256="a", kind="upload")
    assert one != idempotency.fingerprint(kind="upload", sha256="b", options={"x": 1, "y": 2})
    assert one != idempotency.fingerprint(kind="presign", sha256="a", options={"x": 1, "y": 2})


def test_a_weighted_hit_is_allowed_only_if_it_fits() -> None:
    quota = Limit("bytes", allowed=100, window=DAY)
    assert quota.retry_after(NOW, 60, NOW, weight=40) is None
    assert quota.retry_after(NOW, 60, NOW, weight=41) == DAY.total_seconds()
    assert quota.retry_after(NOW - DAY, 60, NOW, weight=41) is None  # a new window
    assert Limit("jobs", allowed=2, window=DAY).retry_after(NOW, 1, NOW) is None


def test_callback_back_off_grows_to_five_minutes() -> None:
    delays = [callbacks.retry_delay(n).total_seconds() for n in range(1, 12)]
    assert delays[:5] == [1, 2, 4, 8, 16]
    assert max(delays) == 300 and delays == sorted(delays)
