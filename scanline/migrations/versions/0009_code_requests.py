"""Addresses stay off the broker: ``code_requests`` holds a code asked for over HTTP.

``user.registered`` (v3) names its registration and ``code.requested`` (v2) this row,
where each carried the address before; ``email.sent`` (v2) carries none. Only the sealed
``email.requested`` still holds an address, readable by send-email alone.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_requests",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_code_requests_created_at", "code_requests", ["created_at"])


def downgrade() -> None:
    op.drop_table("code_requests")
