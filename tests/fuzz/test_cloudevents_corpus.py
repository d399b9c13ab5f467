"""Malformed CloudEvents against every function: over HTTP (binary and structured mode,
through the gateway, or at the function's own port for the event-only ones, which the
local gateway does not serve) the answer is a 4xx — 400 for a broken envelope, 413 for a
body over the function's limit, 431/400 for huge headers, 400/401/422 for data of the
wrong shape or an event without a trusted signature — never a 5xx, and no function
process dies. Through RabbitMQ, every malformed message to an event-triggered function
ends in its dead-letter queue, and a good message sent after them is still processed.

The table of function x case → answer is printed at the end (``pytest -s``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sqlalchemy import select

from bench.ocr_client import OcrClient
from bench.ocr_samples import generated
from infra.local.stackfile import Function, load
from scanline import events, payloads
from scanline.adapters.tables import processed_events
from scanline.adapters.topology import dead_letter_queue
from scanline.bootstrap import Container
from scanline.payloads import EmailRequested
from tests.support.broker import publish, take
from tests.support.mailbox import Mailbox
from tests.support.signing import signed, signed_data
from tests.support.stack import Stack

pytestmark = pytest.mark.fuzz

STACK = load(environ={})
MIB = 1024 * 1024
RUN = uuid.uuid4().hex[:10]
BAD_TIME = "yesterday at noon"
# Names the spec forbids: upper case, over 20 characters, punctuation.
BAD_NAMES = ("BadName", "averyveryverylongname", "bad-name!")
ENVELOPE = frozenset({400})
DATA_SHAPE = frozenset({400, 401, 422})  # 401: ocr-jobs asks for a token before the data
HUGE_HEADER = frozenset({400, 431})
REMOVE = object()


def event_type(function: Function) -> str:
    """The event a function consumes (an HTTP-only function gets a mail request)."""
    return function.topics[0] if function.topics else EmailRequested.TYPE


def good_data(name: str) -> dict[str, Any]:
    """Data the function accepts, so that a case's only fault is the one it is named for."""
    return {
        "send-email": {"to": "corpus@example.com", "subject": "corpus", "text": "corpus"},
        "issue-otp": {"registration_id": str(uuid.uuid4())},
        "ocr": {"bucket": "scanline-uploads", "key": "uploads/corpus/none",
                "job_id": str(uuid.uuid4()), "user_id": "corpus"},
    }.get(name, {})


@dataclass(frozen=True)
class Case:
    name: str
    expected: frozenset[int]
    changes: dict[str, Any] = field(default_factory=dict)  # attribute → value or REMOVE
    data: Any = None  # replaces the good data when not None (REMOVE: no data at all)
    raw: bytes | None = None  # structured only: the whole body


def _common() -> list[Case]:
    cases = [Case(f"missing {a}", ENVELOPE, {a: REMOVE}) for a in events.REQUIRED]
    cases += [
        Case("bad time", ENVELOPE, {"time": BAD_TIME}),
        Case("specversion 0.3", ENVELOPE, {"specversion": "0.3"}),
        Case("data a string", DATA_SHAPE, data="a string"),
        Case("data an array", DATA_SHAPE, data=[1, 2, 3]),
        Case("data missing", DATA_SHAPE, data=REMOVE),
    ]
    return cases


BINARY = [
    *_common(),
    # Header names are case-insensitive: an upper-case ce- header is a valid name.
    *(Case(f"extension {n!r}", ENVELOPE, {n: "x"}) for n in BAD_NAMES if n.lower() == n),
    Case("extension value of 1 MiB", HUGE_HEADER, {"big": "x" * MIB}),
]
STRUCTURED = [
    *_common(),
    *(Case(f"extension {n!r}", ENVELOPE, {n: "x"}) for n in BAD_NAMES),
    Case("id with a NUL", ENVELOPE, {"id": "corpus\x00id"}),
    Case("not JSON", ENVELOPE, raw=b'{"specversion": "1.0", "id": '),
    Case("a JSON array", ENVELOPE, raw=b'[{"specversion": "1.0"}]'),
    Case("extension value of 1 MiB", frozenset(), {"big": "x" * MIB}),  # see expected()
]


def expected(function: Function, case: Case, body: bytes) -> frozenset[int]:
    if case.expected:
        return case.expected
    limit = int(function.environment.get("MAX_REQUEST_BYTES", 65536))
    return frozenset({413}) if len(body) > limit else DATA_SHAPE | ENVELOPE


def attributes(function: Function, case: Case, marker: str) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "specversion": "1.0", "id": f"corpus-{marker}", "source": "/tests/fuzz/corpus",
        "type": event_type(function), "time": "2026-01-01T00:00:00Z", "fuzzcase": marker}
    envelope.update(case.changes)
    return {k: v for k, v in envelope.items() if v is not REMOVE}


def structured(function: Function, case: Case, marker: str) -> bytes:
    if case.raw is not None:
        return case.raw.replace(b"{", f'{{"fuzzcase": "{marker}", '.encode(), 1)
    document = attributes(function, case, marker)
    data = good_data(function.name) if case.data is None else case.data
    if data is not REMOVE:
        document.update(datacontenttype="application/json", data=data)
    return json.dumps(document).encode()


def binary(function: Function, case: Case, marker: str) -> tuple[dict[str, str], bytes]:
    headers = {f"ce-{k}": v for k, v in attributes(function, case, marker).items()}
    data = good_data(function.name) if case.data is None else case.data
    if data is REMOVE:
        return headers, b""
    return {**headers, "Content-Type": "application/json"}, json.dumps(data).encode()


# (function, mode, case) → answer, printed at the end.
TABLE: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="module", autouse=True)
def table() -> Iterator[None]:
    yield
    if not TABLE:
        return
    width = max(len(f"{mode}: {case}") for _, mode, case in TABLE)
    names = sorted({fn for fn, _, _ in TABLE}, key=list(STACK.functions).index)
    print("\n" + "case".ljust(width) + " | " + " | ".join(names))
    for mode, case in dict.fromkeys((m, c) for _, m, c in TABLE):
        row = [TABLE.get((fn, mode, case), "").ljust(len(fn)) for fn in names]
        print(f"{mode}: {case}".ljust(width) + " | " + " | ".join(row))


def _post(url: str, headers: dict[str, str], body: bytes) -> int:
    try:
        return requests.post(url, data=body, headers=headers, timeout=30).status_code
    except requests.ConnectionError:
        return 0  # the connection was dropped: recorded, and it fails the case


@pytest.mark.parametrize("name", list(STACK.functions))
def test_malformed_events_over_http_are_4xx(stack: Stack, name: str, no_crash: None) -> None:
    function = STACK.functions[name]
    url = (stack.function_url(name) if function.event_only
           else f"{stack.gateway}/function/{name}")
    wrong = []
    for mode, cases in (("binary", BINARY), ("structured", STRUCTURED)):
        for index, case in enumerate(cases):
            marker = f"{RUN}h{index}"
            if mode == "binary":
                headers, body = binary(function, case, marker)
            else:
                headers = {"Content-Type": events.STRUCTURED_CONTENT_TYPE}
                body = structured(function, case, marker)
            status = _post(url, headers, body)
            TABLE[(name, mode, case.name)] = str(status)
            if status not in expected(function, case, body):
                wrong.append(f"{mode}: {case.name} → {status}")
    assert wrong == []
    assert stack.health()["functions"][name] == "up"


EVENT_FUNCTIONS = [name for name, fn in STACK.functions.items() if fn.topics]


def _dead_letters(stack: Stack, name: str, markers: set[str], timeout: float) -> set[str]:
    """The markers found in ``name``'s dead-letter queue (taken out of it) within timeout."""
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    while found != markers and time.monotonic() < deadline:
        for body in take(stack.amqp_url, dead_letter_queue(name),
                         lambda b: any(m.encode() in b for m in markers)):
            found |= {m for m in markers if m.encode() in body}
        time.sleep(0.2)
    return found


def _processed(container: Container, consumer: str, event_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    query = select(processed_events.c.event_id).where(
        processed_events.c.consumer == consumer, processed_events.c.event_id == event_id)
    while time.monotonic() < deadline:
        with container.db.connect() as conn:
            if conn.execute(query).first():
                return True
        time.sleep(0.2)
    return False


def _good_message_flows(stack: Stack, name: str, container: Container, mailbox: Mailbox,
                        fuzz_user: OcrClient) -> bool:
    if name == "ocr":  # a real upload: recognised, mailed, done
        job = fuzz_user.upload(generated()[0].data).json()["job_id"]
        return fuzz_user.wait_done(job, timeout=60)["status"] == "done"
    type_ = event_type(STACK.functions[name])
    payload = payloads.by_type(type_)
    assert payload is not None
    event = signed_data(type_, good_data(name), sorted(payload.PRODUCERS)[0])
    if name == "send-email":
        event = signed(EmailRequested(to=f"corpus-{RUN}@example.com",
                                      subject="after the corpus", text="ok"))
    publish(stack.amqp_url, event.type, event.to_structured())
    if name == "send-email":
        mailbox.wait_for(header=("X-Scanline-Event-Id", event.id), timeout=20)
        return True
    return _processed(container, name, event.id, timeout=20)


@pytest.mark.parametrize("name", EVENT_FUNCTIONS)
def test_malformed_events_through_rabbitmq_are_dead_lettered(
        stack: Stack, name: str, container: Container, mailbox: Mailbox,
        fuzz_user: OcrClient, no_crash: None) -> None:
    function = STACK.functions[name]
    markers = {}
    for index, case in enumerate(STRUCTURED):
        marker = f"{RUN}q{name}{index}"
        markers[marker] = case.name
        publish(stack.amqp_url, event_type(function), structured(function, case, marker))
    found = _dead_letters(stack, name, set(markers), timeout=30)
    for marker, case in markers.items():
        TABLE[(name, "rabbitmq", case)] = "dlq" if marker in found else "NOT dead-lettered"
    assert found == set(markers), f"not dead-lettered: {[markers[m] for m in set(markers) - found]}"
    assert _good_message_flows(stack, name, container, mailbox, fuzz_user)
    TABLE[(name, "rabbitmq", "good message after them")] = "processed"
