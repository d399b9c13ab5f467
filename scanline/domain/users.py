"""Accounts: how an email address is normalised and which passwords are accepted.

An address is validated and normalised with ``email-validator`` (syntax only: these
machines have no DNS) and then lower-cased as a whole, so ``Alice@X.com`` and
``alice@x.com`` are one account. Passwords follow ASVS 5.0 (6.2.1 to 6.2.4): 8 to 256
characters, any characters, and not one of the 3,000 most common passwords (the ranked
list the maintained ``zxcvbn`` package ships, compared case-insensitively).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from scanline.errors import InvalidInput

PASSWORD_MIN = 8
PASSWORD_MAX = 256
EMAIL_MAX = 320
NAME_MAX = 200
COMMON_PASSWORDS_CHECKED = 3000
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
    """A stable, non-reversible key for per-address rows (rate limits) of a normalised
    address, so those rows hold no address in clear, also for addresses with no account."""
    return hashlib.sha256(b"scanline-email:" + email.encode()).hexdigest()


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # 30,000 entries, ranked

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_PASSWORDS_CHECKED])


def is_common_password(password: str) -> bool:
    return password.lower() in _common_passwords()


def _refuse(problem: str) -> InvalidInput:
    # The detail never quotes the password (a schema message would echo it back).
    return InvalidInput("the password does not meet the policy",
                        errors=[{"pointer": "/password", "detail": problem}])


def check_password_length(password: str) -> None:
    """Counted in characters, before any hashing: an oversized password costs nothing."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise _refuse(f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long")


def check_password_policy(password: str) -> None:
    """Raise ``InvalidInput`` for a password a new account may not use."""
    check_password_length(password)
    if is_common_password(password):
        raise _refuse("is one of the most common passwords; choose another")
