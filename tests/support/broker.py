"""Watch events on the real exchange from a test: a private queue bound to some types."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pika

from scanline.adapters.topology import EXCHANGE
from scanline.events import Event, parse_structured
from tests.support.signing import opened


class Received:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.raw: list[bytes] = []
        self._cond = threading.Condition()

    def add(self, body: bytes) -> None:
        with self._cond:
            self.raw.append(body)
            # Sealed data opened with the stack's key, as send-email would: a test reads
            # the mail a producer asked for (``raw`` keeps what the broker carried).
            self.events.append(opened(parse_structured(body)))
            self._cond.notify_all()

    def wait_for(self, event_id: str, timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.id == event_id:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"event {event_id} not seen within {timeout} s")
                self._cond.wait(left)

    def wait_until(self, predicate, timeout: float = 10.0) -> Event:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event within {timeout} s")
                self._cond.wait(left)

    def absent(self, event_id: str, seconds: float) -> bool:
        time.sleep(seconds)
        with self._cond:
            return all(e.id != event_id for e in self.events)


class EventTap:
    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def listen(self, *types: str) -> Iterator[Received]:
        received = Received()
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for type_ in types:
            channel.queue_bind(queue, EXCHANGE, routing_key=type_)
        stop = threading.Event()

        def consume() -> None:
            while not stop.is_set():
                method, _, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    connection.sleep(0.05)
                else:
                    received.add(body)

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        try:
            yield received
        finally:
            stop.set()
            thread.join(5)
            connection.close()


def publish(url: str, routing_key: str, body: bytes) -> None:
    """Publish like a producer would: persistent, confirmed, structured content type."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(EXCHANGE, routing_key, body, pika.BasicProperties(
            content_type="application/cloudevents+json", delivery_mode=2))
    finally:
        connection.close()


def take_messages(url: str, queue: str,
                  wanted: Callable[[bytes], bool]) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take the messages of ``queue`` that ``wanted`` picks, with their properties, and
    leave every other one where it was (unacknowledged gets go back when the channel
    closes)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    taken = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return taken
            if wanted(body):
                channel.basic_ack(method.delivery_tag)
                taken.append((properties, body))
    finally:
        connection.close()


def take(url: str, queue: str, wanted: Callable[[bytes], bool]) -> list[bytes]:
    """The bodies ``take_messages`` takes."""
    return [body for _, body in take_messages(url, queue, wanted)]


def drain(url: str, queue: str) -> list[bytes]:
    """Take every message currently in ``queue`` (used to read dead letters)."""
    return take(url, queue, lambda _: True)
