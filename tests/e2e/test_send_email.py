"""send-email through the running stack: broker → trigger → function → SMTP sink."""

from __future__ import annotations

import json
import time
import uuid

import requests

from scanline.adapters.topology import dead_letter_queue
from scanline.payloads import EmailRequested
from tests.support.broker import drain, publish
from tests.support.mailbox import Mailbox
from tests.support.signing import signed, signed_data
from tests.support.stack import Stack


def email_event(subject: str, event_id: str | None = None) -> bytes:
    """A mail request as issue-otp signs it (``event_id`` again: a redelivery)."""
    return signed(EmailRequested(to="e2e@example.com", subject=subject, text="hello from e2e"),
                  "issue-otp", **({"id": event_id} if event_id else {})).to_structured()


def test_published_event_reaches_the_mail_sink_within_2_s(stack: Stack, mailbox: Mailbox) -> None:
    subject = f"fast {uuid.uuid4()}"
    started = time.monotonic()
    publish(stack.amqp_url, EmailRequested.TYPE, email_event(subject))
    message = mailbox.wait_for(subject=subject, timeout=10)
    assert time.monotonic() - started < 2.0
    assert message["To"] == "e2e@example.com"


def test_same_event_id_twice_sends_one_mail(stack: Stack, mailbox: Mailbox) -> None:
    subject, event_id = f"dup {uuid.uuid4()}", str(uuid.uuid4())
    for _ in range(2):
        publish(stack.amqp_url, EmailRequested.TYPE, email_event(subject, event_id))
    mailbox.wait_for(subject=subject)
    time.sleep(1.5)  # give the second copy every chance to arrive
    assert len(mailbox.matching(subject=subject)) == 1


def test_mail_sent_while_smtp_is_down_arrives_after_it_returns(stack: Stack,
                                                               mailbox: Mailbox) -> None:
    subject = f"outage {uuid.uuid4()}"
    stack.stop_program("mailsink")
    try:
        publish(stack.amqp_url, EmailRequested.TYPE, email_event(subject))
        time.sleep(20)
        assert mailbox.matching(subject=subject) == []
    finally:
        stack.start_program("mailsink")
    mailbox.wait_for(subject=subject, timeout=30)
    assert len(mailbox.matching(subject=subject)) == 1


def test_malformed_event_is_dead_lettered_and_the_next_one_flows(stack: Stack,
                                                                 mailbox: Mailbox) -> None:
    dlq = dead_letter_queue("send-email")
    drain(stack.amqp_url, dlq)
    bad = signed_data(EmailRequested.TYPE, {"subject": "bad", "text": "no address"},
                      "issue-otp")
    publish(stack.amqp_url, EmailRequested.TYPE, bad.to_structured())
    good = f"after poison {uuid.uuid4()}"
    publish(stack.amqp_url, EmailRequested.TYPE, email_event(good))
    mailbox.wait_for(subject=good)
    deadline = time.monotonic() + 10
    dead: list[bytes] = []
    while time.monotonic() < deadline and not dead:
        dead = drain(stack.amqp_url, dlq)
        time.sleep(0.2)
    assert [json.loads(b)["id"] for b in dead] == [bad.id]


def test_http_binary_and_structured_modes(stack: Stack, mailbox: Mailbox) -> None:
    url = stack.function_url("send-email")
    subject = f"binary {uuid.uuid4()}"
    event = signed(EmailRequested(to="b@example.com", subject=subject, text="bin"))
    headers, body = event.to_binary()
    assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
    mailbox.wait_for(subject=subject)
    subject = f"structured {uuid.uuid4()}"
    r = requests.post(url, data=email_event(subject),
                      headers={"Content-Type": "application/cloudevents+json"}, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "sent"
    mailbox.wait_for(subject=subject)


def test_http_bad_events_are_400_problems(stack: Stack) -> None:
    url = stack.function_url("send-email")
    ce = {"ce-id": "x1", "ce-source": "/t", "ce-type": EmailRequested.TYPE,
          "ce-specversion": "1.0", "Content-Type": "application/json"}
    # Not an event at all: send-email has no HTTP operation to route it to.
    r = requests.post(url, data=b"\x00garbage\xff", timeout=10,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/problem+json"
    cases = [
        ({k: v for k, v in ce.items() if k != "ce-id"}, b"{}"),
        ({**ce, "ce-time": "yesterday"}, b"{}"),
        ({"Content-Type": "application/cloudevents+json"}, b"{not json"),
    ]
    for headers, body in cases:
        r = requests.post(url, data=body, headers=headers, timeout=10)
        assert r.status_code == 400, (headers, r.text)
        assert r.headers["Content-Type"] == "application/problem+json"
        assert r.json()["status"] == 400
