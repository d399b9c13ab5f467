"""The trust boundary, attacked from outside: through the gateway, at a function's own port
(every function is public on OpenFaaS), and straight onto the exchange with the broker's
credentials. Each forged path is refused and sends no mail and changes no job; the
dead letters say why. Each case fails if its protection is removed: the gateway's
event-only rule, the signature check, the producer rule, the inbox, the job check.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.connector.amqp import REASON_HEADER
from scanline.adapters.topology import dead_letter_queue
from scanline.bootstrap import Container
from scanline.domain import ocr
from scanline.events import Event
from scanline.payloads import (
    CodeRequested,
    EmailRequested,
    EmailSent,
    OcrRequested,
    UserRegistered,
)
from scanline.secrets import Secrets, event_key_secret
from scanline.signing import KEY_ID, SIGNATURE, key_id, signed_bytes
from tests.support import clients
from tests.support.broker import EventTap, publish, take_messages
from tests.support.mailbox import Mailbox
from tests.support.signing import STACK_SECRETS, signed, signed_data
from tests.support.stack import Stack

STRUCTURED = {"Content-Type": "application/cloudevents+json"}


def mail(subject: str, to: str = "victim@example.com") -> EmailRequested:
    return EmailRequested(to=to, subject=subject, text="an attacker's words")


def unsigned(event: Event) -> Event:
    return dataclasses.replace(event, extensions={"traceparent": event.traceparent})


def sign_as_if(event: Event, producer: str) -> Event:
    """Sign with ``producer``'s key whatever the event says, as a thief of the key could
    (``EventSigner`` itself refuses an event from another source)."""
    pem = Secrets(STACK_SECRETS).read(event_key_secret(producer))
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    kid = key_id(key.public_key())
    signature = base64.urlsafe_b64encode(key.sign(signed_bytes(event, kid))).rstrip(b"=")
    return dataclasses.replace(event, extensions={**event.extensions, KEY_ID: kid,
                                                  SIGNATURE: signature.decode()})


def tampered(event: Event, **data: str) -> bytes:
    """The structured body of a validly signed event, its data edited afterwards."""
    document = json.loads(event.to_structured())
    document["data"].update(data)
    return json.dumps(document).encode()


def dead_letter_reason(stack: Stack, function: str, event_id: str,
                       timeout: float = 20) -> str:
    """Take ``event_id``'s dead letter out of ``function``'s DLQ; return its reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        taken = take_messages(stack.amqp_url, dead_letter_queue(function),
                              lambda body: event_id.encode() in body)
        if taken:
            return str((taken[0][0].headers or {})[REASON_HEADER])
        time.sleep(0.2)
    raise AssertionError(f"{event_id} was not dead-lettered by {function} in {timeout} s")


@pytest.fixture
def subject() -> str:
    return f"forged {uuid.uuid4()}"


def no_mail(mailbox: Mailbox, subject: str, wait: float = 1.0) -> bool:
    time.sleep(wait)
    return mailbox.matching(subject=subject) == []


# ---- send-email: the open mail relay --------------------------------------------------

def test_the_gateway_does_not_serve_send_email_in_any_mode(stack: Stack, mailbox: Mailbox,
                                                           subject: str) -> None:
    event = unsigned(signed(mail(subject)))
    headers, body = event.to_binary()
    attempts = [("function", headers, body), ("function", STRUCTURED, event.to_structured()),
                ("async-function", STRUCTURED, event.to_structured()),
                ("async-function", headers, body)]
    for prefix, h, b in attempts:
        r = requests.post(f"{stack.gateway}/{prefix}/send-email", data=b, headers=h, timeout=10)
        assert r.status_code == 404, (prefix, r.text)
    assert no_mail(mailbox, subject)


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_at_the_functions_own_port_an_unsigned_event_is_401(
        stack: Stack, mailbox: Mailbox, subject: str, mode: str) -> None:
    event = unsigned(signed(mail(subject)))
    if mode == "binary":
        headers, body = event.to_binary()
    else:
        headers, body = STRUCTURED, event.to_structured()
    r = requests.post(stack.function_url("send-email"), data=body, headers=headers, timeout=10)
    assert r.status_code == 401 and r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["detail"] == "event refused: it is not signed"
    assert no_mail(mailbox, subject)


@pytest.mark.parametrize(("forgery", "reason"), [
    ("unsigned", "it is not signed"),
    ("a producer not allowed for the type", "ocr-jobs may not emit"),
    ("tampered data under a valid signature", "signature does not match"),
    ("another function's source", "the source is not"),
])
def test_straight_onto_the_exchange_forgeries_are_dead_lettered_with_the_reason(
        stack: Stack, mailbox: Mailbox, subject: str, forgery: str, reason: str) -> None:
    good = signed(mail(subject), "issue-otp")
    if forgery == "unsigned":
        event_id, body = good.id, unsigned(good).to_structured()
    elif forgery == "a producer not allowed for the type":
        # ocr-jobs holds a real key, but only register, issue-otp and ocr may ask for mail.
        forged = signed_data(EmailRequested.TYPE, good.data, "ocr-jobs")
        event_id, body = forged.id, forged.to_structured()
    elif forgery == "tampered data under a valid signature":
        event_id, body = good.id, tampered(good, to="attacker@example.com")
    else:
        # issue-otp's own key (a compromised function) over an event claiming ocr's source.
        renamed = sign_as_if(dataclasses.replace(good, source="/functions/ocr"), "issue-otp")
        event_id, body = good.id, renamed.to_structured()
    publish(stack.amqp_url, EmailRequested.TYPE, body)
    dead = dead_letter_reason(stack, "send-email", event_id)
    assert dead.startswith("401 ") and reason in dead, dead
    assert no_mail(mailbox, subject, wait=0)
    assert mailbox.matching(to="attacker@example.com", subject=subject) == []


def test_a_reader_of_the_broker_sees_no_mail_content(stack: Stack, mailbox: Mailbox,
                                                     subject: str, tap: EventTap) -> None:
    """Every holder of the broker's credentials can bind a queue of its own: the mail a
    producer asks for (a code, a document's text) is sealed for send-email alone."""
    with tap.listen(EmailRequested.TYPE) as received:
        publish(stack.amqp_url, EmailRequested.TYPE, signed(mail(subject), "issue-otp")
                .to_structured())
        received.wait_until(lambda e: e.data.get("subject") == subject)
        raw = [body for body in received.raw if b"sealed" in body]
    mailbox.wait_for(subject=subject)
    assert raw and all(subject.encode() not in body and b"victim@" not in body for body in raw)
    # Data in clear, even under a producer's valid signature, is not a mail.
    clear = signed_data(EmailRequested.TYPE, mail(subject + " clear").to_data(), "issue-otp",
                        sealed=False)
    publish(stack.amqp_url, EmailRequested.TYPE, clear.to_structured())
    dead = dead_letter_reason(stack, "send-email", clear.id)
    assert dead.startswith("422 ") and "sealed" in dead, dead


def test_a_reader_of_the_broker_learns_no_address(stack: Stack, mailbox: Mailbox,
                                                  tap: EventTap) -> None:
    """A sign-up and its resend put four kinds of event on the broker; only ids travel in
    clear (issue-otp reads the address from the registration and the code request), and
    the mails themselves are sealed."""
    email = f"broker-reader-{uuid.uuid4().hex[:10]}@example.com"
    person, fn = clients.session(), f"{stack.gateway}/function"
    with tap.listen("#") as received:
        r = person.post(f"{fn}/register", timeout=30, json={
            "name": "Broker Reader", "email": email, "password": "an unusual long password 7"})
        assert r.status_code == 202, r.text
        mailbox.wait_for(to=email, timeout=15)
        assert person.post(f"{fn}/issue-otp", json={"email": email}, timeout=30).status_code == 202
        deadline = time.monotonic() + 15
        while len(mailbox.matching(to=email)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        mails = {e.id for e in received.events
                 if e.type == EmailRequested.TYPE and e.data["to"] == email}
        assert len(mails) == 2
        for mail_id in mails:
            received.wait_until(lambda e, m=mail_id: e.type == EmailSent.TYPE
                                and e.data == {"request_id": m})
    seen = {e.type for e in received.events}
    assert {UserRegistered.TYPE, CodeRequested.TYPE, EmailRequested.TYPE, EmailSent.TYPE} <= seen
    assert not [body for body in received.raw if email.encode() in body.lower()]


def test_a_replayed_event_has_no_second_effect(stack: Stack, mailbox: Mailbox,
                                               subject: str) -> None:
    event = signed(mail(subject, to="replay@example.com"), "issue-otp")
    publish(stack.amqp_url, EmailRequested.TYPE, event.to_structured())
    mailbox.wait_for(subject=subject)
    # Replayed later, onto the exchange and at the function's port.
    publish(stack.amqp_url, EmailRequested.TYPE, event.to_structured())
    r = requests.post(stack.function_url("send-email"), data=event.to_structured(),
                      headers=STRUCTURED, timeout=10)
    assert (r.status_code, r.json()["status"]) == (200, "duplicate")
    time.sleep(1.5)
    assert len(mailbox.matching(subject=subject)) == 1


def test_a_signed_event_from_before_the_replay_window_is_refused(
        stack: Stack, mailbox: Mailbox, subject: str) -> None:
    old = signed(mail(subject), "issue-otp", time=datetime(2020, 1, 1, tzinfo=UTC))
    r = requests.post(stack.function_url("send-email"), data=old.to_structured(),
                      headers=STRUCTURED, timeout=10)
    assert r.status_code == 401 and "replay window" in r.json()["detail"]
    assert no_mail(mailbox, subject)


# ---- ocr: forged jobs -----------------------------------------------------------------

@pytest.fixture
def victims_job(container: Container) -> Iterator[tuple[str, str]]:
    """Another user's queued job (staged without its event: nothing else will run it)."""
    user_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    with container.unit_of_work() as uow:
        uow.jobs.create(job_id=job_id, user_id=user_id, status=ocr.QUEUED,
                        object_key=ocr.object_key(user_id, job_id), content_type="image/png",
                        size=100)
    yield user_id, job_id


def job_state(container: Container, job_id: str) -> tuple[str, int]:
    with container.unit_of_work() as uow:
        job = uow.jobs.get(job_id)
    assert job is not None
    return job.status, job.attempts


def test_forged_ocr_requests_change_no_job(stack: Stack, container: Container,
                                           victims_job: tuple[str, str]) -> None:
    user_id, job_id = victims_job
    payload = OcrRequested(bucket="scanline-uploads", key=ocr.object_key(user_id, job_id),
                           job_id=job_id, user_id=user_id)
    genuine = signed(payload, "ocr-jobs", subject=job_id)
    forgeries = {
        "unsigned": unsigned(genuine).to_structured(),
        "signed by ocr": signed_data(OcrRequested.TYPE, genuine.data, "ocr").to_structured(),
        "key swapped under the signature": tampered(genuine, key="uploads/x/y"),
    }
    for name, body in forgeries.items():
        for _ in range(4):  # in parallel or in a row, as in the attack
            r = requests.post(stack.function_url("ocr"), data=body, headers=STRUCTURED,
                              timeout=10)
            assert r.status_code == 401, (name, r.text)
        publish(stack.amqp_url, OcrRequested.TYPE, body)
        assert dead_letter_reason(stack, "ocr", json.loads(body)["id"]).startswith("401 ")
    assert job_state(container, job_id) == (ocr.QUEUED, 0)
    # Nor does the gateway route to ocr at all.
    r = requests.post(f"{stack.gateway}/function/ocr", data=forgeries["unsigned"],
                      headers=STRUCTURED, timeout=10)
    assert r.status_code == 404
