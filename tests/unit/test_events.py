"""CloudEvent parsing: every malformed input is a BadRequest, never a crash or a new id."""

import json

import pytest

from scanline import events
from scanline.errors import BadRequest
from scanline.payloads import EmailRequested, OcrRequested

GOOD = {"id": "e-1", "source": "/test", "type": EmailRequested.TYPE, "specversion": "1.0",
        "datacontenttype": "application/json", "data": {"to": "a@example.com"}}


def structured(**changes: object) -> bytes:
    document = {**GOOD, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def test_structured_round_trip_keeps_every_attribute() -> None:
    event = events.new_event(OcrRequested.TYPE, {"key": "k"}, source="/functions/x",
                             subject="job-1")
    parsed = events.parse_structured(event.to_structured())
    assert (parsed.id, parsed.type, parsed.subject, parsed.data) == (
        event.id, event.type, "job-1", {"key": "k"})
    assert parsed.traceparent == event.traceparent


def test_binary_round_trip() -> None:
    event = events.new_event(EmailRequested.TYPE, {"to": "a@b.c"}, source="/functions/x")
    headers, body = event.to_binary()
    assert headers["ce-id"] == event.id and headers["content-type"] == "application/json"
    assert events.parse_binary(headers, body).data == {"to": "a@b.c"}


@pytest.mark.parametrize("missing", events.REQUIRED)
def test_structured_missing_required_attribute_is_rejected_not_invented(missing: str) -> None:
    with pytest.raises(BadRequest, match=missing):
        events.parse_structured(structured(**{missing: None}))


@pytest.mark.parametrize("missing", events.REQUIRED)
def test_binary_missing_required_header_is_rejected(missing: str) -> None:
    headers = {f"ce-{k}": v for k, v in GOOD.items() if k in events.REQUIRED and k != missing}
    with pytest.raises(BadRequest, match=missing):
        events.parse_binary(headers, b"{}")


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b"\xff\xfe", b'"a string"',
    structured(time="yesterday"), structured(specversion="0.3"), structured(id=""),
    structured(id=5), structured(BadName="x"), structured(**{"way-too-long-extension-name": "x"}),
])
def test_malformed_structured_events_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequest):
        events.parse_structured(body)


def test_bad_binary_time_is_bad_request() -> None:
    headers = {f"ce-{k}": v for k, v in GOOD.items() if k in events.REQUIRED}
    with pytest.raises(BadRequest):
        events.parse_binary({**headers, "ce-time": "not-a-time"}, b"{}")


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("application/cloudevents+json", b"anything", True),
    ("text/plain", structured(), True),
    ("text/plain; charset=utf-8", structured(), True),
    ("application/json", b'{"email": "a@b.c"}', False),
    ("text/plain", b"hello", False),
    ("image/png", structured(), False),
])
def test_structured_mode_is_recognised_by_content_type_or_shape(
        content_type: str, body: bytes, expected: bool) -> None:
    assert events.looks_structured(content_type, body) is expected


def test_child_traceparent_keeps_the_trace_and_changes_the_span() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    child = events.child_traceparent(parent)
    assert child.split("-")[1] == parent.split("-")[1]
    assert child.split("-")[2] != parent.split("-")[2]
    assert len(events.child_traceparent(None).split("-")[1]) == 32


@pytest.mark.parametrize("changes", [
    {"averyveryverylongname": "x"},  # 21 characters: over the spec's 20
    {"id": "e\x001"},  # the id is stored for de-duplication
    {"source": "/test\ud800"},  # a lone surrogate cannot be encoded
])
def test_attributes_that_cannot_be_names_or_stored_text_are_bad_requests(
        changes: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        events.parse_structured(structured(**changes))


def test_an_extension_name_of_twenty_characters_is_accepted() -> None:
    event = events.parse_structured(structured(abcdefghijklmnopqrst="x"))
    assert event.extensions["abcdefghijklmnopqrst"] == "x"
