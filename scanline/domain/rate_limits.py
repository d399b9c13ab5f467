"""The limits that bound abuse, counted in PostgreSQL so they hold across replicas.

Two shapes (the SQL is in ``scanline.adapters.accounts_repo.RateLimits``):

- ``Limit``: at most ``allowed`` hits per fixed window. A hit is counted *before* the work
  it guards (a hash, a comparison, a mail) in one atomic statement, so any number of
  parallel requests get at most ``allowed`` through; a success may hand its hit back.
- ``Throttle``: a progressive delay. The first ``free`` failures cost nothing; each one
  after them makes the next attempt wait twice as long (1 s, 2 s, 4 s ... up to ``cap``).
  It is kept per (account, client address), so a stranger's failures slow only the
  stranger, never the owner's right password from elsewhere: no lockout by strangers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limit:
    scope: str
    allowed: int
    window: timedelta

    def retry_after(self, window_start: datetime, hits: int, now: datetime,
                    weight: int = 1) -> int | None:
        """Seconds until a hit of ``weight`` (a quota counts bytes: the upload's size) is
        allowed after ``hits``, or None if it is allowed now."""
        window_end = window_start + self.window
        if hits + weight <= self.allowed or window_end <= now:
            return None
        return max(1, math.ceil((window_end - now).total_seconds()))


@dataclass(frozen=True)
class ThrottleState:
    failures: int = 0
    blocked_until: datetime | None = None


@dataclass(frozen=True)
class Throttle:
    scope: str
    free: int
    cap: timedelta
    # Failures older than this are forgotten (the counter starts again).
    memory: timedelta = timedelta(hours=24)

    def wait(self, state: ThrottleState, now: datetime) -> int | None:
        """Seconds to wait before the next attempt, or None if one may be made now."""
        if state.blocked_until is None or state.blocked_until <= now:
            return None
        return max(1, math.ceil((state.blocked_until - now).total_seconds()))

    def failed(self, state: ThrottleState, now: datetime) -> ThrottleState:
        """The state after one more failure: ``free`` attempts are made without a wait,
        then each waits twice as long as the one before (1 s, 2 s, …, ``cap``)."""
        failures = state.failures + 1
        if failures < self.free:
            return ThrottleState(failures, None)
        delay = min(self.cap.total_seconds(), 2.0 ** (failures - self.free))
        return ThrottleState(failures, now + timedelta(seconds=delay))


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

# issue-otp over HTTP: one request per address a minute (429 for every address alike; the
# codes a registration mails do not count here, so the answer says nothing of accounts).
OTP_RESEND = Limit("otp-resend", allowed=1, window=MINUTE)
# Mails carrying a code, per address, whatever asked for them (sign-up, resend, recovery).
CODE_MAILS_HOURLY = Limit("code-mails-hour", allowed=5, window=HOUR)
CODE_MAILS_DAILY = Limit("code-mails-day", allowed=10, window=DAY)
# "Account already exists" notices per address.
ACCOUNT_EXISTS_MAIL = Limit("account-exists-mail", allowed=1, window=DAY)
# Wrong codes per address across every re-issue (sign-up and recovery alike); past it,
# every code of the address is refused until the window ends.
CODE_GUESSES = Limit("code-guesses", allowed=20, window=DAY)
# Per client address: code checks, and registrations.
CODE_GUESSES_PER_CLIENT = Limit("code-guesses-client", allowed=30, window=HOUR)
REGISTRATIONS_PER_CLIENT = Limit("registrations-client", allowed=30, window=HOUR)
# Failed logins per client address, reserved before any password hash is computed.
LOGIN_FAILURES_PER_CLIENT = Limit("login-failures-client", allowed=20, window=timedelta(
    minutes=15))
# Failed logins per (account, client address): a progressive delay, never a lock.
LOGIN_FAILURES_PER_PAIR = Throttle("login-failures-pair", free=5, cap=timedelta(minutes=15))
# The housekeeping function runs at most once a minute, however often it is called.
HOUSEKEEPING_RUNS = Limit("housekeeping-runs", allowed=1, window=MINUTE)
