"""Sign-ups waiting for their code: how long they live, and which one a code opens."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from scanline.domain import otp

LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Registration:
    id: uuid.UUID
    email: str
    name: str
    password_hash: str
    code_digest: bytes | None
    code_expires_at: datetime | None
    # Registered before registrations existed: verified with {"email", "otp"} alone.
    legacy: bool


def expiry(now: datetime) -> datetime:
    return now + LIFETIME


def opened_by(candidates: Iterable[Registration], key: bytes, code: str) -> Registration | None:
    """The registration whose own code ``code`` is, comparing against every candidate (in
    constant time each), so the work does not depend on which one, if any, matches."""
    found = None
    for registration in candidates:
        if otp.matches(registration.code_digest, key, str(registration.id), code):
            found = registration
    return found
