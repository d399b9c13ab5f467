"""OCR documents: what a job asked for (languages, engine) and its paged result.

Additive only: nullable columns, so jobs done before keep their ``text``/``words``.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ocr_jobs", sa.Column("languages", sa.Text))
    op.add_column("ocr_jobs", sa.Column("requested_engine", sa.Text))
    op.add_column("ocr_jobs", sa.Column("pages", JSONB))


def downgrade() -> None:
    op.drop_column("ocr_jobs", "pages")
    op.drop_column("ocr_jobs", "requested_engine")
    op.drop_column("ocr_jobs", "languages")
