"""The OCR job tables: ``ocr_jobs`` (created by migration 0003, leases added by 0004,
documents by 0006, its lifecycle by 0007), ``idempotency_keys`` and ``ocr_callbacks``
(0007), ``abandoned_uploads`` (0008)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from scanline.adapters.tables import metadata

ocr_jobs = sa.Table(
    "ocr_jobs", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("object_key", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text),
    sa.Column("size", sa.BigInteger),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("engine", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("words", JSONB),
    sa.Column("timings", JSONB),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    # The running worker's lease (migration 0004): who holds it, and until when.
    sa.Column("lease_token", sa.Text),
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    # Documents (migration 0006): what the job asked for, and its result page by page.
    sa.Column("languages", sa.Text),
    sa.Column("requested_engine", sa.Text),
    sa.Column("pages", JSONB),
    # Its lifecycle (migration 0007): the upload as checked at submit, where to call back
    # when it ends, when an unused presigned upload is abandoned.
    sa.Column("upload_etag", sa.Text),
    sa.Column("callback_url", sa.Text),
    sa.Column("upload_expires_at", sa.DateTime(timezone=True)),
    # Whom the job's end is told (migration 0010): the owner by mail, or nobody.
    sa.Column("notify", sa.Text, nullable=False, server_default="email"),
)

# A user's Idempotency-Key, the request it came with (a digest) and the answer it got.
idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("job_id", sa.Text, sa.ForeignKey("ocr_jobs.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("response", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)

# A finished job's completion callback until it is delivered (or given up: ``dead``).
ocr_callbacks = sa.Table(
    "ocr_callbacks", metadata,
    sa.Column("job_id", sa.Text, sa.ForeignKey("ocr_jobs.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the signed CloudEvent, structured
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)

# The object key of a job deleted while its presigned upload URL could still store it: the
# object is deleted once the URL cannot (housekeeping).
abandoned_uploads = sa.Table(
    "abandoned_uploads", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("usable_until", sa.DateTime(timezone=True), nullable=False),
)
