"""issue-otp: send a 6-digit verification code to an unverified account's address.

Called over HTTP (``{"email"}``, to resend) and by the ``user.registered`` event. Every
well-formed address gets the same 202, with or without an account; only an unverified
account gets mail. At most one code per address per minute, counted in PostgreSQL for
known and unknown addresses alike (429 + Retry-After over HTTP; an event that hits the
limit is acknowledged, since redelivering it could never succeed sooner). Only an HMAC of
the code is stored; the code itself travels only inside the ``email.requested`` event.
"""

from typing import Any

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import account_emails, otp
from scanline.domain.rate_limits import OTP_RESEND
from scanline.domain.users import EMAIL, email_key, normalise_email
from scanline.errors import TooManyRequests
from scanline.payloads import EmailRequested, UserRegistered
from scanline.runtime import Response, Routes
from scanline.validation import strict_object

CODE_REQUEST = strict_object({"email": EMAIL}, required=["email"])
OTP_SENT = strict_object({"status": {"const": "otp_sent"}}, required=["status"])

routes = Routes()


def issue(uow: UnitOfWork, clock: Clock, otp_key: bytes, email: str) -> int | None:
    """Count the request and mail a new code if the address needs one; returns the
    seconds to wait when the address is over its limit (nothing is sent then)."""
    now = clock.now()
    retry_after = uow.limits.hit(OTP_RESEND, email_key(email), now)
    if retry_after is not None:
        return retry_after
    user = uow.users.by_email(email)
    if user is None or user.verified_at is not None:
        return None
    code = otp.generate()
    uow.otps.store(user_id=user.id, now=now, expires_at=otp.expiry(now),
                   digest=otp.digest(otp_key, str(user.id), code))
    uow.emit(account_emails.verification_code(user.email, code), subject=str(user.id))
    return None


@routes.http("/", "POST", summary="Mail a new verification code (at most one a minute)",
             body={"application/json": CODE_REQUEST}, responses={202: OTP_SENT},
             emits=[EmailRequested])
def request_code(body: dict[str, Any], uow: UnitOfWork, clock: Clock,
                 otp_key: bytes) -> Response:
    email = normalise_email(body["email"])
    with uow:
        retry_after = issue(uow, clock, otp_key, email)
    if retry_after is not None:
        raise TooManyRequests("a code was requested for this address less than a minute ago",
                              retry_after=retry_after)
    return Response({"status": "otp_sent"}, status=202)


@routes.event(UserRegistered, emits=[EmailRequested])
def on_registered(event: UserRegistered, uow: UnitOfWork, clock: Clock,
                  otp_key: bytes) -> Response:
    with uow:
        retry_after = issue(uow, clock, otp_key, normalise_email(event.email))
    return Response({"status": "otp_sent" if retry_after is None else "rate_limited"})
