"""Password hashing: argon2id through passlib (the ``libpass`` distribution).

Parameters, chosen with ``bench/auth.py`` (docs/benchmarks.md): at or above OWASP's
floor of m=19 MiB, t=2, p=1.

- One lane (p=1): each hash is one core's work. argon2-cffi releases the GIL while it
  hashes, so a function's threads keep every core busy and throughput scales with cores.
- Memory stays below glibc's 32 MiB mmap ceiling: a larger block is mapped and unmapped
  for every hash (measured here: ~35 ms of page faults per 64 MiB hash, a quarter of its
  cost, paid by us and not by an attacker); a smaller one is reused from the heap.
- Extra cost goes into passes (t) instead.
- At most one hash per core at a time: more would only time-slice the cores and evict
  each other's memory from the shared cache; waiting threads cost nothing meanwhile.
"""

from __future__ import annotations

import functools
import os
import secrets
import threading

from passlib.hash import argon2

MEMORY_KIB = 19 * 1024
TIME_COST = 16
PARALLELISM = 1


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


class PasswordHasher:
    def __init__(self, memory_kib: int = MEMORY_KIB, time_cost: int = TIME_COST,
                 parallelism: int = PARALLELISM, concurrency: int | None = None) -> None:
        self._scheme = argon2.using(type="ID", memory_cost=memory_kib, time_cost=time_cost,
                                    parallelism=parallelism)
        self._slots = threading.BoundedSemaphore(concurrency or usable_cores())

    @functools.cached_property
    def _dummy(self) -> str:
        """Verified against when the account does not exist, so an unknown user costs
        exactly what a wrong password costs (no enumeration by timing). Made on first
        use: building the hasher costs nothing, whatever the request turns out to be."""
        return self._scheme.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        with self._slots:
            return self._scheme.hash(password)

    def verify(self, password: str, stored: str | None) -> bool:
        """Check ``password`` against ``stored``; ``None`` (no such account) is verified
        against a dummy hash of the same cost and is always False."""
        with self._slots:
            if stored is None:
                # The dummy first: making it loads passlib's backend, which replaces the
                # method a bound ``verify`` taken before would still point at.
                dummy = self._dummy
                self._scheme.verify(password, dummy)
                return False
            return bool(self._scheme.verify(password, stored))

    def needs_rehash(self, stored: str) -> bool:
        """True when ``stored`` was made with weaker parameters than the current ones."""
        return bool(self._scheme.needs_update(stored))
