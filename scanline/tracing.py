"""OpenTelemetry traces, exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Every invocation already carries a W3C ``traceparent`` (from the caller's header, or the
event's extension, which the producer's invocation stamped on it; ``scanline.logs`` tags
each log line with it). With tracing on, each invocation becomes a server span that is a
child of that parent, and its own ``traceparent`` is the one its logs and the events it
emits carry, so a sign-up is one trace from ``register`` through ``issue-otp`` to
``send-email``. Without the endpoint nothing here does anything, and nothing is imported.
The exporter reads the standard ``OTEL_*`` variables itself (headers, timeout, protocol).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_state: dict[str, Any] = {}
_lock = threading.Lock()


def configure(service: str, endpoint: str) -> bool:
    """Start exporting spans of ``service`` (once per process); False when not configured."""
    if not endpoint:
        return False
    with _lock:
        if "tracer" not in _state:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            _state.update(provider=provider, tracer=provider.get_tracer("scanline"),
                          propagator=TraceContextTextMapPropagator())
    return True


@contextmanager
def span(name: str, parent: str | None, **attributes: str) -> Iterator[str | None]:
    """A server span under ``parent``; yields its ``traceparent`` (None when tracing is off,
    so the caller keeps the one it had)."""
    tracer = _state.get("tracer")
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    propagator = _state["propagator"]
    context = propagator.extract({"traceparent": parent} if parent else {})
    with tracer.start_as_current_span(name, context=context, kind=SpanKind.SERVER,
                                      attributes=attributes):
        carrier: dict[str, str] = {}
        propagator.inject(carrier)
        yield carrier.get("traceparent")


def shutdown() -> None:
    """Flush what is buffered (at process exit)."""
    provider = _state.get("provider")
    if provider is not None:
        provider.shutdown()
