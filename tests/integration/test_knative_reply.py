"""Knative: the first emitted event is the reply, the rest reach the sink over HTTP."""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.local.environment import function_environment
from scanline import events
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.bootstrap import Container
from scanline.events import Event
from scanline.payloads import EmailRequested, EmailSent
from scanline.runtime import Response, Routes
from scanline.runtime.app import create_app
from scanline.settings import Settings
from tests.support.signing import signed
from tests.support.stack import Stack


class Sink(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                sink.received.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def reply_handler() -> types.ModuleType:
    """A send-email look-alike whose delivery emits two ``email.sent`` events."""
    routes = Routes()

    @routes.event(EmailRequested, emits=[EmailSent])
    def emit_two(event: EmailRequested, envelope: Event, uow: UnitOfWork) -> Response:
        with uow:
            for n in (1, 2):
                uow.emit(EmailSent(request_id=f"{envelope.id}-{n}"),
                         subject=envelope.id)
        return Response({"done": True}, status=202)

    module = types.ModuleType("handler")
    module.routes = routes  # type: ignore[attr-defined]
    return module


def test_prefer_reply_returns_the_first_event_and_sinks_the_rest(stack: Stack,
                                                                 sink: Sink) -> None:
    env = {**function_environment("send-email"), "EVENT_SINK": "reply",
           "K_SINK": f"http://127.0.0.1:{sink.server_port}/"}
    container = Container(Settings.from_env(env))
    client = create_app(reply_handler(), container).test_client()
    delivery = signed(EmailRequested(to="reply@example.com", subject="s", text="t"))
    headers, body = delivery.to_binary()

    r = client.post("/", data=body, headers={**headers, "Prefer": "reply"})
    assert r.status_code == 200
    assert r.headers["ce-type"] == EmailSent.TYPE
    assert r.json == {"request_id": f"{delivery.id}-1"}
    assert r.headers["ce-subject"] == delivery.id
    # The reply is signed like any event: the broker routes it on to a consumer that checks.
    reply = events.parse_binary(dict(r.headers), r.get_data())
    assert container.event_verifier.verify(reply) == "send-email"
    assert [h["ce-type"] for h in sink.received] == [EmailSent.TYPE]

    again = signed(EmailRequested(to="reply@example.com", subject="s", text="t"))
    headers, body = again.to_binary()
    plain = client.post("/", data=body, headers=headers)  # no Prefer: both go to the sink
    assert plain.status_code == 200 and plain.json == {"done": True}
    assert len(sink.received) == 3
    container.close()
