"""OCR job leases: the worker running a job holds a lease it renews, so a redelivered or
duplicated event never starts a second run while the first is alive.

Also joins the two branches (accounts 0002, OCR jobs 0003) into one history.

Revision ID: 0004
Revises: 0002, 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ocr_jobs", sa.Column("lease_token", sa.Text))
    op.add_column("ocr_jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("ocr_jobs", "lease_expires_at")
    op.drop_column("ocr_jobs", "lease_token")
