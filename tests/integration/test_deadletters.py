"""``python -m infra.local.deadletters replay`` against the real broker: a letter goes back
to where it was first published and leaves the dead-letter queue only once the broker took
it; one whose origin routes nowhere stays where it is (it is not dropped)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from infra.connector.amqp import (
    ORIGIN_EXCHANGE_HEADER,
    ORIGIN_ROUTING_KEY_HEADER,
    REASON_HEADER,
    connection_parameters,
)
from infra.connector.trigger import declare_topology
from infra.local.deadletters import cmd_replay
from infra.local.pytest_stack import local_stack  # noqa: F401 (fixture)
from scanline.adapters.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, dead_letter_queue, queue_name

FUNCTION = f"itest-replay-{uuid.uuid4().hex[:8]}"
TOPIC = f"io.scanline.test.{FUNCTION}.v1"


@pytest.fixture
def channel(local_stack: object) -> Iterator[BlockingChannel]:  # noqa: F811
    connection = pika.BlockingConnection(connection_parameters())
    channel = connection.channel()
    declare_topology(channel, FUNCTION, (TOPIC,))
    yield channel
    for queue in (queue_name(FUNCTION), dead_letter_queue(FUNCTION)):
        channel.queue_delete(queue)
    connection.close()


def _dead_letter(channel: BlockingChannel, routing_key: str) -> None:
    channel.basic_publish(DEAD_LETTER_EXCHANGE, dead_letter_queue(FUNCTION), b'{"id": "e1"}',
                          pika.BasicProperties(message_id="e1", headers={
                              REASON_HEADER: "503 busy", ORIGIN_EXCHANGE_HEADER: EXCHANGE,
                              ORIGIN_ROUTING_KEY_HEADER: routing_key}))


def _count(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def test_replay_sends_a_letter_back_to_its_queue(channel: BlockingChannel) -> None:
    _dead_letter(channel, TOPIC)
    assert cmd_replay(FUNCTION, None) == 0
    assert _count(channel, dead_letter_queue(FUNCTION)) == 0
    _, properties, body = channel.basic_get(queue_name(FUNCTION), auto_ack=True)
    assert body == b'{"id": "e1"}' and REASON_HEADER not in (properties.headers or {})


def test_a_letter_that_would_route_nowhere_stays_dead(channel: BlockingChannel) -> None:
    _dead_letter(channel, "io.scanline.nobody.listens.v1")
    assert cmd_replay(FUNCTION, None) == 1
    assert _count(channel, dead_letter_queue(FUNCTION)) == 1
