"""Case 6: a slow consumer. The prefetch window bounds how many messages the trigger holds
(the rest wait in the broker, not in memory), and neither the trigger nor the function grows
over 1,000 events.

The slow function is the suite's own (tests/faults/slow_function), built and run like the
real ones and fed by its own trigger process running the stack trigger's code, so the test
controls the delay and reads both processes' memory without disturbing the stack.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.faults.slow_function.handler import FAULT_EVENT, FaultEvent
from tests.support.outages import queue_counts, rss_kib
from tests.support.producer import Producer
from tests.support.tally import Tally
from tests.support.testfunction import TestFunction

PREFETCH = 4
HELD_EVENTS, HELD_SLEEP_MS = 200, 200
WARM_UP, EVENTS, SLEEP_MS = 200, 1000, 5
FLAT_KIB = 10 * 1024  # "flat": under 10 MiB growth over 1,000 events (10 KiB an event)


@pytest.fixture
def slow(fault_function: Callable[..., TestFunction]) -> TestFunction:
    return fault_function("fault-slow", prefetch=PREFETCH)


def publish(producer: Producer, function: TestFunction, count: int, sleep_ms: int) -> list[str]:
    ids = []
    for _ in range(count):
        event_id, body = function.event(FaultEvent(sleep_ms=sleep_ms))
        producer.publish(FAULT_EVENT, body)
        ids.append(event_id)
    return ids


def wait_delivered(function: TestFunction, ids: list[str], timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        deliveries = Counter(function.stats()["deliveries"])
        if all(deliveries[i] for i in ids) or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.2)


def test_prefetch_bounds_what_a_slow_function_holds_and_memory_stays_flat(
        slow: TestFunction, producer: Producer, figures: Callable[[Tally], Tally]) -> None:
    # 1. Slow deliveries: the broker keeps the backlog, the trigger holds PREFETCH at most.
    held_ids = publish(producer, slow, HELD_EVENTS, HELD_SLEEP_MS)
    samples = []
    while slow.ready_count() > 0:
        ready, unacked = queue_counts(slow.queue)
        if ready or unacked:  # the broker refreshes queue statistics every 5 s
            samples.append((ready, unacked))
        time.sleep(0.5)
    held = wait_delivered(slow, held_ids, timeout=60)
    max_inflight = slow.stats()["max_inflight"]

    # 2. Memory over 1,000 events, measured after a warm-up (imports, pools, caches).
    slow.reset()
    warm = publish(producer, slow, WARM_UP, SLEEP_MS)
    wait_delivered(slow, warm, timeout=60)
    assert slow.trigger is not None and slow.function is not None
    before = {"trigger": rss_kib(slow.trigger.pid), "function": rss_kib(slow.function.pid)}
    started = time.monotonic()
    ids = publish(producer, slow, EVENTS, SLEEP_MS)
    deliveries = wait_delivered(slow, ids, timeout=120)
    took = time.monotonic() - started
    after = {"trigger": rss_kib(slow.trigger.pid), "function": rss_kib(slow.function.pid)}
    growth = {name: after[name] - before[name] for name in before}

    tally = figures(Tally.of(
        "6 slow function, 1,000 events", [*held_ids, *ids], held + deliveries,
        prefetch=PREFETCH, broker_samples_ready_unacked=samples,
        function_max_inflight=max_inflight, rss_before_kib=before, rss_after_kib=after,
        rss_growth_kib=growth, events_per_s=round(EVENTS / took, 1)))
    assert samples, "the backlog drained before the broker could be asked"
    assert all(unacked <= PREFETCH for _, unacked in samples), samples
    assert max(unacked for _, unacked in samples) == PREFETCH, samples
    assert max_inflight == PREFETCH
    assert tally.ok, tally.line()
    assert all(kib < FLAT_KIB for kib in growth.values()), growth
