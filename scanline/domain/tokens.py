"""Access-token claims, sessions and opaque refresh tokens.

Access tokens carry only what a resource server needs to authorise a call: who (``sub``),
for whom (``aud``), by whom (``iss``), when (``iat``/``nbf``/``exp``), a unique ``jti``
and the session (``sid``) they belong to, so that ending the session ends them too; no
email or name (a JWT is readable by anyone who holds it). Refresh tokens are random
strings whose SHA-256 alone is stored: they have 256 bits of entropy, so a fast hash
suffices and a leaked table yields no usable token.

A session lives ``SESSION_LIFETIME`` from the login, however often it is refreshed. Each
refresh rotates the token; presenting a rotated token again means a copy exists elsewhere
and ends the session — except within ``REUSE_GRACE`` of its rotation, where it is a
client's concurrent refresh (two tabs, a retry after a lost answer). Those all get the same
successor (``successor_of``), so the session stays one chain: whichever holder rotates it
next, a copy used after that is reuse. Handing each its own token would fork the session
into live chains that no reuse check connects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)
SESSION_LIFETIME = timedelta(days=30)
REUSE_GRACE = timedelta(seconds=10)


def access_claims(subject: str, session: str, *, issuer: str, audience: str,
                  now: datetime) -> dict[str, Any]:
    issued = int(now.timestamp())
    return {
        "sub": subject, "sid": session, "iss": issuer, "aud": audience, "iat": issued,
        "nbf": issued, "exp": issued + int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        "jti": str(uuid.uuid4()),
    }


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def successor_of(presented: str, key: bytes) -> str:
    """The refresh token that replaces ``presented``: derived from it under the server's
    key, the same on every refresh of it, and never stored (only its hash is). Without the
    key, a holder of an old token cannot work out the tokens that follow it."""
    digest = hmac.new(key, b"scanline refresh successor\x00" + presented.encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def refresh_expiry(now: datetime, session_expires_at: datetime) -> datetime:
    """A refresh token never outlives its session."""
    return min(now + REFRESH_TOKEN_LIFETIME, session_expires_at)


def within_grace(rotated_at: datetime, now: datetime) -> bool:
    return now - rotated_at <= REUSE_GRACE
