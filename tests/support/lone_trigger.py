"""The local trigger for one function that is not in stack.yml: a fault test's own function.

``python -m tests.support.lone_trigger --function NAME --port PORT --topic TYPE`` runs the
same consumer, delivery and topology code as ``infra.connector.trigger`` (queue
``scanline.<NAME>``, dead-letter queue ``scanline.<NAME>.dlq``) as its own process, so a test
can read its memory and stop it without touching the stack's trigger.
"""

from __future__ import annotations

import argparse
import signal
import threading

from infra.connector.trigger import subscribe
from infra.local.stackfile import Function
from scanline.logs import configure as configure_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.lone_trigger")
    parser.add_argument("--function", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--delivery-limit", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args(argv)
    configure_logging(f"trigger-{args.function}")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    function = Function(name=args.function, lang="", handler="", port=args.port,
                        annotations={"topic": ",".join(args.topic)})
    consumer = subscribe(function, prefetch=args.prefetch, delivery_limit=args.delivery_limit,
                         timeout=args.timeout, stop=stop)
    stop.wait()
    consumer.join(timeout=35)


if __name__ == "__main__":
    main()
