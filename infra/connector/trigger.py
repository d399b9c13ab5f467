"""The RabbitMQ connector: deliver events to the functions whose ``topic`` annotation names them.

One program for every target that has no broker integration of its own: the local stack,
docker-compose, and OpenFaaS (CE, which ships no RabbitMQ connector, and Pro in place of
its connector; docs/deploy.md says why). It consumes one quorum queue per subscribing
function, ``scanline.<fn>`` (dead letters in ``scanline.<fn>.dlq``), which it declares
itself at start (nothing else declares them, so no two declarations can disagree), and
POSTs each message body (a structured CloudEvent) to the function with ``X-Topic``,
``X-Rabbitmq-Msg-Id`` and ``X-Rabbitmq-Routing-Key``, as the OpenFaaS connectors do.
Unlike them it maps the answer onto the broker:

- 2xx acks;
- a permanent 4xx dead-letters at once, with the function's problem detail in the dead
  letter's ``x-scanline-reason`` header;
- 429 (the watchdog's ``max_inflight`` is reached) keeps the message and asks again with
  back-off: the function is busy, not failing, so it spends none of the delivery limit;
- anything else transient (5xx, 408, a timeout, a refused connection) is redelivered with
  back-off until the quorum queue's delivery limit dead-letters it.

Where functions are reached: ``FUNCTION_URL_TEMPLATE`` (``{name}``, ``{port}``); locally
each function's own port, in compose its service, on OpenFaaS the gateway's
``/function/<name>``. Concurrency per function: its ``max_inflight`` (or
``TRIGGER_PREFETCH``) times the replicas it may have (``TRIGGER_REPLICAS``: ``1``, or
``max`` for ``com.openfaas.scale.max`` on a cluster), so the messages beyond what the
functions can take stay ready in the queue, where KEDA sees them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time

import requests
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from infra.connector import metrics
from infra.connector.amqp import Consumer, Outcome, Verdict, backoff, delivery_count
from infra.local import paths
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
BUSY = 429
# How long a message may wait for a busy function before it is redelivered instead.
BUSY_PATIENCE = 120.0
LOCAL_URL_TEMPLATE = f"http://{paths.HOST}:{{port}}/"


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


def prefetch_for(function: Function, default: int, replicas: str) -> int:
    """How many of ``function``'s messages may be in flight at once (see the module doc)."""
    per_replica = function.max_inflight or default
    count = function.scale("max", 1) if replicas == "max" else int(replicas)
    return per_replica * max(1, count)


class Deliverer:
    """POST one message to one function and decide what the broker should do with it."""

    def __init__(self, function: Function, timeout: float, *,
                 busy_patience: float = BUSY_PATIENCE) -> None:
        """``timeout`` is the least the connector waits; never less than the function's own
        ``exec_timeout`` (plus a margin), or a long job would be redelivered mid-run."""
        self.function = function
        template = os.environ.get("FUNCTION_URL_TEMPLATE", LOCAL_URL_TEMPLATE)
        self.url = template.format(name=function.name, port=function.port)
        self.timeout = max(timeout, function.timeout("exec_timeout") + 5)
        self.busy_patience = busy_patience
        self.session = requests.Session()

    def _post(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        """POST, waiting with back-off while the function answers 429 (it is at capacity)."""
        deadline = time.monotonic() + self.busy_patience
        attempt = 0
        while True:
            response = self.session.post(self.url, data=body, headers=headers,
                                         timeout=self.timeout)
            if response.status_code != BUSY or time.monotonic() >= deadline:
                return response
            metrics.BUSY.labels(self.function.name).inc()
            time.sleep(backoff(attempt))
            attempt += 1

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
        started = time.monotonic()
        try:
            response = self._post(body, headers)
        except requests.RequestException as exc:
            log.warning("function unreachable", extra={**context, "error": type(exc).__name__})
            metrics.observe(self.function.name, "unreachable", Outcome.RETRY.value, started)
            return Outcome.RETRY
        outcome = outcome_for(response.status_code)
        level = logging.INFO if outcome is Outcome.ACK else logging.WARNING
        log.log(level, "delivered", extra={**context, "status": response.status_code,
                                            "outcome": outcome.value})
        metrics.observe(self.function.name, str(response.status_code), outcome.value, started)
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
    log.info("subscribed", extra={"function": function.name, "topics": function.topics,
                                  "prefetch": prefetch})
    return consumer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.connector.trigger")
    parser.add_argument("--prefetch", type=int,
                        default=int(os.environ.get("TRIGGER_PREFETCH", "4")),
                        help="in flight per replica of a function without max_inflight")
    parser.add_argument("--replicas", default=os.environ.get("TRIGGER_REPLICAS", "1"),
                        help="replicas per function to feed: a number, or max")
    parser.add_argument("--delivery-limit", type=int,
                        default=int(os.environ.get("TRIGGER_DELIVERY_LIMIT", DELIVERY_LIMIT)))
    parser.add_argument("--timeout", type=float,
                        default=float(os.environ.get("TRIGGER_TIMEOUT", "30")))
    parser.add_argument("--metrics-port", type=int,
                        default=int(os.environ.get("METRICS_PORT", "0")),
                        help="serve Prometheus metrics on this port (0: not at all)")
    args = parser.parse_args(argv)
    configure_logging("trigger")
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    consumers = [subscribe(function,
                           prefetch=prefetch_for(function, args.prefetch, args.replicas),
                           delivery_limit=args.delivery_limit, timeout=args.timeout, stop=stop)
                 for function in load().functions.values() if function.topics]
    if not consumers:
        log.warning("no function has a topic annotation; nothing to deliver")
    stop.wait()
    for consumer in consumers:
        consumer.join(timeout=35)


if __name__ == "__main__":
    main()
