"""Knative's dead-letter sink: keep what the broker gave up on, with why, where it can be replayed.

eventing-rabbitmq sends an event it could not deliver (a 4xx, or retries exhausted) here,
with the subscriber's address and answer in the ``knativeerrordest``, ``knativeerrorcode``
and ``knativeerrordata`` extensions. This sink publishes it, confirmed, to the same
dead-letter queue the connector uses on the other targets, ``scanline.<fn>.dlq``, with the
reason in ``x-scanline-reason``, so ``python -m infra.local.deadletters list|replay`` works
the same everywhere. It answers 200 only once the broker confirmed: eventing-rabbitmq acks
the original before it calls the sink and only logs a failure here, so the sink must not
lose one it accepted. An event whose subscriber it cannot name goes to
``scanline.unrouted.dlq``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import BasicProperties
from waitress import serve

from infra.connector.amqp import (
    ORIGIN_EXCHANGE_HEADER,
    ORIGIN_ROUTING_KEY_HEADER,
    REASON_HEADER,
    publisher,
)
from infra.connector.trigger import declare_topology
from infra.local.stackfile import load
from scanline import events
from scanline.adapters.bus import AmqpPublisher
from scanline.adapters.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, dead_letter_queue
from scanline.errors import BadRequest, DependencyUnavailable
from scanline.logs import configure as configure_logging

log = logging.getLogger("deadletter-sink")

UNROUTED = "unrouted"
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def subscriber_of(destination: str, known: Iterable[str]) -> str:
    """``http://ocr.scanline.svc.cluster.local`` → ``ocr`` (a Knative Service's host)."""
    host = urlsplit(destination).hostname or ""
    name = host.split(".", 1)[0]
    return name if name in set(known) else UNROUTED


def reason_of(extensions: dict[str, Any]) -> str:
    code = str(extensions.get("knativeerrorcode", "")).strip()
    data = str(extensions.get("knativeerrordata", ""))
    try:
        detail = base64.b64decode(data, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        detail = data
    with contextlib.suppress(ValueError, AttributeError):  # a problem document, or text
        detail = json.loads(detail).get("detail", detail)
    return f"{code} {detail}".strip()[:1000] or "dead-lettered by the Knative broker"


class Sink:
    def __init__(self, functions: Iterable[str], sender: AmqpPublisher) -> None:
        self.functions = tuple(functions)
        self.sender = sender

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ["REQUEST_METHOD"] != "POST":
            return self._answer(start_response, "405 Method Not Allowed", b"POST events here")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            event = (events.parse_binary(headers, body) if events.is_binary(headers)
                     else events.parse_structured(body))
        except BadRequest as exc:
            return self._answer(start_response, "400 Bad Request", exc.detail.encode())
        extensions = dict(event.extensions)
        function = subscriber_of(str(extensions.get("knativeerrordest", "")), self.functions)
        properties = BasicProperties(
            content_type=events.STRUCTURED_CONTENT_TYPE, delivery_mode=2, message_id=event.id,
            type=event.type, headers={REASON_HEADER: reason_of(extensions),
                                      ORIGIN_EXCHANGE_HEADER: EXCHANGE,
                                      ORIGIN_ROUTING_KEY_HEADER: event.type})
        try:
            self.sender.send(DEAD_LETTER_EXCHANGE, dead_letter_queue(function),
                             event.to_structured(), properties)
        except DependencyUnavailable as exc:
            log.warning("dead letter not stored", extra={"function": function,
                                                         "error": repr(exc)})
            return self._answer(start_response, "503 Service Unavailable", b"broker down")
        log.info("dead letter stored", extra={"function": function, "event_id": event.id})
        return self._answer(start_response, "200 OK", b"")

    @staticmethod
    def _answer(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
        start_response(status, [("Content-Type", "text/plain"),
                                ("Content-Length", str(len(body)))])
        return [body]


def main() -> None:
    configure_logging("deadletter-sink")
    functions = [f.name for f in load().functions.values() if f.topics]

    def declare(channel: BlockingChannel) -> None:
        for name in (*functions, UNROUTED):
            declare_topology(channel, name, ())

    sink = Sink(functions, publisher(declare))
    serve(sink, host="0.0.0.0", port=int(os.environ.get("PORT", "8080")),
          ident="scanline-deadletter-sink")


if __name__ == "__main__":
    main()
