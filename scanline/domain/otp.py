"""One-time codes: generated with ``secrets``, stored only as a keyed hash.

A code is bound to what it unlocks: a sign-up code to its registration (so it activates
exactly the credential that registration holds), a recovery code to its account. The
binding is in the hash: ``HMAC(key, "<registration or user id>:<code>")``, so a stored
digest is worthless for anything else, and without the HMAC key a leaked table cannot be
brute-forced offline (there are only 10^6 codes). How many guesses an address gets is
``scanline.domain.rate_limits.CODE_GUESSES``, counted across every re-issue; the rules
here (digits, lifetime) are security properties, not tuning knobs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

DIGITS = 6
LIFETIME = timedelta(minutes=10)


def generate() -> str:
    return f"{secrets.randbelow(10 ** DIGITS):0{DIGITS}d}"


def digest(key: bytes, bound_to: str, code: str) -> bytes:
    return hmac.new(key, f"{bound_to}:{code}".encode(), hashlib.sha256).digest()


def matches(stored: bytes | None, key: bytes, bound_to: str, code: str) -> bool:
    """Constant-time: the comparison costs the same whether or not the code is right."""
    expected = digest(key, bound_to, code)
    return hmac.compare_digest(stored or b"\0" * len(expected), expected) and stored is not None


def expiry(now: datetime) -> datetime:
    return now + LIFETIME
