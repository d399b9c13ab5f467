"""Access-token claims and opaque refresh tokens.

Access tokens carry only what a resource server needs to authorise a call: who (``sub``),
for whom (``aud``), by whom (``iss``), when (``iat``/``nbf``/``exp``) and a unique ``jti``;
no email or name (a JWT is readable by anyone who holds it). Refresh tokens are random
strings whose SHA-256 alone is stored: they have 256 bits of entropy, so a fast hash
suffices and a leaked table yields no usable token.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)
REFRESH_TOKEN_LIFETIME = timedelta(days=30)


def access_claims(subject: str, *, issuer: str, audience: str, now: datetime) -> dict[str, Any]:
    issued = int(now.timestamp())
    return {
        "sub": subject, "iss": issuer, "aud": audience, "iat": issued, "nbf": issued,
        "exp": issued + int(ACCESS_TOKEN_LIFETIME.total_seconds()), "jti": str(uuid.uuid4()),
    }


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
