"""register: create an unverified account and start email verification.

The answer is the same 202 whether or not the address already has an account, and so is
the work: the password is hashed in both cases before the database decides (one insert,
``ON CONFLICT DO NOTHING`` on the case-insensitive unique index). A new user gets
``user.registered`` (issue-otp sends the code); an existing one gets an "account already
exists" mail, at most one per address per ``ACCOUNT_EXISTS_MAIL`` window so that register
cannot be used to flood someone's inbox.
"""

from typing import Any

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import account_emails
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import ACCOUNT_EXISTS_MAIL
from scanline.domain.users import (
    EMAIL,
    NAME_MAX,
    check_password_policy,
    email_key,
    normalise_email,
)
from scanline.payloads import EmailRequested, UserRegistered
from scanline.runtime import Response, Routes
from scanline.validation import strict_object

REGISTRATION = strict_object(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
        "email": EMAIL,
        # Length and the common-password list are checked by the policy, whose messages
        # never quote the password back.
        "password": {"type": "string"},
    },
    required=["name", "email", "password"],
)
PENDING = strict_object({"status": {"const": "pending_verification"}}, required=["status"])

routes = Routes()


@routes.http("/", "POST", summary="Create an account and mail a verification code",
             body={"application/json": REGISTRATION}, responses={202: PENDING},
             emits=[UserRegistered, EmailRequested])
def register(body: dict[str, Any], uow: UnitOfWork, passwords: PasswordHasher,
             clock: Clock) -> Response:
    email = normalise_email(body["email"])
    check_password_policy(body["password"])
    password_hash = passwords.hash(body["password"])  # outside the transaction
    now = clock.now()
    with uow:
        # Counted for new addresses too, so both paths do the same database work.
        mail_limited = uow.limits.hit(ACCOUNT_EXISTS_MAIL, email_key(email), now)
        user_id = uow.users.create(email=email, name=body["name"],
                                   password_hash=password_hash, now=now)
        if user_id is None:
            if mail_limited is None:
                uow.emit(account_emails.account_exists(email))
        else:
            uow.emit(UserRegistered(user_id=str(user_id), email=email), subject=str(user_id))
    return Response({"status": "pending_verification"}, status=202)
