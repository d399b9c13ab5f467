"""Where Scanline may POST a callback: only to hosts an operator allowed.

A URL a caller supplies (OpenFaaS' ``X-Callback-Url``, a job's ``callback_url``) makes the
platform send a request on the caller's behalf, from inside the network: without a bound
that is server-side request forgery (cloud metadata endpoints, internal services). So a
callback goes only to an ``http``/``https`` URL whose host (or ``host:port``) is on the
allow-list, which is empty by default, and redirects are never followed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import urlsplit

# Back-off between delivery attempts: 1 s, 2 s, 4 s ... then every 5 minutes.
MAX_RETRY_DELAY = timedelta(minutes=5)


def parse_hosts(setting: str) -> frozenset[str]:
    """The allow-list from its setting: host names or ``host:port``, comma-separated."""
    return frozenset(h.strip().lower() for h in setting.split(",") if h.strip())


def allowed(url: str, hosts: Iterable[str]) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return False
    host = parts.hostname.lower()
    allow = set(hosts)
    return host in allow or (port is not None and f"{host}:{port}" in allow)


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed delivery."""
    return min(MAX_RETRY_DELAY, timedelta(seconds=2 ** min(max(attempts - 1, 0), 16)))
