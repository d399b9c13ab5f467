"""The sessions that have ended, as every token verifier sees them.

Checking PostgreSQL on every request would cost a round trip per call; trusting tokens
until they expire would let a stolen one work for 15 minutes after logout. So each process
keeps the set of sessions revoked in the last access-token lifetime (older ones' tokens
have expired anyway) and, at most every ``refresh_every`` seconds, asks for the sessions
revoked since its last look — one indexed query per process every two seconds, a set
lookup per request. A revocation therefore reaches every function within
``refresh_every`` plus one request. If the database cannot be asked for longer than
``stale_after`` the verifier refuses to guess: 503, never a token accepted blindly.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from scanline.adapters.accounts_tables import sessions
from scanline.adapters.db import Database
from scanline.clock import Clock
from scanline.domain.tokens import ACCESS_TOKEN_LIFETIME
from scanline.errors import DependencyUnavailable

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
STALE_SECONDS = 30.0
# A token is accepted up to the verifier's leeway past its expiry: keep a little longer.
KEPT_FOR = ACCESS_TOKEN_LIFETIME + timedelta(minutes=1)
# Each look reaches back this far before the last one: a revocation stamped just before it
# but committed just after is not missed.
OVERLAP = timedelta(seconds=10)


class RevocationList:
    def __init__(self, db: Database, clock: Clock, *, refresh_every: float = REFRESH_SECONDS,
                 stale_after: float = STALE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db, self._clock = db, clock
        self._refresh_every, self._stale_after = refresh_every, stale_after
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._revoked: dict[str, datetime] = {}
        self._seen_until: datetime | None = None
        self._fresh_at: float | None = None

    def is_revoked(self, session_id: str) -> bool:
        with self._lock:  # concurrent requests wait for a refresh in progress
            now = self._monotonic()
            if self._fresh_at is None or now - self._fresh_at >= self._refresh_every:
                self._refresh(now)
            return session_id in self._revoked

    def _refresh(self, now: float) -> None:
        wall = self._clock.now()
        since = self._seen_until or wall - KEPT_FOR
        try:
            with self._db.connect() as conn:
                rows = conn.execute(sa.select(sessions.c.id, sessions.c.revoked_at).where(
                    sessions.c.revoked_at.is_not(None),
                    sessions.c.revoked_at >= since - OVERLAP)).all()
        except DependencyUnavailable as exc:
            if self._fresh_at is None or now - self._fresh_at >= self._stale_after:
                raise DependencyUnavailable(
                    "postgresql", "revoked sessions cannot be checked; retry later") from exc
            log.warning("revoked sessions not refreshed: %s", exc.detail)
            return
        for row in rows:
            self._revoked[str(row.id)] = row.revoked_at
        cutoff = wall - KEPT_FOR
        self._revoked = {k: v for k, v in self._revoked.items() if v >= cutoff}
        self._seen_until = max([wall, *(r.revoked_at for r in rows)])
        self._fresh_at = now

    def revoked_now(self, session_id: str | uuid.UUID) -> None:
        """This process revoked ``session_id`` itself: refuse its tokens at once."""
        with self._lock:
            self._revoked[str(session_id)] = self._clock.now()
