"""A function for fault tests only: slow on demand, failing on demand, and counting.

Each ``io.scanline.test.fault.v1`` event sleeps ``data.sleep_ms`` and answers 200, or 503
when ``data.fail`` is true (a message that can never succeed: the trigger retries it until
the queue's delivery limit dead-letters it). ``GET /stats`` tells the test how often each
event id arrived and how many deliveries it held at once; ``POST /reset`` forgets both.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from scanline.errors import BadRequest, DependencyUnavailable
from scanline.events import HTTP_REQUEST, Event
from scanline.runtime import Context, Response

FAULT_EVENT = "io.scanline.test.fault.v1"

_lock = threading.Lock()
_deliveries: Counter[str] = Counter()
_inflight = 0
_max_inflight = 0


def _stats(context: Context) -> Response:
    global _max_inflight
    with _lock:
        if context.method == "POST" and context.path == "/reset":
            _deliveries.clear()
            _max_inflight = 0
        return Response({"deliveries": dict(_deliveries), "inflight": _inflight,
                         "max_inflight": _max_inflight})


def _deliver(event: Event) -> Response:
    global _inflight, _max_inflight
    data = event.data if isinstance(event.data, dict) else {}
    with _lock:
        _deliveries[event.id] += 1
        _inflight += 1
        _max_inflight = max(_max_inflight, _inflight)
    try:
        time.sleep(float(data.get("sleep_ms", 0)) / 1000)
        if data.get("fail"):
            raise DependencyUnavailable("fault", "this event asks to fail")
    finally:
        with _lock:
            _inflight -= 1
    return Response({"status": "ok", "id": event.id})


def handle(event: Event, context: Context) -> Response:
    if event.type == HTTP_REQUEST:
        return _stats(context)
    if event.type == FAULT_EVENT:
        return _deliver(event)
    raise BadRequest(f"unexpected event type {event.type}")
