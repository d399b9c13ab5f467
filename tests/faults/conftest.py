"""Fault suite: drive the running local stack through crashes and outages and count.

Every case records a ``Tally`` (sent / delivered / lost / duplicated) through the ``figures``
fixture; at the end of the session the table is printed and written to
``.local/faults.json`` (the figures docs/reliability.md quotes). Each case starts only once
``/healthz`` is all green, so one case's outage never leaks into the next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest
import requests

from infra.local.stackfile import load
from scanline.adapters.topology import queue_name
from tests.faults.slow_function.handler import FAULT_EVENT, FAULT_PRODUCER
from tests.support.mailindex import MailIndex
from tests.support.producer import Producer
from tests.support.stack import LOCAL, Stack
from tests.support.tally import Tally
from tests.support.testfunction import TestFunction

RESULTS = LOCAL / "faults.json"
SLOW_FUNCTION = Path(__file__).parent / "slow_function"
_tallies: list[Tally] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def _unconsumed_queues(stack: Stack) -> list[str]:
    """Queues of topic functions that no trigger consumes (``/healthz`` does not tell)."""
    connection = pika.BlockingConnection(pika.URLParameters(stack.amqp_url))
    try:
        channel = connection.channel()
        return [queue_name(f.name) for f in load().functions.values() if f.topics
                and channel.queue_declare(queue_name(f.name), passive=True)
                .method.consumer_count == 0]
    finally:
        connection.close()


@pytest.fixture(autouse=True)
def healthy_stack(stack: Stack) -> None:
    """Wait (up to 90 s) until every function and dependency reports up and the trigger
    consumes every queue."""
    deadline = time.monotonic() + 90
    state: object = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{stack.gateway}/healthz", timeout=10)
            state = response.json()
            if response.status_code == 200 and state.get("status") == "ok":
                state = {"not consumed": _unconsumed_queues(stack)}
                if not state["not consumed"]:
                    return
        except (requests.RequestException, ValueError, pika.exceptions.AMQPError) as exc:
            state = repr(exc)
        time.sleep(1)
    pytest.fail(f"the stack is not healthy before the case: {state}")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Callable[[Tally], Tally]]:
    """Record a case's tally: printed at once, and summarised at the end of the session."""
    started = time.monotonic()

    def record(tally: Tally) -> Tally:
        tally.seconds = round(time.monotonic() - started, 1)
        _tallies.append(tally)
        print(f"\n{tally.line()}  ({tally.seconds} s)")
        return tally

    yield record


@pytest.fixture(scope="session")
def mails(stack: Stack) -> MailIndex:
    index = MailIndex(stack.mail_dir)
    index.refresh()  # the mails of earlier runs, read once, outside any case's timing
    return index


@pytest.fixture
def producer(stack: Stack) -> Iterator[Producer]:
    with Producer(stack.amqp_url) as opened:
        yield opened


@pytest.fixture
def fault_function(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., TestFunction]]:
    """Start the suite's own slow/failing function (tests/faults/slow_function) with its own
    queue and trigger: ``fault_function(name, prefetch=.., delivery_limit=..)``."""
    started: list[TestFunction] = []

    def start(name: str, **options: Any) -> TestFunction:
        function = TestFunction(name, SLOW_FUNCTION, FAULT_EVENT, tmp_path, stack.amqp_url,
                                producer=FAULT_PRODUCER, **options)
        started.append(function)
        function.start()
        return function

    yield start
    for function in started:
        function.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _tallies:
        return
    terminalreporter.section("fault suite: sent / delivered / lost / duplicated")
    width = max(len(t.case) for t in _tallies)
    terminalreporter.write_line(f"{'case':<{width}}  {'sent':>6} {'deliv.':>6} {'lost':>5} "
                                f"{'dup.':>5} {'secs':>6}")
    for t in sorted(_tallies, key=lambda t: t.case):
        terminalreporter.write_line(f"{t.case:<{width}}  {t.sent:>6} {t.delivered:>6} "
                                    f"{t.lost:>5} {t.duplicated:>5} {t.seconds:>6}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _tallies:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "exit_status": int(session.exitstatus),
        "cases": [t.to_json() for t in _tallies]}, indent=2) + "\n")
