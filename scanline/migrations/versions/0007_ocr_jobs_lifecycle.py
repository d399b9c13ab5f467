"""OCR jobs that cannot be abused and clean up after themselves.

- ``ocr_jobs``: the ETag of the upload as checked at submit (the worker reads exactly that
  object), the job's completion callback URL, when a presigned upload's URL expires, and
  indexes for cursor pages and retention.
- ``idempotency_keys``: a user's ``Idempotency-Key`` and the answer it was first given.
- ``ocr_callbacks``: completion callbacks waiting to be delivered, with their back-off.
- ``rate_limits.hits`` becomes a bigint: a quota counts bytes.

Additive only: existing jobs keep working (no ETag means the upload is read as it is).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ocr_jobs", sa.Column("upload_etag", sa.Text))
    op.add_column("ocr_jobs", sa.Column("callback_url", sa.Text))
    op.add_column("ocr_jobs", sa.Column("upload_expires_at", sa.DateTime(timezone=True)))
    # Cursor pages order by (created_at, id): the index of "my recent jobs" gains the id.
    op.drop_index("ocr_jobs_user_created", "ocr_jobs")
    op.create_index("ocr_jobs_user_created", "ocr_jobs",
                    ["user_id", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index("ix_ocr_jobs_completed_at", "ocr_jobs", ["completed_at"],
                    postgresql_where=sa.text("completed_at IS NOT NULL"))
    op.create_index("ix_ocr_jobs_awaiting_upload", "ocr_jobs", ["upload_expires_at"],
                    postgresql_where=sa.text("status = 'awaiting_upload'"))
    op.create_table(
        "idempotency_keys",
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
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "ocr_callbacks",
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
    op.create_index("ix_ocr_callbacks_due", "ocr_callbacks", ["next_attempt_at"],
                    postgresql_where=sa.text("state = 'pending'"))
    op.alter_column("rate_limits", "hits", type_=sa.BigInteger)


def downgrade() -> None:
    op.alter_column("rate_limits", "hits", type_=sa.Integer)
    op.drop_table("ocr_callbacks")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_ocr_jobs_awaiting_upload", "ocr_jobs")
    op.drop_index("ix_ocr_jobs_completed_at", "ocr_jobs")
    op.drop_index("ocr_jobs_user_created", "ocr_jobs")
    op.create_index("ocr_jobs_user_created", "ocr_jobs", ["user_id", sa.text("created_at DESC")])
    op.drop_column("ocr_jobs", "upload_expires_at")
    op.drop_column("ocr_jobs", "callback_url")
    op.drop_column("ocr_jobs", "upload_etag")
