"""RabbitMQ trigger: deliver events to the functions whose ``topic`` annotation names them.

It plays the OpenFaaS RabbitMQ connector: one queue per subscribing function, the message
body (a structured CloudEvent) POSTed to the function with ``X-Topic``,
``X-Rabbitmq-Msg-Id`` and ``X-Rabbitmq-Routing-Key``. Unlike the connector it maps the answer
onto the broker: 2xx acks, a permanent 4xx dead-letters at once, anything transient
(5xx, 408, 429, timeout, refused) is retried with back-off until the quorum queue's
delivery limit dead-letters it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

import requests
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from infra.local import paths
from infra.local.amqp import Consumer, Outcome, Verdict, delivery_count
from infra.local.stackfile import Function, load
from scanline.adapters.topology import (
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    EXCHANGE,
    dead_letter_queue,
    queue_arguments,
    queue_name,
)
from scanline.logs import configure as configure_logging

log = logging.getLogger("trigger")

CONTENT_TYPE = "application/cloudevents+json"
TRANSIENT_4XX = {408, 429}


def declare_topology(channel: BlockingChannel, function: str, topics: tuple[str, ...],
                     delivery_limit: int = DELIVERY_LIMIT) -> None:
    """Exchanges, the function's quorum queue with its dead-letter queue, and its bindings."""
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True)
    dlq = dead_letter_queue(function)
    channel.queue_declare(dlq, durable=True)
    channel.queue_bind(dlq, DEAD_LETTER_EXCHANGE, routing_key=dlq)
    queue = queue_name(function)
    channel.queue_declare(queue, durable=True,
                          arguments=queue_arguments(function, delivery_limit))
    for topic in topics:
        channel.queue_bind(queue, EXCHANGE, routing_key=topic)


def outcome_for(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.ACK
    if 400 <= status < 500 and status not in TRANSIENT_4XX:
        return Outcome.DEAD_LETTER
    return Outcome.RETRY


def _reason(response: requests.Response) -> str:
    """The function's own account of a failure: its problem document's detail."""
    if response.status_code < 300:
        return ""
    try:
        detail = response.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = ""
    return f"{response.status_code} {detail or response.reason}".strip()


class Deliverer:
    """POST one message to one function and decide what the broker should do with it."""

    def __init__(self, function: Function, timeout: float) -> None:
        """``timeout`` is the least the trigger waits; never less than the function's own
        ``exec_timeout`` (plus a margin), or a long job would be redelivered mid-run."""
        self.function = function
        # Locally each function listens on its own port; in compose it is the service of
        # that name on the watchdog's port (FUNCTION_URL_TEMPLATE=http://{name}:8080/).
        template = os.environ.get("FUNCTION_URL_TEMPLATE", f"http://{paths.HOST}:{{port}}/")
        self.url = template.format(name=function.name, port=function.port)
        self.timeout = max(timeout, function.timeout("exec_timeout") + 5)
        self.session = requests.Session()

    def __call__(self, method: Basic.Deliver, properties: BasicProperties,
                 body: bytes) -> Outcome | Verdict:
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-Topic": method.routing_key,
            "X-Rabbitmq-Msg-Id": properties.message_id or "",
            "X-Rabbitmq-Routing-Key": method.routing_key,
        }
        context = {"function": self.function.name, "routing_key": method.routing_key,
                   "msg_id": properties.message_id, "attempt": delivery_count(properties) + 1}
        try:
            response = self.session.post(self.url, data=body, headers=headers,
                                         timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("function unreachable", extra={**context, "error": type(exc).__name__})
            return Outcome.RETRY
        outcome = outcome_for(response.status_code)
        level = logging.INFO if outcome is Outcome.ACK else logging.WARNING
        log.log(level, "delivered", extra={**context, "status": response.status_code,
                                            "outcome": outcome.value})
        return Verdict(outcome, _reason(response))


def subscribe(function: Function, *, prefetch: int, delivery_limit: int, timeout: float,
              stop: threading.Event) -> Consumer:
    """Start delivering ``function``'s queue to it (also used by tests for their own
    functions, which are not in stack.yml)."""

    def declare(channel: BlockingChannel) -> None:
        declare_topology(channel, function.name, function.topics, delivery_limit)

    consumer = Consumer(queue_name(function.name), declare, Deliverer(function, timeout),
                        prefetch=prefetch, stop=stop)
    consumer.start()
    log.info("subscribed", extra={"function": function.name, "topics": function.topics})
    return consumer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local.trigger")
    parser.add_argument("--prefetch", type=int,
                        default=int(os.environ.get("TRIGGER_PREFETCH", "4")))
    parser.add_argument("--delivery-limit", type=int,
                        default=int(os.environ.get("TRIGGER_DELIVERY_LIMIT", DELIVERY_LIMIT)))
    parser.add_argument("--timeout", type=float,
                        default=float(os.environ.get("TRIGGER_TIMEOUT", "30")))
    args = parser.parse_args(argv)
    configure_logging("trigger")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    consumers = [subscribe(function, prefetch=args.prefetch,
                           delivery_limit=args.delivery_limit, timeout=args.timeout, stop=stop)
                 for function in load().functions.values() if function.topics]
    if not consumers:
        log.warning("no function has a topic annotation; nothing to deliver")
    stop.wait()
    for consumer in consumers:
        consumer.join(timeout=35)


if __name__ == "__main__":
    main()
