"""Knative's dead-letter sink, in-process, against the local stack's RabbitMQ: what the
broker gave up on lands in the function's ``scanline.<fn>.dlq`` with its reason, where
``infra.local.deadletters`` reads and replays it; a broken event is refused, not lost."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from werkzeug.test import Client

from infra.connector.amqp import (
    ORIGIN_ROUTING_KEY_HEADER,
    REASON_HEADER,
    connection_parameters,
    publisher,
)
from infra.connector.deadletter_sink import Sink
from infra.connector.trigger import declare_topology
from infra.local.pytest_stack import local_stack  # noqa: F401 (fixture)
from scanline.adapters.topology import dead_letter_queue, queue_name
from scanline.events import new_event

FUNCTION = f"itest-sink-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sink(local_stack: object) -> Iterator[Client]:  # noqa: F811
    def declare(channel: BlockingChannel) -> None:
        declare_topology(channel, FUNCTION, ())

    connection = pika.BlockingConnection(connection_parameters())
    declare(connection.channel())
    sender = publisher(declare)
    try:
        yield Client(Sink([FUNCTION], sender))
    finally:
        sender.close()
        channel = connection.channel()
        for queue in (queue_name(FUNCTION), dead_letter_queue(FUNCTION)):
            channel.queue_delete(queue)
        connection.close()


def _take(queue: str) -> tuple[pika.spec.BasicProperties, bytes] | None:
    connection = pika.BlockingConnection(connection_parameters())
    try:
        method, properties, body = connection.channel().basic_get(queue, auto_ack=True)
        return None if method is None else (properties, body)
    finally:
        connection.close()


def test_a_dead_letter_is_kept_with_its_reason(sink: Client) -> None:
    event = new_event("io.scanline.email.requested.v1", {"to": "a@example.com"},
                      source="/scanline/issue-otp")
    headers, body = event.to_binary()
    problem = base64.b64encode(json.dumps({"detail": "the signature does not verify"}).encode())
    headers.update({
        "ce-knativeerrordest": f"http://{FUNCTION}.scanline.svc.cluster.local",
        "ce-knativeerrorcode": "401", "ce-knativeerrordata": problem.decode()})
    response = sink.post("/", data=body, headers=headers)
    assert response.status_code == 200
    kept = _take(dead_letter_queue(FUNCTION))
    assert kept is not None
    properties, stored = kept
    assert properties.message_id == event.id
    assert properties.headers[REASON_HEADER] == "401 the signature does not verify"
    assert properties.headers[ORIGIN_ROUTING_KEY_HEADER] == event.type
    assert json.loads(stored)["id"] == event.id


def test_something_that_is_not_an_event_is_refused(sink: Client) -> None:
    assert sink.post("/", data=b"not an event", headers={"Content-Type": "text/plain"}
                     ).status_code == 400
    assert _take(dead_letter_queue(FUNCTION)) is None
