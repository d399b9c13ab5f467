"""Repositories of the account functions: users, registrations, recovery codes, rate
limits, sessions, refresh tokens and the audit log.

Each works on the unit of work's connection, inside its transaction (``uow.users``,
``uow.registrations``, ``uow.otps``, ``uow.limits``, ``uow.sessions``,
``uow.refresh_tokens``, ``uow.audit``). Every check-then-act is a single
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

from scanline.adapters.accounts_tables import (
    audit_events,
    code_requests,
    otp_codes,
    rate_limits,
    refresh_tokens,
    registrations,
    sessions,
    users,
)
from scanline.domain.rate_limits import Limit, Throttle, ThrottleState
from scanline.domain.registrations import Registration

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

    def create(self, *, email: str, name: str, password_hash: str, now: datetime,
               verified: bool = True, user_id: uuid.UUID | None = None) -> uuid.UUID | None:
        """The new account's id, or None if the address is taken (also by a concurrent
        insert: the unique index decides, and the loser waits for the winner's commit).
        Accounts are created by a verification, so they are verified from the start."""
        created = self._conn.execute(
            insert(users).values(id=user_id or uuid.uuid4(), email=email, name=name,
                                 password_hash=password_hash, created_at=now,
                                 verified_at=now if verified else None)
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


class Registrations:
    """Pending sign-ups: several may exist for one address, each with its own code."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, *, email: str, name: str, password_hash: str, now: datetime,
            expires_at: datetime) -> uuid.UUID:
        registration_id = uuid.uuid4()
        self._conn.execute(registrations.insert().values(
            id=registration_id, email=email, name=name, password_hash=password_hash,
            created_at=now, expires_at=expires_at))
        return registration_id

    def _row(self, row: Row) -> Registration:
        return Registration(id=row.id, email=row.email, name=row.name,
                            password_hash=row.password_hash,
                            code_digest=bytes(row.code_digest) if row.code_digest else None,
                            code_expires_at=row.code_expires_at, legacy=row.legacy)

    def get(self, registration_id: UserId, now: datetime) -> Registration | None:
        key = _uuid(registration_id)
        row = self._conn.execute(sa.select(registrations).where(
            registrations.c.id == key, registrations.c.expires_at > now)).first() if key else None
        return self._row(row) if row else None

    def latest(self, email: str, now: datetime) -> Registration | None:
        row = self._conn.execute(
            sa.select(registrations)
            .where(sa.func.lower(registrations.c.email) == email.lower(),
                   registrations.c.expires_at > now)
            .order_by(registrations.c.created_at.desc()).limit(1)).first()
        return self._row(row) if row else None

    def with_live_codes(self, email: str, now: datetime) -> list[Registration]:
        rows = self._conn.execute(sa.select(registrations).where(
            sa.func.lower(registrations.c.email) == email.lower(),
            registrations.c.expires_at > now, registrations.c.code_digest.is_not(None),
            registrations.c.code_expires_at > now))
        return [self._row(r) for r in rows]

    def set_code(self, registration_id: uuid.UUID, digest: bytes, expires_at: datetime) -> None:
        self._conn.execute(registrations.update().where(registrations.c.id == registration_id)
                           .values(code_digest=digest, code_expires_at=expires_at))

    def close(self, email: str) -> int:
        """Every registration of the address ends (the address was verified, or already
        belongs to an account); returns how many there were."""
        return self._conn.execute(registrations.delete().where(
            sa.func.lower(registrations.c.email) == email.lower())).rowcount

    def delete(self, registration_id: uuid.UUID) -> None:
        self._conn.execute(registrations.delete().where(registrations.c.id == registration_id))


@dataclass(frozen=True)
class CodeRequest:
    email: str
    purpose: str


class CodeRequests:
    """Codes asked for over HTTP, each kept until its event's handler takes it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, *, email: str, purpose: str, now: datetime) -> uuid.UUID:
        request_id = uuid.uuid4()
        self._conn.execute(code_requests.insert().values(id=request_id, email=email,
                                                         purpose=purpose, created_at=now))
        return request_id

    def take(self, request_id: UserId) -> CodeRequest | None:
        """The request, removed; None if it was taken already (or never existed)."""
        key = _uuid(request_id)
        row = self._conn.execute(
            code_requests.delete().where(code_requests.c.id == key)
            .returning(code_requests.c.email, code_requests.c.purpose)).first() if key else None
        return CodeRequest(row.email, row.purpose) if row else None


@dataclass(frozen=True)
class RecoveryCode:
    user_id: uuid.UUID
    digest: bytes


class OtpCodes:
    """Password-recovery codes: one live code per verified account."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def store(self, *, user_id: uuid.UUID, digest: bytes, expires_at: datetime,
              now: datetime) -> None:
        """Save a new code for the user, replacing any earlier one."""
        stmt = insert(otp_codes).values(user_id=user_id, digest=digest, attempts=0,
                                        expires_at=expires_at, used_at=None, created_at=now)
        self._conn.execute(stmt.on_conflict_do_update(
            index_elements=[otp_codes.c.user_id],
            set_={name: stmt.excluded[name]
                  for name in ("digest", "attempts", "expires_at", "used_at", "created_at")}))

    def live(self, email: str, now: datetime) -> RecoveryCode | None:
        row = self._conn.execute(
            sa.select(otp_codes.c.user_id, otp_codes.c.digest)
            .where(otp_codes.c.user_id == users.c.id,
                   sa.func.lower(users.c.email) == email.lower(),
                   otp_codes.c.used_at.is_(None), otp_codes.c.expires_at > now)).first()
        return RecoveryCode(row.user_id, bytes(row.digest)) if row else None

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

    def hit(self, limit: Limit, key: str, now: datetime, weight: int = 1) -> int | None:
        """Count one hit of ``weight``; the seconds to wait if it went over the limit, else
        None."""
        stmt = insert(rate_limits).values(scope=limit.scope, key=key, window_start=now,
                                          hits=weight)
        window_over = rate_limits.c.window_start <= now - limit.window
        row = self._conn.execute(stmt.on_conflict_do_update(
            index_elements=[rate_limits.c.scope, rate_limits.c.key],
            set_={"window_start": sa.case((window_over, stmt.excluded.window_start),
                                          else_=rate_limits.c.window_start),
                  "hits": sa.case((window_over, weight), else_=rate_limits.c.hits + weight)})
            .returning(rate_limits.c.window_start, rate_limits.c.hits)).one()
        return limit.retry_after(row.window_start, row.hits - weight, now, weight)

    def blocked(self, limit: Limit, key: str, now: datetime) -> int | None:
        """Seconds to wait if the limit is already reached, without counting a hit."""
        row = self._conn.execute(sa.select(rate_limits.c.window_start, rate_limits.c.hits).where(
            rate_limits.c.scope == limit.scope, rate_limits.c.key == key)).first()
        return None if row is None else limit.retry_after(row.window_start, row.hits, now)

    def refund(self, limit: Limit, key: str, weight: int = 1) -> None:
        """Give back a hit counted before the work it guarded, which turned out fine (or,
        for a quota, was refused and cost nothing)."""
        self._conn.execute(rate_limits.update().where(
            rate_limits.c.scope == limit.scope, rate_limits.c.key == key,
            rate_limits.c.hits > 0).values(hits=sa.func.greatest(rate_limits.c.hits - weight,
                                                                 0)))

    def clear(self, limit: Limit | Throttle, key: str) -> None:
        self._conn.execute(rate_limits.delete().where(rate_limits.c.scope == limit.scope,
                                                      rate_limits.c.key == key))

    def throttle_state(self, throttle: Throttle, key: str, now: datetime) -> ThrottleState:
        """The state of ``key``, row-locked until the transaction ends: concurrent attempts
        of one pair are judged one after the other."""
        self._conn.execute(insert(rate_limits).values(
            scope=throttle.scope, key=key, window_start=now, hits=0)
            .on_conflict_do_nothing())
        row = self._conn.execute(
            sa.select(rate_limits.c.hits, rate_limits.c.window_start,
                      rate_limits.c.blocked_until)
            .where(rate_limits.c.scope == throttle.scope, rate_limits.c.key == key)
            .with_for_update()).one()
        if row.window_start <= now - throttle.memory:
            return ThrottleState()
        return ThrottleState(row.hits, row.blocked_until)

    def save_throttle(self, throttle: Throttle, key: str, state: ThrottleState,
                      now: datetime) -> None:
        self._conn.execute(rate_limits.update().where(
            rate_limits.c.scope == throttle.scope, rate_limits.c.key == key).values(
            hits=state.failures, blocked_until=state.blocked_until,
            window_start=sa.case((rate_limits.c.window_start <= now - throttle.memory, now),
                                 else_=rate_limits.c.window_start)))


@dataclass(frozen=True)
class Session:
    id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    revoked: bool


class Sessions:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def start(self, user_id: uuid.UUID, now: datetime, expires_at: datetime) -> uuid.UUID:
        session_id = uuid.uuid4()
        self._conn.execute(sessions.insert().values(id=session_id, user_id=user_id,
                                                    created_at=now, expires_at=expires_at))
        return session_id

    def get(self, session_id: UserId) -> Session | None:
        key = _uuid(session_id)
        row = self._conn.execute(sa.select(sessions).where(sessions.c.id == key)).first() \
            if key else None
        return Session(row.id, row.user_id, row.expires_at, row.revoked_at is not None) \
            if row else None

    def revoke(self, session_id: UserId, now: datetime, reason: str) -> bool:
        """End a session (its refresh tokens and, via the verifiers, its access tokens)."""
        return self._conn.execute(sessions.update().where(
            sessions.c.id == _uuid(session_id), sessions.c.revoked_at.is_(None)).values(
            revoked_at=now, revoked_reason=reason)).rowcount == 1

    def revoke_all(self, user_id: UserId, now: datetime, reason: str,
                   keep: UserId | None = None) -> int:
        """End every session of the account but ``keep``; returns how many ended."""
        where = [sessions.c.user_id == _uuid(user_id), sessions.c.revoked_at.is_(None)]
        if keep is not None:
            where.append(sessions.c.id != _uuid(keep))
        return self._conn.execute(sessions.update().where(*where).values(
            revoked_at=now, revoked_reason=reason)).rowcount


@dataclass(frozen=True)
class RefreshToken:
    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    rotated_at: datetime | None
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
                            expires_at=row.expires_at, rotated_at=row.rotated_at,
                            revoked=row.revoked_at is not None)

    def mark_rotated(self, token_id: uuid.UUID, now: datetime) -> None:
        self._conn.execute(refresh_tokens.update().where(refresh_tokens.c.id == token_id)
                           .values(rotated_at=now))

    def revoke_family(self, family_id: uuid.UUID, now: datetime) -> None:
        self._conn.execute(refresh_tokens.update()
                           .where(refresh_tokens.c.family_id == family_id,
                                  refresh_tokens.c.revoked_at.is_(None))
                           .values(revoked_at=now))


class Audit:
    """The security log: appended to in the transaction of the event it records."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def record(self, event: str, outcome: str, *, at: datetime, account: str | None = None,
               client: str | None = None, user_agent: str | None = None) -> None:
        self._conn.execute(audit_events.insert().values(
            at=at, event=event, outcome=outcome, account=account, client=client,
            user_agent=(user_agent or "")[:300] or None))
