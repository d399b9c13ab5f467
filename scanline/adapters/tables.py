"""The platform's own tables. Feature modules add theirs to the same ``metadata``;
the schema itself is created only by the Alembic migrations in ``scanline.migrations``."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Inbox: an event id a consumer has finished with, so a redelivery does nothing twice.
processed_events = sa.Table(
    "processed_events", metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)

# Outbox: events written in the same transaction as the state change that caused them,
# published after commit and deleted once the broker confirmed them.
outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
)
