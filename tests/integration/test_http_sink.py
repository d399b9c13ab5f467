"""The Knative publisher against a real HTTP receiver: binary-mode CloudEvents to K_SINK.

A ``http.server`` on 127.0.0.1 plays the broker's ingress; what it records is what a
RabbitMQ broker ingress would see. No stack is needed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scanline import events
from scanline.adapters.bus import HttpSinkPublisher
from scanline.bootstrap import Container
from scanline.errors import DependencyUnavailable
from scanline.payloads import EmailRequested, EmailSent, OcrRequested, UserRegistered, UserVerified
from scanline.settings import Settings


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Sink:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 202
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                sink.received.append(Received(self.path, {k.lower(): v for k, v in
                                                          self.headers.items()},
                                              self.rfile.read(length)))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/scanline/default"


@pytest.fixture
def sink() -> Iterator[Sink]:
    running = Sink()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()
    thread.join(timeout=5)


@dataclass(frozen=True)
class Message:
    id: str
    type: str
    body: bytes


def _message(event: events.Event) -> Message:
    return Message(event.id, event.type, event.to_structured())


def test_events_arrive_in_binary_mode_with_ce_headers(sink: Sink) -> None:
    event = events.new_event(UserRegistered.TYPE, {"registration_id": "u-1"},
                             source="/functions/register", subject="u-1")
    publisher = HttpSinkPublisher(sink.url)
    try:
        publisher.publish([_message(event)])
    finally:
        publisher.close()
    (got,) = sink.received
    assert got.path == "/scanline/default"
    assert got.headers["ce-id"] == event.id
    assert got.headers["ce-type"] == UserRegistered.TYPE
    assert got.headers["ce-source"] == "/functions/register"
    assert got.headers["ce-specversion"] == "1.0"
    assert got.headers["ce-subject"] == "u-1"
    assert got.headers["ce-traceparent"] == event.traceparent
    assert "ce-time" in got.headers
    assert got.headers["content-type"].startswith("application/json")
    assert json.loads(got.body) == {"registration_id": "u-1"}
    # What the receiver got parses back into the same event.
    assert events.parse_binary(got.headers, got.body).id == event.id


def test_every_message_of_a_batch_is_posted_in_order(sink: Sink) -> None:
    batch = [events.new_event(EmailRequested.TYPE, {"to": f"{i}@x.example"},
                              source="/functions/issue-otp") for i in range(3)]
    publisher = HttpSinkPublisher(sink.url)
    publisher.publish([_message(e) for e in batch])
    publisher.close()
    assert [r.headers["ce-id"] for r in sink.received] == [e.id for e in batch]


@pytest.mark.parametrize("status", [400, 500, 503])
def test_a_refusing_sink_keeps_the_event_for_retry(sink: Sink, status: int) -> None:
    sink.status = status
    event = events.new_event(OcrRequested.TYPE, {"job_id": "j"}, source="/functions/ocr-jobs")
    publisher = HttpSinkPublisher(sink.url)
    with pytest.raises(DependencyUnavailable):
        publisher.publish([_message(event)])
    publisher.close()


def test_an_unreachable_sink_is_a_dependency_failure(sink: Sink) -> None:
    url = sink.url
    sink.server.shutdown()
    sink.server.server_close()
    publisher = HttpSinkPublisher(url, timeout=1)
    with pytest.raises(DependencyUnavailable):
        publisher.publish([_message(events.new_event(EmailSent.TYPE, {}, source="/t"))])


def test_k_sink_in_the_environment_selects_the_http_publisher(sink: Sink) -> None:
    container = Container(Settings.from_env({"K_SINK": sink.url, "FUNCTION_NAME": "verify-otp"}))
    try:
        assert isinstance(container.publisher, HttpSinkPublisher)
        event = events.new_event(UserVerified.TYPE, {"user_id": "u-2"}, subject="u-2",
                                 source="/functions/verify-otp")
        container.publisher.publish([_message(event)])
    finally:
        container.close()
    assert sink.received[0].headers["ce-source"] == "/functions/verify-otp"
