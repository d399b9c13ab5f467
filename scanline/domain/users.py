"""Accounts: how an email address is normalised and keyed.

An address is validated and normalised with ``email-validator`` (syntax only: these
machines have no DNS) and then lower-cased as a whole, so ``Alice@X.com`` and
``alice@x.com`` are one account. Which passwords are accepted is
``scanline.domain.password_policy``.
"""

from __future__ import annotations

import hashlib

from email_validator import EmailNotValidError, validate_email

from scanline.errors import InvalidInput

EMAIL_MAX = 320
NAME_MAX = 200
# The JSON Schema of an address field; ``normalise_email`` is the real check.
EMAIL = {"type": "string", "format": "email", "minLength": 3, "maxLength": EMAIL_MAX}


def normalise_email(raw: str, *, field: str = "email") -> str:
    """The canonical form of ``raw`` (the key of an account), or ``InvalidInput``."""
    try:
        checked = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput("the email address is not valid",
                           errors=[{"pointer": f"/{field}", "detail": str(exc)}]) from None
    return checked.normalized.lower()


def email_key(email: str) -> str:
    """A stable, non-reversible key for per-address rows (rate limits, audit) of a
    normalised address, so those rows hold no address in clear, also for addresses with no
    account."""
    return hashlib.sha256(b"scanline-email:" + email.encode()).hexdigest()


def client_key(client: str) -> str:
    """The key of a client (network) address: per-client rows hold no address in clear."""
    return hashlib.sha256(b"scanline-client:" + client.encode()).hexdigest()


def pair_key(email: str, client: str) -> str:
    """The key of an (address, client address) pair: login throttling is kept per pair."""
    return hashlib.sha256(f"scanline-pair:{email}\n{client}".encode()).hexdigest()
