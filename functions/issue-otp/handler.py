"""issue-otp: send a 6-digit verification code to an unverified account's address.

Called over HTTP (``{"email"}``, to resend) and by the ``user.registered`` event. Every
well-formed address gets the same 202, with or without an account; only an unverified
account gets mail. At most one code per address per minute, counted in PostgreSQL for
known and unknown addresses alike (429 + Retry-After over HTTP; an event that hits the
limit is acknowledged, since redelivering it could never succeed sooner). Only an HMAC of
the code is stored; the code itself travels only inside the ``email.requested`` event.
"""

from scanline import events
from scanline.adapters import accounts_repo
from scanline.adapters.db import UnitOfWork
from scanline.bootstrap import Container
from scanline.domain import account_emails, otp
from scanline.domain.rate_limits import OTP_RESEND
from scanline.domain.users import EMAIL, email_key, normalise_email
from scanline.errors import BadRequest, TooManyRequests
from scanline.events import Event
from scanline.runtime import Context, Response, Routes
from scanline.validation import strict_object, validate

DEPENDS_ON = ("db", "bus")

CODE_REQUEST = strict_object(
    {"email": EMAIL}, required=["email"])
OTP_SENT = strict_object({"status": {"const": "otp_sent"}}, required=["status"])
# Producers may add fields to an event over time: only the ones used here are checked.
USER_REGISTERED = {
    "type": "object",
    "properties": {"user_id": {"type": "string", "format": "uuid"},
                   "email": EMAIL},
    "required": ["user_id", "email"],
}

routes = Routes()


def issue(uow: UnitOfWork, deps: Container, email: str) -> int | None:
    """Count the request and mail a new code if the address needs one; returns the
    seconds to wait when the address is over its limit (nothing is sent then)."""
    now = deps.clock.now()
    retry_after = accounts_repo.hit(uow.conn, OTP_RESEND, email_key(email), now)
    if retry_after is not None:
        return retry_after
    user = accounts_repo.find_user_by_email(uow.conn, email)
    if user is None or user.verified_at is not None:
        return None
    code = otp.generate()
    accounts_repo.store_otp(uow.conn, user_id=user.id, now=now, expires_at=otp.expiry(now),
                            digest=otp.digest(deps.otp_key, str(user.id), code))
    uow.emit(deps.event(events.EMAIL_REQUESTED, account_emails.verification_code(user.email, code),
                        subject=str(user.id)))
    return None


@routes.route("/", "POST", summary="Mail a new verification code (at most one a minute)",
              request={"application/json": CODE_REQUEST}, responses={202: OTP_SENT})
def request_code(event: Event, context: Context) -> Response:
    email = normalise_email(validate(event.data, CODE_REQUEST)["email"])
    with context.deps.uow() as uow:
        retry_after = issue(uow, context.deps, email)
    if retry_after is not None:
        raise TooManyRequests("a code was requested for this address less than a minute ago",
                              retry_after=retry_after)
    return Response({"status": "otp_sent"}, status=202)


def on_registered(event: Event, context: Context) -> Response:
    email = normalise_email(validate(event.data, USER_REGISTERED)["email"])
    with context.deps.uow() as uow:
        if not uow.claim(context.function, event.id):
            return Response({"status": "duplicate", "id": event.id})
        retry_after = issue(uow, context.deps, email)
    return Response({"status": "otp_sent" if retry_after is None else "rate_limited"})


def handle(event: Event, context: Context) -> Response:
    if event.type == events.USER_REGISTERED:
        return on_registered(event, context)
    if event.type == events.HTTP_REQUEST:
        return routes.dispatch(event, context)
    raise BadRequest(f"issue-otp does not handle {event.type} events")
