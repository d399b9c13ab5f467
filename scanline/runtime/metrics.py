"""Each function's own Prometheus metrics, served on ``METRICS_PORT`` (never through a
gateway: the pod annotations ``prometheus.io.scrape``/``prometheus.io.port`` say where).

What an operator asks of a function: how its operations answer (by route and status), what
happened to each event delivered to it (done, a duplicate, refused for good, to be retried),
how much OCR it does and how long the engine takes, how many events wait in the outbox, and
how logins end. The watchdog's own metrics (``:8081``) count requests as it sees them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response, g, request
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from scanline.errors import OAuthError, ScanlineError

REQUESTS = Counter("scanline_http_requests", "Plain calls by operation and status",
                   ["route", "method", "status"])
REQUEST_SECONDS = Histogram("scanline_http_request_seconds", "Time to answer a plain call",
                            ["route"])
DELIVERIES = Counter("scanline_event_deliveries", "Events delivered, by what became of them",
                     ["type", "outcome"])
OCR_PAGES = Counter("scanline_ocr_pages", "Pages recognised, by engine", ["engine"])
OCR_ENGINE_SECONDS = Histogram("scanline_ocr_engine_seconds",
                               "Engine time per page (its share of a batch)", ["engine"],
                               buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64))
OUTBOX_BACKLOG = Gauge("scanline_outbox_backlog",
                       "Events committed but not yet confirmed by the broker")
UNIFORM_OVERRUNS = Counter("scanline_uniform_answer_overruns",
                           "Answers of a uniform-time operation that took longer than "
                           "UNIFORM_ANSWER_SECONDS (their timing may tell)", ["route"])
LOGINS = Counter("scanline_logins", "Password logins by outcome", ["outcome"])

_served = threading.Lock()
_serving: list[int] = []


def ocr_page(engine: str, seconds: float) -> None:
    """One page recognised; ``seconds`` is its share of its batch's engine time."""
    OCR_PAGES.labels(engine).inc()
    OCR_ENGINE_SECONDS.labels(engine).observe(seconds)


def delivery_outcome(status: int, duplicate: bool) -> str:
    """The broker contract's reading of a delivery's answer."""
    if 200 <= status < 300:
        return "duplicate" if duplicate else "done"
    if 400 <= status < 500 and status not in (408, 429):
        return "rejected"
    return "retry"


def serve(port: int) -> None:
    """``/metrics`` on ``port`` (all interfaces of the pod), once per process."""
    with _served:
        if port and not _serving:
            start_http_server(port)
            _serving.append(port)


def instrument(app: Flask) -> None:
    """Count every answer of ``app``: a delivery by its event type and outcome, a plain
    call by the operation's rule (``g.route``, set when the call is routed) and status.
    ``/_/`` probes and the OpenAPI document are not counted."""

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.monotonic()

    @app.after_request
    def _observe(response: Response) -> Response:
        event_type = g.get("event_type")
        if event_type is not None:
            outcome = delivery_outcome(response.status_code, g.get("duplicate", False))
            DELIVERIES.labels(event_type, outcome).inc()
        elif request.path.startswith("/_/") or request.path == "/openapi.json":
            return response
        else:
            route = g.get("route", "unmatched")
            REQUESTS.labels(route, request.method, str(response.status_code)).inc()
            REQUEST_SECONDS.labels(route).observe(time.monotonic() - g.metrics_started)
        return response


def _login_outcome(exc: ScanlineError) -> str:
    """The token endpoint answers OAuth errors (``invalid_grant`` for a wrong address or
    password); other errors by status."""
    if isinstance(exc, OAuthError) and exc.error == "invalid_grant":
        return "bad-credentials"
    if exc.status == 429:
        return "locked"
    return "unavailable" if exc.status >= 500 else "invalid"


@contextmanager
def login_outcome() -> Iterator[None]:
    """Count one password login by how it ends: ``success``, or the error's meaning."""
    try:
        yield
    except ScanlineError as exc:
        LOGINS.labels(_login_outcome(exc)).inc()
        raise
    LOGINS.labels("success").inc()
