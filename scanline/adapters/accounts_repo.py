"""Repositories of the account functions: users, OTP codes, rate limits, refresh tokens.

Each works on the unit of work's connection, inside its transaction (``uow.users``,
``uow.otps``, ``uow.limits``, ``uow.refresh_tokens``). Every check-then-act is a single
statement (``ON CONFLICT``, ``UPDATE ... WHERE ... RETURNING``) so concurrent requests on
several replicas cannot both win. Times come from the caller's clock, never from ``now()``
in SQL, so the rules can be tested with a clock a test moves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection, Row

from scanline.adapters.accounts_tables import otp_codes, rate_limits, refresh_tokens, users
from scanline.domain.otp import Attempt
from scanline.domain.rate_limits import Limit

UserId = str | uuid.UUID


def _uuid(value: UserId) -> uuid.UUID | None:
    """A UUID, or None for text that is not one (such an id names no row)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class Users:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(self, *, email: str, name: str, password_hash: str,
               now: datetime) -> uuid.UUID | None:
        """The new user's id, or None if the address is taken (also by a concurrent insert:
        the unique index decides, and the loser waits for the winner's commit)."""
        created = self._conn.execute(
            insert(users).values(id=uuid.uuid4(), email=email, name=name,
                                 password_hash=password_hash, created_at=now)
            .on_conflict_do_nothing().returning(users.c.id)).first()
        return created.id if created else None

    def by_email(self, email: str) -> Row | None:
        return self._conn.execute(sa.select(users).where(
            sa.func.lower(users.c.email) == email.lower())).first()

    def get(self, user_id: UserId) -> Row | None:
        key = _uuid(user_id)
        if key is None:
            return None
        return self._conn.execute(sa.select(users).where(users.c.id == key)).first()

    def email_of(self, user_id: UserId) -> str | None:
        user = self.get(user_id)
        return user.email if user is not None else None

    def replace_password_hash(self, user_id: UserId, password_hash: str) -> None:
        self._conn.execute(users.update().where(users.c.id == _uuid(user_id))
                           .values(password_hash=password_hash))

    def mark_verified(self, user_id: UserId, now: datetime) -> None:
        self._conn.execute(users.update().where(users.c.id == _uuid(user_id),
                                                users.c.verified_at.is_(None))
                           .values(verified_at=now))


class OtpCodes:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def store(self, *, user_id: uuid.UUID, digest: bytes, expires_at: datetime,
              now: datetime) -> None:
        """Save a new code for the user, replacing any earlier one with fresh counters."""
        stmt = insert(otp_codes).values(user_id=user_id, digest=digest, attempts=0,
                                        expires_at=expires_at, used_at=None, created_at=now)
        self._conn.execute(stmt.on_conflict_do_update(
            index_elements=[otp_codes.c.user_id],
            set_={name: stmt.excluded[name]
                  for name in ("digest", "attempts", "expires_at", "used_at", "created_at")}))

    def count_attempt(self, email: str) -> Attempt | None:
        """Increment the attempt counter of the address's code and return the code as it
        now is (None: no code). Callers commit this before comparing anything."""
        row = self._conn.execute(
            otp_codes.update()
            .where(otp_codes.c.user_id == users.c.id,
                   sa.func.lower(users.c.email) == email.lower())
            .values(attempts=otp_codes.c.attempts + 1)
            .returning(otp_codes.c.user_id, otp_codes.c.digest, otp_codes.c.attempts,
                       otp_codes.c.expires_at, otp_codes.c.used_at)).first()
        if row is None:
            return None
        return Attempt(user_id=str(row.user_id), digest=bytes(row.digest),
                       attempts=row.attempts, expires_at=row.expires_at,
                       used=row.used_at is not None)

    def consume(self, *, user_id: UserId, digest: bytes, now: datetime) -> bool:
        """Mark the code used; True for exactly one caller, however many try at once."""
        used = self._conn.execute(
            otp_codes.update()
            .where(otp_codes.c.user_id == _uuid(user_id), otp_codes.c.digest == digest,
                   otp_codes.c.used_at.is_(None), otp_codes.c.expires_at > now)
            .values(used_at=now).returning(otp_codes.c.user_id)).first()
        return used is not None


class RateLimits:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def hit(self, limit: Limit, key: str, now: datetime) -> int | None:
        """Count one hit; the seconds to wait if it went over the limit, else None."""
        stmt = insert(rate_limits).values(scope=limit.scope, key=key, window_start=now, hits=1)
        window_over = rate_limits.c.window_start <= now - limit.window
        row = self._conn.execute(stmt.on_conflict_do_update(
            index_elements=[rate_limits.c.scope, rate_limits.c.key],
            set_={"window_start": sa.case((window_over, stmt.excluded.window_start),
                                          else_=rate_limits.c.window_start),
                  "hits": sa.case((window_over, 1), else_=rate_limits.c.hits + 1)})
            .returning(rate_limits.c.window_start, rate_limits.c.hits)).one()
        return limit.retry_after(row.window_start, row.hits - 1, now)

    def blocked(self, limit: Limit, key: str, now: datetime) -> int | None:
        """Seconds to wait if the limit is already reached, without counting a hit."""
        row = self._conn.execute(sa.select(rate_limits.c.window_start, rate_limits.c.hits).where(
            rate_limits.c.scope == limit.scope, rate_limits.c.key == key)).first()
        return None if row is None else limit.retry_after(row.window_start, row.hits, now)

    def clear(self, limit: Limit, key: str) -> None:
        self._conn.execute(rate_limits.delete().where(rate_limits.c.scope == limit.scope,
                                                      rate_limits.c.key == key))


@dataclass(frozen=True)
class RefreshToken:
    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    rotated: bool
    revoked: bool


class RefreshTokens:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, *, token_hash: bytes, user_id: uuid.UUID, family_id: uuid.UUID,
            now: datetime, expires_at: datetime) -> None:
        self._conn.execute(refresh_tokens.insert().values(
            id=uuid.uuid4(), family_id=family_id, user_id=user_id, token_hash=token_hash,
            created_at=now, expires_at=expires_at))

    def lock(self, token_hash: bytes) -> RefreshToken | None:
        """The token with this hash, row-locked until the transaction ends, so two
        concurrent uses are judged one after the other (the second sees the rotation)."""
        row = self._conn.execute(sa.select(refresh_tokens)
                                 .where(refresh_tokens.c.token_hash == token_hash)
                                 .with_for_update()).first()
        if row is None:
            return None
        return RefreshToken(id=row.id, family_id=row.family_id, user_id=row.user_id,
                            expires_at=row.expires_at, rotated=row.rotated_at is not None,
                            revoked=row.revoked_at is not None)

    def mark_rotated(self, token_id: uuid.UUID, now: datetime) -> None:
        self._conn.execute(refresh_tokens.update().where(refresh_tokens.c.id == token_id)
                           .values(rotated_at=now))

    def revoke_family(self, family_id: uuid.UUID, now: datetime) -> None:
        self._conn.execute(refresh_tokens.update()
                           .where(refresh_tokens.c.family_id == family_id,
                                  refresh_tokens.c.revoked_at.is_(None))
                           .values(revoked_at=now))
