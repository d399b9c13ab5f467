"""register: create an unverified account and start email verification.

The answer is the same 202 whether or not the address already has an account, and so is
the work: the password is hashed in both cases before the database decides (one insert,
``ON CONFLICT DO NOTHING`` on the case-insensitive unique index). A new user gets
``user.registered`` (issue-otp sends the code); an existing one gets an "account already
exists" mail, at most one per address per ``ACCOUNT_EXISTS_MAIL`` window so that register
cannot be used to flood someone's inbox.
"""

from scanline import events
from scanline.adapters import accounts_repo
from scanline.domain import account_emails
from scanline.domain.rate_limits import ACCOUNT_EXISTS_MAIL
from scanline.domain.users import (
    EMAIL,
    NAME_MAX,
    check_password_policy,
    email_key,
    normalise_email,
)
from scanline.errors import BadRequest
from scanline.events import Event
from scanline.runtime import Context, Response, Routes
from scanline.validation import strict_object, validate

DEPENDS_ON = ("db", "bus")

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


@routes.route("/", "POST", summary="Create an account and mail a verification code",
              request={"application/json": REGISTRATION}, responses={202: PENDING})
def register(event: Event, context: Context) -> Response:
    data = validate(event.data, REGISTRATION)
    email = normalise_email(data["email"])
    check_password_policy(data["password"])
    deps = context.deps
    password_hash = deps.passwords.hash(data["password"])  # outside the transaction
    now = deps.clock.now()
    with deps.uow() as uow:
        # Counted for new addresses too, so both paths do the same database work.
        mail_limited = accounts_repo.hit(uow.conn, ACCOUNT_EXISTS_MAIL, email_key(email), now)
        user_id = accounts_repo.create_user(uow.conn, email=email, name=data["name"],
                                            password_hash=password_hash, now=now)
        if user_id is None:
            if mail_limited is None:
                uow.emit(deps.event(events.EMAIL_REQUESTED,
                                    account_emails.account_exists(email)))
        else:
            uow.emit(deps.event(events.USER_REGISTERED,
                                {"user_id": str(user_id), "email": email},
                                subject=str(user_id)))
    return Response({"status": "pending_verification"}, status=202)


def handle(event: Event, context: Context) -> Response:
    if event.type != events.HTTP_REQUEST:
        raise BadRequest(f"register is called over HTTP, not with {event.type} events")
    return routes.dispatch(event, context)
