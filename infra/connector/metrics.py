"""The connector's Prometheus metrics: deliveries per function, status and outcome.

Named like the OpenFaaS connectors' gateway-side counters would be read: one counter and one
histogram, so an operator sees which function fails and how, and how long it takes.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram, start_http_server

DELIVERIES = Counter("scanline_connector_deliveries_total",
                     "Messages delivered to a function, by its answer and what the broker did",
                     ["function_name", "code", "outcome"])
SECONDS = Histogram("scanline_connector_delivery_seconds",
                    "Time from taking a message to the function's final answer",
                    ["function_name"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
BUSY = Counter("scanline_connector_busy_total",
               "429 answers (the function at max_inflight) the connector waited out",
               ["function_name"])


def observe(function: str, code: str, outcome: str, started: float) -> None:
    DELIVERIES.labels(function, code, outcome).inc()
    SECONDS.labels(function).observe(time.monotonic() - started)


def serve(port: int) -> None:
    """``/metrics`` on every interface of the pod (scraped by Prometheus, never public)."""
    start_http_server(port)
