"""A RabbitMQ consumer that survives broker restarts, shared by the connector and the
local queue-worker; publishing goes through the functions' own ``AmqpPublisher``.

pika connections are not thread-safe, so each consumer owns one connection in its own
thread; deliveries are handed to a small worker pool (one worker per prefetched message)
and settled back on the connection's thread with ``add_callback_threadsafe``. When the
broker goes away the consumer reconnects with capped exponential back-off; unsettled
messages are redelivered by the broker, which is why every consumer must be idempotent.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from infra.local import paths
from scanline.adapters.bus import AmqpPublisher, url_with_password
from scanline.adapters.topology import DEAD_LETTER_EXCHANGE, dead_letter_queue_of
from scanline.errors import DependencyUnavailable
from scanline.secrets import Secrets

log = logging.getLogger(__name__)

RETRY_BASE = 0.5
RETRY_CAP = 10.0


class Outcome(enum.Enum):
    ACK = "ack"
    DEAD_LETTER = "dead-letter"  # to the dead-letter queue at once, with the reason
    RETRY = "retry"  # back off, then nack with requeue (the delivery limit bounds this)


@dataclass(frozen=True)
class Verdict:
    """An outcome with the reason a message is dead-lettered (the function's problem
    detail), which the dead letter keeps in its ``x-scanline-reason`` header."""

    outcome: Outcome
    reason: str = ""


# Headers a dead letter carries besides RabbitMQ's x-death: why it died and where it was
# first published (replay sends it there again).
REASON_HEADER = "x-scanline-reason"
ORIGIN_EXCHANGE_HEADER = "x-scanline-exchange"
ORIGIN_ROUTING_KEY_HEADER = "x-scanline-routing-key"


def backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s ... capped at 10 s."""
    return min(RETRY_CAP, RETRY_BASE * 2 ** max(0, attempt))


def delivery_count(properties: BasicProperties) -> int:
    """How often a quorum queue already delivered this message (absent on the first try)."""
    headers = properties.headers or {}
    try:
        return int(headers.get("x-delivery-count", 0))
    except (TypeError, ValueError):
        return 0


def broker_url() -> str:
    """``RABBITMQ_URL`` as the functions read it (the local broker by default); the password
    is the ``rabbitmq-password`` secret file's, never in the environment."""
    return os.environ.get("RABBITMQ_URL") or (
        f"amqp://{paths.RABBITMQ_USER}@{paths.RABBITMQ_HOST}:{paths.RABBITMQ_PORT}/%2F")


def broker_password() -> str:
    return Secrets(paths.SECRETS_DIR).read("rabbitmq-password")


def publisher(declare: Callable[[BlockingChannel], None] | None = None) -> AmqpPublisher:
    """The functions' own publisher, on the connector's broker."""
    return AmqpPublisher(broker_url(), broker_password, timeout=5, declare=declare)


def connection_parameters(heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(url_with_password(broker_url(), broker_password()))
    params.heartbeat = heartbeat
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    params.client_properties = {"connection_name": "scanline-connector"}
    return params


Handler = Callable[[Basic.Deliver, BasicProperties, bytes], "Outcome | Verdict"]


class Consumer(threading.Thread):
    """Consume ``queue`` forever: declare, subscribe, hand out work, reconnect on loss.

    A message the handler dead-letters is published, confirmed, to ``queue``'s dead-letter
    queue with the reason in its headers, then acknowledged; if that publish fails it is
    rejected instead (the queue's dead-letter exchange takes it, without the reason)."""

    def __init__(self, queue: str, declare: Callable[[BlockingChannel], None], handle: Handler,
                 *, prefetch: int, stop: threading.Event) -> None:
        super().__init__(name=f"consumer-{queue}", daemon=True)
        self.queue = queue
        self.declare = declare
        self.handle = handle
        self.prefetch = prefetch
        self.stop = stop
        self.pool = ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix=queue)
        self.dead_letters = publisher()

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self._consume()
                failures = 0
            except (pika.exceptions.AMQPError, OSError) as exc:
                delay = backoff(failures)
                failures += 1
                log.warning("broker unavailable, reconnecting",
                            extra={"queue": self.queue, "error": repr(exc), "retry_in": delay})
                self.stop.wait(delay)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.dead_letters.close()

    def _consume(self) -> None:
        connection = pika.BlockingConnection(connection_parameters())
        try:
            channel = connection.channel()
            self.declare(channel)
            channel.basic_qos(prefetch_count=self.prefetch)
            channel.basic_consume(self.queue, functools.partial(self._dispatch, connection))
            log.info("consuming", extra={"queue": self.queue, "prefetch": self.prefetch})
            while not self.stop.is_set():
                connection.process_data_events(time_limit=1)
        finally:
            if connection.is_open:
                connection.close()

    def _dispatch(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                  method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        self.pool.submit(self._work, connection, channel, method, properties, body)

    def _work(self, connection: pika.BlockingConnection, channel: BlockingChannel,
              method: Basic.Deliver, properties: BasicProperties, body: bytes) -> None:
        try:
            verdict = self.handle(method, properties, body)
        except Exception:
            log.exception("handler failed", extra={"queue": self.queue})
            verdict = Outcome.RETRY
        if isinstance(verdict, Outcome):
            verdict = Verdict(verdict)
        outcome = verdict.outcome
        if outcome is Outcome.DEAD_LETTER and self._dead_letter(method, properties, body,
                                                                 verdict.reason):
            outcome = Outcome.ACK
        if outcome is Outcome.RETRY:
            # Waiting here (not in the broker) keeps the message invisible to other
            # consumers meanwhile; the prefetch window bounds how many wait at once.
            time.sleep(backoff(delivery_count(properties)))
        try:
            connection.add_callback_threadsafe(
                functools.partial(self._settle, channel, method.delivery_tag, outcome))
        except pika.exceptions.AMQPError:
            log.info("connection gone before settling; the broker will redeliver",
                     extra={"queue": self.queue})

    def _dead_letter(self, method: Basic.Deliver, properties: BasicProperties, body: bytes,
                     reason: str) -> bool:
        """Put the message in the dead-letter queue with its reason; False if that failed."""
        headers = {**(properties.headers or {}), REASON_HEADER: reason[:1000],
                   ORIGIN_EXCHANGE_HEADER: method.exchange,
                   ORIGIN_ROUTING_KEY_HEADER: method.routing_key}
        copy = BasicProperties(content_type=properties.content_type, delivery_mode=2,
                               message_id=properties.message_id, type=properties.type,
                               headers=headers)
        try:
            self.dead_letters.send(DEAD_LETTER_EXCHANGE, dead_letter_queue_of(self.queue),
                                   body, copy)
            return True
        except DependencyUnavailable as exc:
            log.warning("dead letter not published with its reason; rejecting instead",
                        extra={"queue": self.queue, "error": repr(exc)})
            return False

    @staticmethod
    def _settle(channel: BlockingChannel, tag: int, outcome: Outcome) -> None:
        if not channel.is_open:
            return
        if outcome is Outcome.ACK:
            channel.basic_ack(tag)
        elif outcome is Outcome.DEAD_LETTER:
            channel.basic_reject(tag, requeue=False)
        else:
            channel.basic_nack(tag, requeue=True)
