"""Inspect and replay dead letters: ``python -m infra.local.deadletters list|replay``.

``list [fn]`` shows each message in ``scanline.<fn>.dlq`` (every subscribing function when
``fn`` is omitted) by CloudEvent id, type and the reason it died, never its data (an
``email.requested`` event carries an OTP). ``replay <fn> --all`` or ``--id ID`` publishes
the message again to the exchange and routing key it was first published with (taken from
its ``x-death`` header) and removes it from the dead-letter queue once the broker confirms.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from infra.connector.amqp import (
    ORIGIN_EXCHANGE_HEADER,
    ORIGIN_ROUTING_KEY_HEADER,
    REASON_HEADER,
    connection_parameters,
    publisher,
)
from infra.local.stackfile import load
from scanline.adapters.topology import EXCHANGE, dead_letter_queue
from scanline.errors import DependencyUnavailable


@dataclass
class DeadLetter:
    method: Basic.GetOk
    properties: BasicProperties
    body: bytes

    def _death(self) -> dict[str, object]:
        deaths = (self.properties.headers or {}).get("x-death") or [{}]
        return deaths[0]

    @property
    def event(self) -> dict[str, object]:
        try:
            document = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return {}
        return document if isinstance(document, dict) else {}

    @property
    def id(self) -> str:
        return str(self.event.get("id") or self.properties.message_id or "")

    @property
    def origin(self) -> tuple[str, str]:
        """(exchange, routing key) of the original publish."""
        headers = self.properties.headers or {}
        if ORIGIN_ROUTING_KEY_HEADER in headers:  # dead-lettered by the trigger itself
            return (str(headers.get(ORIGIN_EXCHANGE_HEADER, EXCHANGE)),
                    str(headers[ORIGIN_ROUTING_KEY_HEADER]))
        death = self._death()
        keys = death.get("routing-keys") or [self.method.routing_key]
        return str(death.get("exchange", EXCHANGE)), str(keys[0])  # type: ignore[index]

    @property
    def reason(self) -> str:
        headers = self.properties.headers or {}
        if REASON_HEADER in headers:
            return str(headers[REASON_HEADER])
        death = self._death()
        return f"{death.get('reason', '?')} x{death.get('count', 1)}"


def fetch_all(channel: BlockingChannel, queue: str) -> list[DeadLetter]:
    """Every message in ``queue``, left unacknowledged (so closing the channel returns them)."""
    letters = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            return letters
        letters.append(DeadLetter(method, properties, body))


def _functions(name: str | None) -> list[str]:
    stack = load()
    if name:
        if name not in stack.functions and name != "async":
            raise SystemExit(f"unknown function {name!r}")
        return [name]
    return [f.name for f in stack.functions.values() if f.topics]


def cmd_list(name: str | None) -> int:
    connection = pika.BlockingConnection(connection_parameters())
    try:
        for function in _functions(name):
            channel = connection.channel()
            letters = fetch_all(channel, dead_letter_queue(function))
            print(f"{dead_letter_queue(function)}: {len(letters)} message(s)")
            for letter in letters:
                exchange, key = letter.origin
                print(f"  {letter.id or '(no id)'}  {letter.event.get('type', '?')}  "
                      f"{letter.event.get('time', '')}  {letter.reason}  -> {exchange}/{key}")
            channel.close()  # returns the unacknowledged messages to the queue
    finally:
        connection.close()
    return 0


def cmd_replay(function: str, event_id: str | None) -> int:
    """Each letter is acknowledged (taken off the dead-letter queue) only after the
    broker confirmed its republication; a failure leaves it, and the rest, in place."""
    connection = pika.BlockingConnection(connection_parameters())
    sender = publisher()
    replayed = 0
    try:
        channel = connection.channel()
        for letter in fetch_all(channel, dead_letter_queue(function)):
            if event_id is not None and letter.id != event_id:
                channel.basic_nack(letter.method.delivery_tag, requeue=True)
                continue
            exchange, key = letter.origin
            headers = {k: v for k, v in (letter.properties.headers or {}).items()
                       if not k.startswith("x-")}
            letter.properties.headers = headers
            try:
                sender.send(exchange, key, letter.body, letter.properties)
            except DependencyUnavailable as exc:
                print(f"not replayed {letter.id}: {exc.detail}", file=sys.stderr)
                return 1
            channel.basic_ack(letter.method.delivery_tag)
            replayed += 1
            print(f"replayed {letter.id} to {exchange or '(default)'}/{key}")
    finally:
        sender.close()
        connection.close()
    if event_id is not None and replayed == 0:
        print(f"no dead letter with id {event_id}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.deadletters")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show dead letters")
    listing.add_argument("function", nargs="?")
    replay = commands.add_parser("replay", help="publish dead letters again")
    replay.add_argument("function")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true")
    which.add_argument("--id", dest="event_id")
    args = parser.parse_args(argv)
    if args.command == "list":
        return cmd_list(args.function)
    _functions(args.function)
    return cmd_replay(args.function, args.event_id)


if __name__ == "__main__":
    sys.exit(main())
