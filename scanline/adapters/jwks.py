"""The token function's public keys, fetched from its JWKS and cached in this process.

A function that only verifies access tokens uses these instead of mounting the signing
secret: holding a key that can check a signature must not mean holding one that can make one.

Caching, so the token function is not asked on every request and a short outage of it is
not an outage of every function:

- a fetched set is used for ``fresh_for`` seconds (the JWKS's own ``max-age``), then
  fetched again;
- a token naming a ``kid`` the cache lacks (the signing key was just rotated) triggers a
  fetch at once, but fetches never happen more often than every ``min_interval`` seconds,
  so tokens with made-up ``kid`` values cannot turn into a flood of requests;
- when a fetch fails, the last good set stays in use for up to ``stale_for`` seconds after
  it was fetched (a bound, so a key removed from the JWKS cannot stay trusted forever);
  with nothing usable cached the answer is ``DependencyUnavailable`` (503) — never a 500,
  and never a token accepted without its key.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from scanline.auth import jwks_public_keys
from scanline.errors import DependencyUnavailable

log = logging.getLogger(__name__)

# The token function serves its JWKS with Cache-Control: max-age=300.
FRESH_SECONDS = 300.0
STALE_SECONDS = 3600.0
MIN_INTERVAL_SECONDS = 10.0


class JwksKeys:
    """``PublicKeys`` read from a JWKS URL (see the module docstring for the cache rules)."""

    def __init__(self, url: str, timeout: float = 2.0, *, fresh_for: float = FRESH_SECONDS,
                 stale_for: float = STALE_SECONDS, min_interval: float = MIN_INTERVAL_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._url, self._timeout = url, timeout
        self._fresh_for, self._stale_for, self._min_interval = fresh_for, stale_for, min_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at = -math.inf

    def find(self, kid: str) -> Ed25519PublicKey | None:
        # One lock: concurrent requests wait for a fetch in progress instead of repeating it.
        with self._lock:
            now = self._monotonic()
            if self._age(now) >= self._fresh_for or kid not in self._keys:
                self._refresh(now)
            if self._age(now) >= self._stale_for:
                raise DependencyUnavailable("jwks", "the token signing keys cannot be fetched; "
                                                    "retry later")
            return self._keys.get(kid)

    def _age(self, now: float) -> float:
        return math.inf if self._fetched_at is None else now - self._fetched_at

    def _refresh(self, now: float) -> None:
        if now - self._attempted_at < self._min_interval:
            return
        self._attempted_at = now
        try:
            keys = self._fetch()
        except (requests.RequestException, ValueError) as exc:
            # The caller decides from the cache's age: stale keys, or 503.
            log.warning("fetching the JWKS from %s failed: %s", self._url, exc)
            return
        self._keys, self._fetched_at = keys, now

    def _fetch(self) -> dict[str, Ed25519PublicKey]:
        response = requests.get(self._url, timeout=self._timeout, allow_redirects=False,
                                headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        keys = jwks_public_keys(response.json())
        if not keys:
            raise ValueError("the JWKS has no Ed25519 signature key")
        return keys
