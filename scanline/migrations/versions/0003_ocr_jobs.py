"""OCR jobs: one row per uploaded image, its state and its result.

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ocr_jobs",
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
        sa.CheckConstraint(
            "status IN ('awaiting_upload', 'queued', 'processing', 'done', 'failed')",
            name="ocr_jobs_status"),
    )
    # "My recent jobs" reads one user's newest rows.
    op.create_index("ocr_jobs_user_created", "ocr_jobs", ["user_id", sa.text("created_at DESC")])


def downgrade() -> None:
    op.drop_table("ocr_jobs")
