"""issue-otp: mail verification and recovery codes.

Over HTTP (``POST /`` to resend a sign-up code, ``POST /recovery`` for a password reset
code) every well-formed address gets the same 202 after the same work: the request is
counted (one per address a minute, 429 for every address alike), kept as a code request
and handed on as a ``code.requested`` event that names it. Whether a mail goes out is
decided there, off the request path, so neither the answer nor its timing says whether
the address has an account or a pending sign-up. No event names an address: each handler
reads it from the registration or the code request (the mail itself is sealed).

The events decide: a ``user.registered`` gets a code bound to that very registration (or,
for an address that already has an account, an "account already exists" notice, at most
one a day); a ``code.requested`` gets a code for the address's latest registration, or a
recovery code for its account. Every code mail counts against the address's caps (5 an
hour, 10 a day), whatever asked for it; over them nothing is sent. Only an HMAC of each
code is stored; the code itself travels only inside the ``email.requested`` event.
"""

from typing import Any

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import account_emails, audit, otp
from scanline.domain.rate_limits import (
    ACCOUNT_EXISTS_MAIL,
    CODE_MAILS_DAILY,
    CODE_MAILS_HOURLY,
    OTP_RESEND,
)
from scanline.domain.users import EMAIL, email_key, normalise_email
from scanline.errors import TooManyRequests
from scanline.payloads import CodeRequested, EmailRequested, UserRegistered
from scanline.runtime import Call, Response, Routes
from scanline.validation import strict_object

CODE_REQUEST = strict_object({"email": EMAIL}, required=["email"])
OTP_SENT = strict_object({"status": {"const": "otp_sent"}}, required=["status"])
VERIFICATION, RECOVERY = "verification", "recovery"

routes = Routes()


def _requested(body: dict[str, Any], purpose: str, request: Call, uow: UnitOfWork,
               clock: Clock) -> Response:
    email = normalise_email(body["email"])
    now = clock.now()
    with uow:  # a sign-up code and a reset code are two flows, each with its own minute
        retry_after = uow.limits.hit(OTP_RESEND, f"{purpose}:{email_key(email)}", now)
        if retry_after is None:
            request_id = uow.code_requests.add(email=email, purpose=purpose, now=now)
            uow.emit(CodeRequested(request_id=str(request_id)))
        else:
            uow.audit.record(audit.THROTTLED, audit.REFUSED, at=now, account=email_key(email),
                             client=request.client,
                             user_agent=request.headers.get("User-Agent"))
    if retry_after is not None:
        raise TooManyRequests("a code was requested for this address less than a minute ago",
                              retry_after=retry_after)
    return Response({"status": "otp_sent"}, status=202)


@routes.http("/", "POST", summary="Mail a new sign-up code (at most one request a minute)",
             body={"application/json": CODE_REQUEST}, responses={202: OTP_SENT},
             emits=[CodeRequested], uniform_time=True)
def request_code(body: dict[str, Any], request: Call, uow: UnitOfWork, clock: Clock) -> Response:
    return _requested(body, VERIFICATION, request, uow, clock)


@routes.http("/recovery", "POST",
             summary="Mail a password reset code (at most one request a minute)",
             body={"application/json": CODE_REQUEST}, responses={202: OTP_SENT},
             emits=[CodeRequested], uniform_time=True)
def request_recovery_code(body: dict[str, Any], request: Call, uow: UnitOfWork,
                          clock: Clock) -> Response:
    return _requested(body, RECOVERY, request, uow, clock)


def _within_caps(uow: UnitOfWork, email: str, clock: Clock) -> bool:
    """Count one code mail for the address; False when it is over a cap (nothing sent)."""
    key, now = email_key(email), clock.now()
    if (uow.limits.hit(CODE_MAILS_HOURLY, key, now) is None
            and uow.limits.hit(CODE_MAILS_DAILY, key, now) is None):
        return True
    uow.audit.record(audit.CODE_NOT_SENT, audit.REFUSED, at=now, account=key)
    return False


@routes.event(UserRegistered, emits=[EmailRequested])
def on_registered(event: UserRegistered, uow: UnitOfWork, clock: Clock,
                  otp_key: bytes) -> Response:
    now = clock.now()
    with uow:
        registration = uow.registrations.get(event.registration_id, now)
        if registration is None:  # verified, expired or closed meanwhile: nothing to mail
            return Response({"status": "not_sent"})
        email = registration.email
        account = uow.users.by_email(email)
        if account is not None:
            # The sign-up can never be completed: tell the owner, at most once a day.
            uow.registrations.close(email)
            if uow.limits.hit(ACCOUNT_EXISTS_MAIL, email_key(email), now) is None:
                uow.emit(account_emails.account_exists(email), subject=str(account.id))
            return Response({"status": "account_exists"})
        if not _within_caps(uow, email, clock):
            return Response({"status": "not_sent"})
        code = otp.generate()
        uow.registrations.set_code(registration.id, otp.digest(otp_key, str(registration.id),
                                                               code), otp.expiry(now))
        uow.emit(account_emails.verification_code(email, code), subject=str(registration.id))
        uow.audit.record(audit.CODE_ISSUED, audit.OK, at=now, account=email_key(email))
    return Response({"status": "otp_sent"})


@routes.event(CodeRequested, emits=[EmailRequested])
def on_code_requested(event: CodeRequested, uow: UnitOfWork, clock: Clock,
                      otp_key: bytes) -> Response:
    now = clock.now()
    with uow:
        request = uow.code_requests.take(event.request_id)
        if request is None:  # handled already
            return Response({"status": "not_sent"})
        email = request.email
        account = uow.users.by_email(email)
        if request.purpose == VERIFICATION:
            registration = None if account else uow.registrations.latest(email, now)
            if registration is None or not _within_caps(uow, email, clock):
                return Response({"status": "not_sent"})
            code = otp.generate()
            uow.registrations.set_code(registration.id, otp.digest(
                otp_key, str(registration.id), code), otp.expiry(now))
            mail = account_emails.verification_code(email, code)
        else:
            if account is None or not _within_caps(uow, email, clock):
                return Response({"status": "not_sent"})
            code = otp.generate()
            uow.otps.store(user_id=account.id, digest=otp.digest(otp_key, str(account.id), code),
                           expires_at=otp.expiry(now), now=now)
            mail = account_emails.recovery_code(email, code)
        uow.emit(mail)
        uow.audit.record(audit.CODE_ISSUED, audit.OK, at=now, account=email_key(email))
    return Response({"status": "otp_sent"})
