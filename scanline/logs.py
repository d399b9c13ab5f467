"""One JSON object per log line, carrying the function, the event id and the trace.

The process's function name is set once at start; the invocation's event id and trace
live in context variables set by the template, so any module can log without threading
ids through every call.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter

_process = {"function": ""}
_event_id: contextvars.ContextVar[str] = contextvars.ContextVar("event_id", default="")
_traceparent: contextvars.ContextVar[str] = contextvars.ContextVar("traceparent", default="")


class _InvocationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.function = _process["function"]
        record.event_id = _event_id.get()
        record.traceparent = _traceparent.get()
        return True


def configure(function: str, level: str = "INFO") -> None:
    """Route every logger through one JSON handler on stderr (the watchdog collects it)."""
    _process["function"] = function
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_InvocationFilter())
    handler.setFormatter(JsonFormatter(
        "{asctime}{levelname}{name}{message}{function}{event_id}{traceparent}", style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pika", "botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def current_traceparent() -> str | None:
    return _traceparent.get() or None


@contextmanager
def invocation(event_id: str, traceparent: str | None) -> Iterator[None]:
    """Tag every log line of one invocation (this thread) with its event and trace."""
    tokens = (_event_id.set(event_id), _traceparent.set(traceparent or ""))
    try:
        yield
    finally:
        _traceparent.reset(tokens[1])
        _event_id.reset(tokens[0])
