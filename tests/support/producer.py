"""Publish many events the way a producer must: persistent, confirmed, retried until confirmed.

``tests.support.broker.publish`` opens a connection per event, which is fine for one event and
too slow for a thousand. ``Producer`` keeps one confirmed channel and, when the broker is gone
(a restart, a closed connection), reconnects and publishes the same body again until the
broker confirms it. A retried publish may therefore reach the queue twice: consumers
de-duplicate on the CloudEvent id, and that is exactly what the fault suite checks.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pika
import pika.exceptions

from scanline import events
from scanline.adapters.topology import EXCHANGE
from scanline.events import Event
from scanline.payloads import EmailRequested
from tests.support.signing import signed

RETRY_EXCEPTIONS = (pika.exceptions.AMQPError, OSError)


def event_body(event: Event) -> tuple[str, bytes]:
    """A structured CloudEvent and its id."""
    return event.id, event.to_structured()


def email_event(to: str, subject: str, text: str = "fault suite") -> tuple[str, bytes]:
    """A mail request signed as issue-otp would sign it."""
    return event_body(signed(EmailRequested(to=to, subject=subject, text=text), "issue-otp"))


class Producer:
    def __init__(self, url: str, *, give_up_after: float = 60.0) -> None:
        self.url = url
        self.give_up_after = give_up_after
        self.retries = 0  # publishes that had to be sent again after a broker failure
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self.close()
            params = pika.URLParameters(self.url)
            params.connection_attempts = 1
            params.socket_timeout = 2
            self._connection = pika.BlockingConnection(params)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def publish(self, routing_key: str, body: bytes, *, message_id: str | None = None) -> None:
        """Return once the broker confirmed ``body``; retry through outages up to the limit."""
        if message_id is None:
            with contextlib.suppress(ValueError, TypeError):
                message_id = json.loads(body).get("id")
        properties = pika.BasicProperties(content_type=events.STRUCTURED_CONTENT_TYPE,
                                          delivery_mode=2, message_id=message_id,
                                          type=routing_key)
        deadline = time.monotonic() + self.give_up_after
        while True:
            try:
                self._open().basic_publish(EXCHANGE, routing_key, body, properties,
                                           mandatory=True)
                return
            except pika.exceptions.UnroutableError:
                raise  # no queue is bound: a mistake in the test, not an outage
            except RETRY_EXCEPTIONS:
                self.close()
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                time.sleep(0.5)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*RETRY_EXCEPTIONS):
                connection.close()
