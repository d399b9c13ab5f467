"""Per-address limits, counted in fixed windows (the counters live in PostgreSQL so they
hold across replicas; see ``scanline.adapters.accounts_repo``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limit:
    scope: str
    allowed: int
    window: timedelta

    def retry_after(self, window_start: datetime, hits: int, now: datetime) -> int | None:
        """Seconds until the next hit is allowed, or None if a hit is allowed now."""
        window_end = window_start + self.window
        if hits < self.allowed or window_end <= now:
            return None
        return max(1, math.ceil((window_end - now).total_seconds()))


# One OTP per address per minute, whether or not the address has an account.
OTP_RESEND = Limit("otp-resend", allowed=1, window=timedelta(seconds=60))
# Failed logins per address; a success clears the counter. Checked before the password,
# so a blocked address costs no hashing.
LOGIN_FAILURES = Limit("login-failures", allowed=10, window=timedelta(minutes=15))
# "Account already exists" mails per address, so register cannot flood someone's inbox.
ACCOUNT_EXISTS_MAIL = Limit("account-exists-mail", allowed=1, window=timedelta(minutes=10))
