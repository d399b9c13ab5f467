"""send-email: deliver an ``email.requested`` event through SMTP, once per event id.

The event id is claimed in the same transaction that sends the mail, so a redelivered
or duplicated event sends nothing twice; if SMTP is down the transaction rolls back and
the 503 makes the broker redeliver later. A malformed event is a 4xx: dead-lettered.
"""

from email.message import EmailMessage
from email.utils import make_msgid

from scanline import events
from scanline.errors import BadRequest
from scanline.events import Event
from scanline.runtime import Context, Response
from scanline.validation import strict_object, validate

DEPENDS_ON = ("db", "mail", "bus")

EMAIL_REQUESTED = strict_object(
    {
        "to": {"type": "string", "format": "email", "maxLength": 320},
        "subject": {"type": "string", "minLength": 1, "maxLength": 998},
        "text": {"type": "string", "maxLength": 1_000_000},
        "html": {"type": "string", "maxLength": 2_000_000},
    },
    required=["to", "subject", "text"],
)


def compose(event: Event, sender: str) -> EmailMessage:
    data = validate(event.data, EMAIL_REQUESTED)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = data["to"]
    message["Subject"] = data["subject"]
    # Derived from the event id: a duplicate that slips through is recognisable downstream.
    message["Message-ID"] = make_msgid(idstring=event.id.replace("-", ""), domain="scanline")
    message["X-Scanline-Event-Id"] = event.id
    message.set_content(data["text"])
    if "html" in data:
        message.add_alternative(data["html"], subtype="html")
    return message


def handle(event: Event, context: Context) -> Response:
    if event.type != events.EMAIL_REQUESTED:
        raise BadRequest(f"send-email handles {events.EMAIL_REQUESTED} events, not {event.type}")
    deps = context.deps
    message = compose(event, deps.settings.mail_from)
    with deps.uow() as uow:
        if not uow.claim(context.function, event.id):
            return Response({"status": "duplicate", "id": event.id})
        deps.mailer.send(message)
        uow.emit(deps.event(events.EMAIL_SENT, {"to": message["To"], "request_id": event.id},
                            subject=event.subject))
    return Response({"status": "sent", "id": event.id})
