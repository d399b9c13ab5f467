"""HTTP clients that come from a loopback address of their own.

Scanline limits what one client address may do (sign-ups, code guesses, failed logins), and
on this machine every test connects from 127.0.0.1 — so the fuzz suite's thousands of bad
requests would use up the budget of every test after it. A test (or a benchmark user)
that plays one person connects from its own address in 127.0.0.0/8, as people do from
their own machines; the limits still apply to each.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class _FromAddress(HTTPAdapter):
    def __init__(self, source: str, **kwargs: Any) -> None:
        self._source = source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def loopback_address() -> str:
    n = uuid.uuid4().int
    return f"127.{n % 250 + 2}.{n // 250 % 250}.{n // 62_500 % 250 + 1}"


def session(source: str | None = None) -> requests.Session:
    """A session whose connections come from ``source`` (default: a fresh loopback one)."""
    opened = requests.Session()
    opened.mount("http://", _FromAddress(source or loopback_address()))
    return opened
