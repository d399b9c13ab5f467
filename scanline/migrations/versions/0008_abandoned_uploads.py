"""Uploads whose job was deleted while its presigned upload URL could still be used.

A browser POST to S3 needs no job: until the URL expires it stores the object, job or no
job. So a job deleted before then leaves its key here, and the housekeeping function
deletes the object once the URL can no longer write it.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "abandoned_uploads",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("usable_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_abandoned_uploads_usable_until", "abandoned_uploads", ["usable_until"])


def downgrade() -> None:
    op.drop_table("abandoned_uploads")
