"""What expires, deleted in bounded batches (``uow.housekeeping``, the housekeeping function).

Each rule names the rows that can no longer matter: a registration past its day, a code
past its life, a code request a day old (its event was dead-lettered), a session (with its
refresh tokens) ended long enough ago that no access token of it can still be valid, a
counter whose window is over, an event id older than the replay window (a replay that old
is refused by its signature's time anyway), an audit row past its retention. At most
``batch`` rows per rule and run, so a run after a long pause is many short transactions,
never one that holds locks for minutes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scanline.adapters.accounts_tables import (
    audit_events,
    code_requests,
    otp_codes,
    rate_limits,
    registrations,
    sessions,
)
from scanline.adapters.tables import processed_events
from scanline.domain.tokens import ACCESS_TOKEN_LIFETIME

# The longest window of any Limit or Throttle memory (scanline.domain.rate_limits).
COUNTER_LIFETIME = timedelta(days=1)
GRACE = timedelta(days=1)


class Housekeeping:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _delete(self, table: sa.Table, where: sa.ColumnElement[bool], batch: int) -> int:
        # PostgreSQL's DELETE has no LIMIT: pick the rows by their physical id.
        picked = sa.select(sa.literal_column("ctid")).select_from(table).where(where).limit(batch)
        return self._conn.execute(table.delete().where(
            sa.literal_column("ctid").in_(picked.scalar_subquery()))).rowcount

    def prune(self, now: datetime, *, replay_window: timedelta, audit_retention: timedelta,
              batch: int = 10_000) -> dict[str, int]:
        old_tokens = now - ACCESS_TOKEN_LIFETIME - GRACE
        rules = {
            "registrations": (registrations, registrations.c.expires_at < now),
            "recovery_codes": (otp_codes, otp_codes.c.expires_at < now - GRACE),
            # Taken by their event within seconds; one left is an event that was not.
            "code_requests": (code_requests, code_requests.c.created_at < now - GRACE),
            # Their refresh tokens go with them (ON DELETE CASCADE).
            "sessions": (sessions, sa.or_(sessions.c.expires_at < now - GRACE,
                                          sessions.c.revoked_at < old_tokens)),
            "rate_limits": (rate_limits, sa.and_(
                rate_limits.c.window_start < now - COUNTER_LIFETIME,
                sa.or_(rate_limits.c.blocked_until.is_(None),
                       rate_limits.c.blocked_until < now))),
            "processed_events": (processed_events, processed_events.c.processed_at
                                 < now - replay_window - GRACE),
            "audit_events": (audit_events, audit_events.c.at < now - audit_retention),
        }
        return {name: self._delete(table, where, batch) for name, (table, where) in rules.items()}
