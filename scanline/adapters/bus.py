"""Publishing events: to RabbitMQ (AMQP) or, on Knative, to the broker's HTTP sink.

Both publishers take the structured CloudEvent body stored in the outbox. Every publish
is confirmed (AMQP publisher confirms, or a 2xx from the sink) before the outbox row is
deleted, so an event is lost neither by the broker nor by this process.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import requests
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError

from scanline.adapters.topology import EXCHANGE
from scanline.errors import DependencyUnavailable
from scanline.events import STRUCTURED_CONTENT_TYPE, parse_structured

log = logging.getLogger(__name__)


class Message(Protocol):
    id: str
    type: str
    body: bytes


class Publisher(Protocol):
    def publish(self, messages: Sequence[Message]) -> None: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def url_with_password(url: str, password: str | None) -> str:
    """Put the secret's password into the URL (pika needs one whenever a user is named)."""
    parts = urlsplit(url)
    if parts.password is not None or not parts.username:
        return url
    netloc = f"{parts.username}:{quote(password or '', safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class AmqpPublisher:
    """One confirmed publishing connection per process, guarded by a lock (pika is not
    thread-safe): the functions' outbox publishes through it, and so do the connector
    (dead letters with their reason), the Knative dead-letter sink, and the local gateway
    (async calls).

    A broken connection is dropped and reopened once per publish; if that fails too the
    caller gets ``DependencyUnavailable`` (an outbox keeps its events for later).
    ``declare`` runs on every new channel (the objects the caller publishes to).
    """

    def __init__(self, url: str, password: Callable[[], str | None], timeout: float = 2.0, *,
                 declare: Callable[[BlockingChannel], None] | None = None) -> None:
        self._url, self._password, self._timeout = url, password, timeout
        self._declare = declare
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _open(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._drop()
        params = pika.URLParameters(url_with_password(self._url, self._password()))
        params.socket_timeout = self._timeout
        params.blocked_connection_timeout = 10
        params.connection_attempts = 1
        # No heartbeats: nothing services the connection between publishes, so the broker
        # would close it as dead every minute; a broken one is reopened at the next use.
        params.heartbeat = 0
        self._connection = pika.BlockingConnection(params)
        channel = self._connection.channel()
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        if self._declare is not None:
            self._declare(channel)
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(AMQPError, OSError):
                connection.close()

    def _confirmed(self, publish: Callable[[BlockingChannel], None]) -> None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    publish(self._open())
                    return
                except (AMQPError, OSError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise DependencyUnavailable("rabbitmq", f"publish failed: {exc!r}") from exc

    def publish(self, messages: Sequence[Message]) -> None:
        """Events to the topic exchange, routed by type (an event no queue wants is fine:
        notifications are for whoever subscribes)."""
        def publish_all(channel: BlockingChannel) -> None:
            for message in messages:
                channel.basic_publish(
                    EXCHANGE, message.type, message.body,
                    pika.BasicProperties(content_type=STRUCTURED_CONTENT_TYPE, delivery_mode=2,
                                         message_id=message.id, type=message.type))
        self._confirmed(publish_all)

    def send(self, exchange: str, routing_key: str, body: bytes,
             properties: pika.BasicProperties) -> None:
        """One message to one queue, confirmed, and refused if nothing would keep it
        (``mandatory``): a dead letter or an async call must land in its queue."""
        self._confirmed(lambda channel: channel.basic_publish(
            exchange, routing_key, body, properties, mandatory=True))

    def ping(self) -> None:
        """A connection the broker dropped since the last use (a restart, an idle
        timeout) is reopened once before the answer is "down"."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._open()
                    assert self._connection is not None
                    self._connection.process_data_events(0)
                    return
                except (AMQPError, OSError) as exc:
                    self._drop()
                    if attempt == 2:
                        raise DependencyUnavailable("rabbitmq") from exc

    def close(self) -> None:
        with self._lock:
            self._drop()


class HttpSinkPublisher:
    """Knative: POST each event in binary mode to ``K_SINK`` (injected by a SinkBinding)."""

    def __init__(self, sink: str, timeout: float = 5.0) -> None:
        self._sink, self._timeout = sink, timeout
        self._session = requests.Session()

    def publish(self, messages: Sequence[Message]) -> None:
        for message in messages:
            headers, body = parse_structured(message.body).to_binary()
            try:
                response = self._session.post(self._sink, data=body, headers=headers,
                                              timeout=self._timeout)
            except requests.RequestException as exc:
                raise DependencyUnavailable("event-sink", f"publish failed: {exc!r}") from exc
            if response.status_code >= 300:
                raise DependencyUnavailable(
                    "event-sink", f"sink answered {response.status_code}")

    def ping(self) -> None:
        """A sink has no health endpoint of its own; reachability is checked on publish."""

    def close(self) -> None:
        self._session.close()


class ReplyPublisher:
    """Knative with ``Prefer: reply``: the first event an invocation emits rides back in the
    HTTP response (the broker routes it as a new event); any others, and everything the
    outbox relay sends outside an invocation, go to the sink.

    The invocation opens a ``Reply`` slot with ``collect()``; the runtime renders whatever it
    holds as a binary-mode CloudEvent in the 200 answer.
    """

    def __init__(self, fallback: Publisher) -> None:
        self._fallback = fallback
        self._slot: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar(
            "reply_slot", default=None)

    @contextlib.contextmanager
    def collect(self) -> Iterator[list[bytes]]:
        slot: list[bytes] = []
        token = self._slot.set(slot)
        try:
            yield slot
        finally:
            self._slot.reset(token)

    def publish(self, messages: Sequence[Message]) -> None:
        slot = self._slot.get()
        rest = list(messages)
        if slot is not None and not slot and rest:
            slot.append(rest.pop(0).body)
        if rest:
            self._fallback.publish(rest)

    def ping(self) -> None:
        self._fallback.ping()

    def close(self) -> None:
        self._fallback.close()
