"""The ``ocr_jobs`` table (created by migration 0003, leases added by 0004, documents by
0006)."""

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
)
