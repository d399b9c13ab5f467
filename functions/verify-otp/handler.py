"""verify-otp: check a code and mark the account verified.

The attempt is counted and committed before the code is compared (as Ory Kratos does),
so concurrent guesses cannot share one attempt; the comparison is constant-time; after
``MAX_ATTEMPTS`` wrong tries the code is dead (429, a new one is needed). Success is one
atomic ``UPDATE ... WHERE used_at IS NULL``: of any number of concurrent correct
submissions exactly one gets 200. Wrong, expired, used or unknown → the same 400.
"""

from typing import Any

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import otp
from scanline.domain.users import EMAIL, normalise_email
from scanline.errors import BadRequest, TooManyRequests
from scanline.payloads import UserVerified
from scanline.runtime import Response, Routes
from scanline.validation import strict_object

VERIFICATION = strict_object(
    {"email": EMAIL,
     "otp": {"type": "string", "pattern": f"^[0-9]{{{otp.DIGITS}}}$"}},
    required=["email", "otp"],
)
VERIFIED = strict_object({"status": {"const": "verified"}}, required=["status"])
INVALID = "the code is wrong, expired or already used"

routes = Routes()


@routes.http("/", "POST", summary="Check a verification code and verify the account",
             body={"application/json": VERIFICATION}, responses={200: VERIFIED},
             emits=[UserVerified])
def verify(body: dict[str, Any], uow: UnitOfWork, clock: Clock, otp_key: bytes) -> Response:
    email = normalise_email(body["email"])
    with uow:  # its own transaction: the attempt counts even if wrong
        attempt = uow.otps.count_attempt(email)
    now = clock.now()
    verdict = otp.judge(attempt, otp_key, body["otp"], now)
    if verdict == otp.Verdict.EXHAUSTED:
        raise TooManyRequests("too many wrong codes: request a new one")
    if verdict != otp.Verdict.OK or attempt is None:
        raise BadRequest(INVALID)
    with uow:
        if not uow.otps.consume(user_id=attempt.user_id, digest=attempt.digest, now=now):
            raise BadRequest(INVALID)
        uow.users.mark_verified(attempt.user_id, now)
        uow.emit(UserVerified(user_id=attempt.user_id), subject=attempt.user_id)
    return Response({"status": "verified"})
