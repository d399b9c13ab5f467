"""verify-otp: complete a sign-up with its code, or reset a password with a recovery code.

Sign-up (``POST /`` ``{"email", "otp", "password"}``): the code opens exactly one
registration — the one it was mailed for — and only with that registration's password, so
an account is created with the credential of whoever can read the mailbox, never with an
earlier stranger's. Registrations made before this rule (``legacy``) still verify with
``{"email", "otp"}``.

Guessing is bounded before anything is compared: every attempt counts against the address
(``CODE_GUESSES``: 20 a day across all re-issues, for every address alike) and the client
address (``CODE_GUESSES_PER_CLIENT``); past either, 429 until the window ends. Every other
attempt does the same work — look up the address's live codes, compare against each in
constant time, verify one password hash (a dummy when nothing matched) — and a failure is
the same 400 whether the address is unknown, pending or verified.

Recovery (``POST /recovery`` ``{"email", "otp", "password"}``): the same bounds and the
same answers; the new password is checked and hashed in every case, and a success ends
every session of the account at once.
"""

from typing import Any

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import audit, otp, password_policy, registrations
from scanline.domain.password_policy import BreachedPasswords
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import CODE_GUESSES, CODE_GUESSES_PER_CLIENT
from scanline.domain.users import EMAIL, client_key, email_key, normalise_email
from scanline.errors import BadRequest, TooManyRequests
from scanline.payloads import UserVerified
from scanline.runtime import Call, Response, Routes
from scanline.validation import strict_object

CODE = {"type": "string", "pattern": f"^[0-9]{{{otp.DIGITS}}}$"}
VERIFICATION = strict_object(
    {"email": EMAIL, "otp": CODE,
     # The sign-up's own password (required for every sign-up but the legacy ones).
     "password": {"type": "string"}},
    required=["email", "otp"],
)
RECOVERY = strict_object({"email": EMAIL, "otp": CODE, "password": {"type": "string"}},
                         required=["email", "otp", "password"])
VERIFIED = strict_object({"status": {"const": "verified"}}, required=["status"])
CHANGED = strict_object({"status": {"const": "password_changed"}}, required=["status"])
INVALID = "the code or the password is wrong, or the code expired or was used"

routes = Routes()


def _guess(uow: UnitOfWork, email: str, request: Call, clock: Clock) -> None:
    """Count the attempt before anything is compared; 429 past either budget."""
    now = clock.now()
    with uow:
        retry_after = (uow.limits.hit(CODE_GUESSES_PER_CLIENT, client_key(request.client), now)
                       or uow.limits.hit(CODE_GUESSES, email_key(email), now))
        if retry_after is not None:
            uow.audit.record(audit.THROTTLED, audit.REFUSED, at=now, account=email_key(email),
                             client=request.client,
                             user_agent=request.headers.get("User-Agent"))
    if retry_after is not None:
        raise TooManyRequests("too many codes tried for this address or from this client; "
                              "try again later", retry_after=retry_after)


def _refund(uow: UnitOfWork, email: str, request: Call) -> None:
    """A right code was not a guess: both budgets get their hit back."""
    uow.limits.refund(CODE_GUESSES, email_key(email))
    uow.limits.refund(CODE_GUESSES_PER_CLIENT, client_key(request.client))


def _failed(uow: UnitOfWork, email: str, request: Call, clock: Clock) -> BadRequest:
    with uow:
        uow.audit.record(audit.VERIFY_FAILED, audit.REFUSED, at=clock.now(),
                         account=email_key(email), client=request.client,
                         user_agent=request.headers.get("User-Agent"))
    return BadRequest(INVALID)


@routes.http("/", "POST", summary="Complete a sign-up with its code and password",
             body={"application/json": VERIFICATION}, responses={200: VERIFIED},
             emits=[UserVerified], uniform_time=True)
def verify(body: dict[str, Any], request: Call, uow: UnitOfWork, clock: Clock, otp_key: bytes,
           passwords: PasswordHasher) -> Response:
    email = normalise_email(body["email"])
    password = password_policy.normalise(body.get("password", ""))
    _guess(uow, email, request, clock)
    now = clock.now()
    with uow:
        candidates = uow.registrations.with_live_codes(email, now)
    opened = registrations.opened_by(candidates, otp_key, body["otp"])
    # One hash verification in every case, so the answer takes as long whatever matched.
    stored = opened.password_hash if opened is not None and not opened.legacy else None
    length_ok = password_policy.PASSWORD_MIN <= len(password) <= password_policy.PASSWORD_MAX
    password_ok = passwords.verify(password if length_ok else "", stored) and length_ok
    if opened is None or not (opened.legacy or password_ok):
        raise _failed(uow, email, request, clock)
    with uow:
        user_id = uow.users.create(email=email, name=opened.name,
                                   password_hash=opened.password_hash, now=now,
                                   user_id=opened.id)
        if user_id is None:  # the address has an account already
            raise BadRequest(INVALID)
        uow.registrations.close(email)
        _refund(uow, email, request)
        uow.emit(UserVerified(user_id=str(user_id)), subject=str(user_id))
        uow.audit.record(audit.VERIFIED, audit.OK, at=now, account=str(user_id),
                         client=request.client, user_agent=request.headers.get("User-Agent"))
    return Response({"status": "verified"})


@routes.http("/recovery", "POST", summary="Set a new password with a recovery code",
             body={"application/json": RECOVERY}, responses={200: CHANGED}, uniform_time=True)
def recover(body: dict[str, Any], request: Call, uow: UnitOfWork, clock: Clock, otp_key: bytes,
            passwords: PasswordHasher, breached_passwords: BreachedPasswords) -> Response:
    email = normalise_email(body["email"])
    password = password_policy.normalise(body["password"])
    # The account's name is not a context word here: refusing it would tell a stranger
    # which name the address's account has.
    password_policy.check(password, email=email, breached=breached_passwords)
    _guess(uow, email, request, clock)
    now = clock.now()
    with uow:
        code = uow.otps.live(email, now)
    opened = code is not None and otp.matches(code.digest, otp_key, str(code.user_id),
                                              body["otp"])
    new_hash = passwords.hash(password)  # in every case: the same work whatever matched
    if not opened or code is None:
        raise _failed(uow, email, request, clock)
    with uow:
        if not uow.otps.consume(user_id=code.user_id, digest=code.digest, now=now):
            raise BadRequest(INVALID)
        uow.users.replace_password_hash(code.user_id, new_hash)
        uow.sessions.revoke_all(code.user_id, now, "password recovered")
        _refund(uow, email, request)
        uow.audit.record(audit.RECOVERED, audit.OK, at=now, account=str(code.user_id),
                         client=request.client, user_agent=request.headers.get("User-Agent"))
    return Response({"status": "password_changed"})
