"""One-time passwords: generated with ``secrets``, stored only as a keyed hash.

The rules (lifetime, attempts) are fixed here rather than configured:
they are security properties, not tuning knobs. The hash binds the code to the user id,
so a stored digest is worthless for any other account, and without the HMAC key a leaked
table cannot be brute-forced offline (there are only 10^6 codes).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

DIGITS = 6
LIFETIME = timedelta(minutes=10)
MAX_ATTEMPTS = 5


def generate() -> str:
    return f"{secrets.randbelow(10 ** DIGITS):0{DIGITS}d}"


def digest(key: bytes, user_id: str, code: str) -> bytes:
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Attempt:
    """An OTP as seen by one verification attempt, after its counter was incremented."""

    user_id: str
    digest: bytes
    attempts: int
    expires_at: datetime
    used: bool


class Verdict:
    OK = "ok"
    INVALID = "invalid"        # wrong, expired, used, or no code: 400
    EXHAUSTED = "exhausted"    # too many wrong tries: 429, a new code is needed


def judge(attempt: Attempt | None, key: bytes, code: str, now: datetime) -> str:
    """Decide an attempt whose counter was already incremented (and committed).

    Counting first means concurrent guesses each get their own attempt number, so at
    most ``MAX_ATTEMPTS`` of them are ever compared, however many arrive together.
    """
    if attempt is None or attempt.used or attempt.expires_at <= now:
        return Verdict.INVALID
    if attempt.attempts > MAX_ATTEMPTS:
        return Verdict.EXHAUSTED
    if hmac.compare_digest(attempt.digest, digest(key, attempt.user_id, code)):
        return Verdict.OK
    return Verdict.EXHAUSTED if attempt.attempts >= MAX_ATTEMPTS else Verdict.INVALID


def expiry(now: datetime) -> datetime:
    return now + LIFETIME
