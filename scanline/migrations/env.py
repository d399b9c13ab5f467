"""Alembic environment: runs online migrations with the URL the caller resolved."""

import sqlalchemy as sa
from alembic import context

url = context.config.attributes["url"]
engine = sa.create_engine(url, client_encoding="utf8")
with engine.connect() as connection:
    # One migration run at a time, even when several replicas start together.
    connection.execute(sa.text("SELECT pg_advisory_lock(7240501)"))
    connection.commit()
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.execute(sa.text("SELECT pg_advisory_unlock(7240501)"))
    connection.commit()
engine.dispose()
