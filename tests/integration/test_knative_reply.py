"""Knative: the first emitted event is the reply, the rest reach the sink over HTTP."""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from infra.local.environment import function_environment
from scanline import events
from scanline.bootstrap import Container
from scanline.events import Event
from scanline.runtime import Context, Response
from scanline.runtime.app import create_app
from scanline.settings import Settings
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


def emit_two(event: Event, context: Context) -> Response:
    with context.deps.uow() as uow:
        for n in (1, 2):
            uow.emit(context.deps.event(events.EMAIL_SENT, {"n": n}, subject=event.id))
    return Response({"done": True}, status=202)


def test_prefer_reply_returns_the_first_event_and_sinks_the_rest(stack: Stack,
                                                                 sink: Sink) -> None:
    handler = types.ModuleType("handler")
    handler.handle = emit_two  # type: ignore[attr-defined]
    env = {**function_environment("itest"), "EVENT_SINK": "reply",
           "K_SINK": f"http://127.0.0.1:{sink.server_port}/"}
    container = Container(Settings.from_env(env))
    client = create_app(handler, container).test_client()
    delivery = events.new_event(events.USER_VERIFIED, {"u": 1}, source="/broker")
    headers, body = delivery.to_binary()

    r = client.post("/", data=body, headers={**headers, "Prefer": "reply"})
    assert r.status_code == 200
    assert r.headers["ce-type"] == events.EMAIL_SENT and r.json == {"n": 1}
    assert r.headers["ce-subject"] == delivery.id
    assert [h["ce-type"] for h in sink.received] == [events.EMAIL_SENT]

    plain = client.post("/", data=body, headers=headers)  # no Prefer: both go to the sink
    assert plain.status_code == 200 and plain.json == {"done": True}
    assert len(sink.received) == 3
    container.close()
