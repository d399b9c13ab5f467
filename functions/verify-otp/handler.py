"""verify-otp: check a code and mark the account verified.

The attempt is counted and committed before the code is compared (as Ory Kratos does),
so concurrent guesses cannot share one attempt; the comparison is constant-time; after
``MAX_ATTEMPTS`` wrong tries the code is dead (429, a new one is needed). Success is one
atomic ``UPDATE ... WHERE used_at IS NULL``: of any number of concurrent correct
submissions exactly one gets 200. Wrong, expired, used or unknown → the same 400.
"""

from scanline import events
from scanline.adapters import accounts_repo
from scanline.domain import otp
from scanline.domain.users import EMAIL, normalise_email
from scanline.errors import BadRequest, TooManyRequests
from scanline.events import Event
from scanline.runtime import Context, Response, Routes
from scanline.validation import strict_object, validate

DEPENDS_ON = ("db", "bus")

VERIFICATION = strict_object(
    {"email": EMAIL,
     "otp": {"type": "string", "pattern": f"^[0-9]{{{otp.DIGITS}}}$"}},
    required=["email", "otp"],
)
VERIFIED = strict_object({"status": {"const": "verified"}}, required=["status"])
INVALID = "the code is wrong, expired or already used"

routes = Routes()


@routes.route("/", "POST", summary="Check a verification code and verify the account",
              request={"application/json": VERIFICATION}, responses={200: VERIFIED})
def verify(event: Event, context: Context) -> Response:
    data = validate(event.data, VERIFICATION)
    email = normalise_email(data["email"])
    deps = context.deps
    with deps.db.connect() as conn:  # its own transaction: the attempt counts even if wrong
        attempt = accounts_repo.count_otp_attempt(conn, email)
    now = deps.clock.now()
    verdict = otp.judge(attempt, deps.otp_key, data["otp"], now)
    if verdict == otp.Verdict.EXHAUSTED:
        raise TooManyRequests("too many wrong codes: request a new one")
    if verdict != otp.Verdict.OK or attempt is None:
        raise BadRequest(INVALID)
    with deps.uow() as uow:
        if not accounts_repo.consume_otp(uow.conn, user_id=attempt.user_id,
                                         digest=attempt.digest, now=now):
            raise BadRequest(INVALID)
        accounts_repo.mark_verified(uow.conn, attempt.user_id, now)
        uow.emit(deps.event(events.USER_VERIFIED, {"user_id": attempt.user_id},
                            subject=attempt.user_id))
    return Response({"status": "verified"})


def handle(event: Event, context: Context) -> Response:
    if event.type != events.HTTP_REQUEST:
        raise BadRequest(f"verify-otp is called over HTTP, not with {event.type} events")
    return routes.dispatch(event, context)
