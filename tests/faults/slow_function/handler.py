"""A function for fault tests only: slow on demand, failing on demand, and counting.

Each ``io.scanline.test.fault.v1`` event sleeps ``sleep_ms`` and answers 200, or 503 when
``fail`` is true (a message that can never succeed: the trigger retries it until the
queue's delivery limit dead-letters it). ``GET /stats`` tells the test how often each
event id arrived and how many deliveries it held at once; ``POST /reset`` forgets both.
Its events are signed by the suite's own producer, ``fault-tests``, whose key only this
function trusts (``tests.support.signing.producer_keys``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from scanline.errors import DependencyUnavailable
from scanline.events import Event
from scanline.payloads import Payload, event_type, prop
from scanline.runtime import Response, Routes

FAULT_PRODUCER = "fault-tests"


@event_type("io.scanline.test.fault.v1", producers={FAULT_PRODUCER})
class FaultEvent(Payload):
    sleep_ms: int | None = prop({"type": "integer", "minimum": 0, "maximum": 60_000},
                                default=None)
    fail: bool | None = prop({"type": "boolean"}, default=None)


FAULT_EVENT = FaultEvent.TYPE

_lock = threading.Lock()
_deliveries: Counter[str] = Counter()
_inflight = 0
_max_inflight = 0

routes = Routes()


def _snapshot() -> Response:
    return Response({"deliveries": dict(_deliveries), "inflight": _inflight,
                     "max_inflight": _max_inflight})


@routes.http("/stats", "GET")
def stats() -> Response:
    with _lock:
        return _snapshot()


@routes.http("/reset", "POST")
def reset() -> Response:
    global _max_inflight
    with _lock:
        _deliveries.clear()
        _max_inflight = 0
        return _snapshot()


@routes.event(FaultEvent, inbox=False)
def deliver(event: FaultEvent, envelope: Event) -> Response:
    global _inflight, _max_inflight
    with _lock:
        _deliveries[envelope.id] += 1
        _inflight += 1
        _max_inflight = max(_max_inflight, _inflight)
    try:
        time.sleep((event.sleep_ms or 0) / 1000)
        if event.fail:
            raise DependencyUnavailable("fault", "this event asks to fail")
    finally:
        with _lock:
            _inflight -= 1
    return Response({"status": "ok", "id": envelope.id})
