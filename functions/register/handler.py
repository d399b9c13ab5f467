"""register: start a sign-up, the same way for every address.

Whatever the address (unknown, waiting for its code, or an account already), the request
does the same work: the password is normalised, checked against the policy and hashed, a
*registration* is stored with that hash, and ``user.registered`` goes to issue-otp, which
decides off the request path what the address gets (a code bound to this registration,
or an "account already exists" notice). So neither the answer, nor its body, nor its
timing tells whether the address has an account.

A registration is not an account: nothing can log in with it until its own code, mailed
to the address, is entered with its own password (verify-otp). Whoever registers an
address first therefore gains nothing over the address's owner, who simply registers
too. Registrations expire after a day; at most ``REGISTRATIONS_PER_CLIENT`` per client
address an hour.
"""

from typing import Any

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import audit, password_policy
from scanline.domain.password_policy import BreachedPasswords
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import REGISTRATIONS_PER_CLIENT
from scanline.domain.registrations import expiry
from scanline.domain.users import EMAIL, NAME_MAX, client_key, email_key, normalise_email
from scanline.errors import TooManyRequests
from scanline.payloads import UserRegistered
from scanline.runtime import Call, Response, Routes
from scanline.validation import strict_object

REGISTRATION = strict_object(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
        "email": EMAIL,
        # Length, context words and the breached list are checked by the policy, whose
        # messages never quote the password back.
        "password": {"type": "string"},
    },
    required=["name", "email", "password"],
)
PENDING = strict_object({"status": {"const": "pending_verification"}}, required=["status"])

routes = Routes()


@routes.http("/", "POST", summary="Start a sign-up: a code is mailed to the address",
             body={"application/json": REGISTRATION}, responses={202: PENDING},
             emits=[UserRegistered], uniform_time=True)
def register(body: dict[str, Any], request: Call, uow: UnitOfWork, passwords: PasswordHasher,
             breached_passwords: BreachedPasswords, clock: Clock) -> Response:
    email = normalise_email(body["email"])
    password = password_policy.normalise(body["password"])
    password_policy.check(password, email=email, name=body["name"],
                          breached=breached_passwords)
    now = clock.now()
    with uow:
        retry_after = uow.limits.hit(REGISTRATIONS_PER_CLIENT, client_key(request.client), now)
    if retry_after is not None:
        raise TooManyRequests("too many sign-ups from this address; try again later",
                              retry_after=retry_after)
    password_hash = passwords.hash(password)  # outside the transaction
    with uow:
        registration_id = uow.registrations.add(email=email, name=body["name"],
                                                password_hash=password_hash, now=now,
                                                expires_at=expiry(now))
        uow.emit(UserRegistered(registration_id=str(registration_id)),
                 subject=str(registration_id))
        uow.audit.record(audit.REGISTERED, audit.OK, at=now, account=email_key(email),
                         client=request.client, user_agent=request.headers.get("User-Agent"))
    return Response({"status": "pending_verification"}, status=202)
