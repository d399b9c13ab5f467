"""Hostile JSON and header injection against every function: 0 answers of 500 or more.

JSON that Python's parser chokes on (a RecursionError from 1,100 nested brackets, a
ValueError from a 5,000-digit integer), values no JSON implementation agrees on (NaN,
1e999, integers past 2**53), and CR/LF where a value becomes a mail header. Each is sent
as a plain body, as the data of a binary event and inside a structured event, to every
function: through the gateway where it serves the function, to the function's own port
(what the OpenFaaS gateway forwards to) where it does not. Through RabbitMQ, the same
data in signed and unsigned events must be dead-lettered at once (never retried) and send
no mail. The table of answers is printed at the end (``pytest -s``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from bench.ocr_client import OcrClient
from infra.connector.amqp import REASON_HEADER
from infra.local.stackfile import load
from scanline.adapters.topology import dead_letter_queue
from scanline.payloads import EmailRequested
from tests.support.broker import publish, take_messages
from tests.support.mailbox import Mailbox
from tests.support.signing import sealer, signed_data
from tests.support.stack import Stack

pytestmark = pytest.mark.fuzz

STACK = load(environ={})
RUN = uuid.uuid4().hex[:10]
DEEP = b"[" * 1100 + b"]" * 1100  # 2,200 bytes
CORPUS: dict[str, bytes] = {
    "1100 nested brackets": DEEP,
    "40 nested objects": b'{"a":' * 40 + b"1" + b"}" * 40,
    "5000-digit integer": b'{"email": ' + b"9" * 5000 + b"}",
    "integer past 2**53": b'{"size": 9007199254740993, "content_type": "image/png"}',
    "NaN": b'{"email": NaN}',
    "1e999": b'{"size": 1e999, "content_type": "image/png"}',
    "invalid UTF-8": b'{"email": "\xff\xfe"}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"email": "a@example.com"}',
}
INJECTION = {
    "CRLF in to": {"to": "victim@example.com\r\nBcc: everyone@example.com", "subject": "s",
                   "text": "t"},
    "CRLF in subject": {"to": "victim@example.com", "subject": "hi\r\nBcc: all@example.com",
                        "text": "t"},
    "LF in subject": {"to": "victim@example.com", "subject": "hi\nX-Evil: 1", "text": "t"},
    "bare @ as address": {"to": "@", "subject": "s", "text": "t"},
}
TABLE: Counter[tuple[str, str, int]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    yield
    for (function, case, status), count in sorted(TABLE.items()):
        print(f"{function:12} {case:40} {status} x{count}")


def url(stack: Stack, name: str) -> str:
    if STACK.functions[name].event_only:
        return stack.function_url(name)
    return f"{stack.gateway}/function/{name}"


def structured_with(data: bytes) -> bytes:
    """A structured event whose data member is ``data`` verbatim."""
    envelope = json.dumps({"specversion": "1.0", "id": f"hostile-{uuid.uuid4()}",
                           "source": "/tests/fuzz", "type": EmailRequested.TYPE,
                           "time": "2026-01-01T00:00:00Z",
                           "datacontenttype": "application/json", "data": "@@"}).encode()
    return envelope.replace(b'"@@"', data)


@pytest.mark.parametrize("name", list(STACK.functions))
def test_hostile_json_is_never_a_5xx(stack: Stack, name: str, fuzz_user: OcrClient,
                                     no_crash: None) -> None:
    target = url(stack, name)
    auth = {"Authorization": f"Bearer {fuzz_user.token}"}
    binary = {"ce-specversion": "1.0", "ce-id": "hostile", "ce-source": "/tests/fuzz",
              "ce-type": EmailRequested.TYPE, "Content-Type": "application/json"}
    high = []
    for case, body in CORPUS.items():
        attempts = {
            "plain": ({"Content-Type": "application/json", **auth}, body),
            "binary event": (binary, body),
            "structured event": ({"Content-Type": "application/cloudevents+json"},
                                 structured_with(body)),
            "structured as text/plain": ({"Content-Type": "text/plain"},
                                         structured_with(body)),
        }
        for mode, (headers, payload) in attempts.items():
            status = requests.post(target, data=payload, headers=headers,
                                   timeout=30).status_code
            TABLE[(name, f"{mode}: {case}", status)] += 1
            if status >= 500:
                high.append((mode, case, status))
    assert high == []


def test_header_injection_over_http_is_refused_and_sends_nothing(
        stack: Stack, mailbox: Mailbox, no_crash: None) -> None:
    target = stack.function_url("send-email")
    for case, data in INJECTION.items():
        subject = f"{data['subject']} {RUN}"
        event = signed_data(EmailRequested.TYPE, {**data, "subject": subject}, "issue-otp")
        r = requests.post(target, data=event.to_structured(), timeout=30,
                          headers={"Content-Type": "application/cloudevents+json"})
        TABLE[("send-email", f"signed event: {case}", r.status_code)] += 1
        assert r.status_code == 422, (case, r.text)
    # The same in register's address: refused by the address check.
    r = requests.post(f"{stack.gateway}/function/register", timeout=30, json={
        "name": "x", "email": "victim@example.com\r\nBcc: all@example.com",
        "password": "Zq8!vLx9#pW2-fuzz"})
    assert r.status_code == 422
    time.sleep(1)
    assert mailbox.matching(subject=RUN) == []


def _dead_lettered(stack: Stack, markers: set[str], timeout: float = 30) -> dict[str, str]:
    """marker → the reason its dead letter carries (taken out of the queue)."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while set(found) != markers and time.monotonic() < deadline:
        for properties, body in take_messages(
                stack.amqp_url, dead_letter_queue("send-email"),
                lambda b: any(m.encode() in b for m in markers)):
            marker = next(m for m in markers if m.encode() in body)
            found[marker] = str((properties.headers or {}).get(REASON_HEADER, ""))
        time.sleep(0.2)
    return found


def test_hostile_events_through_rabbitmq_are_dead_lettered_at_once_and_mail_nothing(
        stack: Stack, mailbox: Mailbox, no_crash: None) -> None:
    # The data is sealed, so each event's marker is its (clear) subject attribute.
    markers: dict[str, str] = {}
    for case, data in INJECTION.items():  # trusted signature, hostile data
        marker = f"{RUN}-inj-{len(markers)}"
        event = signed_data(EmailRequested.TYPE, {**data, "text": marker}, "issue-otp",
                            subject=marker)
        publish(stack.amqp_url, EmailRequested.TYPE, event.to_structured())
        markers[marker] = case
    for case, body in CORPUS.items():  # hostile JSON as the sealed data of an event
        marker = f"{RUN}-json-{len(markers)}"
        hostile = b'{"to":"a@example.com","subject":"%s","text":' % marker.encode() + body + b"}"
        event = signed_data(EmailRequested.TYPE, sealer().seal_text(EmailRequested.TYPE, hostile),
                            "issue-otp", subject=marker, sealed=False)
        publish(stack.amqp_url, EmailRequested.TYPE, event.to_structured())
        markers[marker] = case
    found = _dead_lettered(stack, set(markers))
    missing = {markers[m] for m in set(markers) - set(found)}
    assert missing == set(), f"not dead-lettered: {missing}"
    for marker, reason in found.items():
        TABLE[("send-email", f"rabbitmq: {markers[marker]}", int(reason[:3]))] += 1
        assert reason[:1] == "4", (markers[marker], reason)  # a 4xx: never retried
    time.sleep(1)
    assert [m for m in mailbox.messages()
            if RUN in str(m["Subject"]) + str(m.get_body(("plain",)))] == []
