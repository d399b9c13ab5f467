"""A job says who is told when it ends: its owner by mail (as before), or nobody.

An API client that polls, waits or takes a callback need not get a mail per job.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ocr_jobs", sa.Column("notify", sa.Text, nullable=False,
                                        server_default="email"))


def downgrade() -> None:
    op.drop_column("ocr_jobs", "notify")
