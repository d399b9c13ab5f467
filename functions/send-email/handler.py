"""send-email: deliver an ``email.requested`` event through SMTP, once per event id.

The runtime has already verified the event's signature (only the functions allowed to ask
for mail can), checked its data (no control character reaches a header) and claimed its id
in this transaction: a redelivered or replayed event sends nothing twice, and if SMTP is
down the transaction rolls back and the 503 makes the broker redeliver later.
"""

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from scanline.adapters.mail import SmtpMailer
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.events import Event
from scanline.payloads import EmailRequested, EmailSent
from scanline.runtime import Response, Routes
from scanline.settings import Settings

routes = Routes()


def compose(mail: EmailRequested, event_id: str, sender: str, asked_at: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    # RFC 5322 requires it; the time the mail was asked for, the same on a redelivery.
    message["Date"] = format_datetime(asked_at)
    # Derived from the event id: a duplicate that slips through is recognisable downstream.
    message["Message-ID"] = make_msgid(idstring=event_id.replace("-", ""), domain="scanline")
    message["X-Scanline-Event-Id"] = event_id
    message.set_content(mail.text)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


@routes.event(EmailRequested, emits=[EmailSent])
def send(event: EmailRequested, envelope: Event, uow: UnitOfWork, mailer: SmtpMailer,
         settings: Settings, clock: Clock) -> Response:
    with uow:
        mailer.send(compose(event, envelope.id, settings.mail_from,
                            envelope.time or clock.now()))
        uow.emit(EmailSent(request_id=envelope.id), subject=envelope.subject)
    return Response({"status": "sent", "id": envelope.id})
