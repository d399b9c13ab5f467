"""Waiting for jobs to finish (``?wait=N``) without letting waiters starve anyone.

A waiting request holds one of its process's threads, so waiting is bounded twice: each
user may hold ``waits_per_user`` waits and the process ``waits_per_process`` in all; past
either, the answer is 429 with ``Retry-After`` at once, so another user's request and the
health checks always find a free thread.

The waiters themselves do not query. A job's end is notified by PostgreSQL in the
transaction that ends it (``OcrJobs.ENDED``); one thread per process listens, and
wakes those who wait for that job at once (polling every 50 ms, the end was seen 25 ms
late on average: a third of the OCR path's overhead). Notifications are not a queue, so
none is relied on alone: a new waiter looks at its job once after it is registered (an
end notified just before is not missed), the thread reads every watched job's status when
it (re)connects and every ``poll`` seconds, and while PostgreSQL cannot be listened to it
polls every ``fallback_poll`` seconds. With no waiter for ``IDLE_SECONDS`` it stops and
lets its connection go.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from scanline.adapters.pg_listener import Listener
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.domain import ocr
from scanline.errors import ScanlineError, TooManyRequests

log = logging.getLogger(__name__)


IDLE_SECONDS = 60.0
RECONNECT_SECONDS = 5.0


class JobWatch:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork],
                 listener: Callable[[], Listener], *, per_user: int, per_process: int,
                 poll: float = 5.0, fallback_poll: float = 0.05) -> None:
        self._uow, self._listener = unit_of_work, listener
        self._per_user, self._per_process = per_user, per_process
        self._poll, self._fallback_poll = poll, fallback_poll
        self._lock = threading.Lock()
        self._users: Counter[str] = Counter()
        self._jobs: dict[str, threading.Event] = {}
        self._watchers: Counter[str] = Counter()
        self._thread: threading.Thread | None = None

    @contextmanager
    def admitted(self, user_id: str) -> Iterator[None]:
        """One wait of ``user_id``, or 429 if the user or the process holds its share."""
        with self._lock:
            if self._users[user_id] >= self._per_user:
                raise TooManyRequests(f"you already wait for {self._per_user} jobs; wait for "
                                      "one at a time or poll without ?wait", retry_after=1)
            if sum(self._users.values()) >= self._per_process:
                raise TooManyRequests("too many requests are waiting for jobs; poll "
                                      "without ?wait or retry", retry_after=1)
            self._users[user_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._users[user_id] -= 1
                if not self._users[user_id]:
                    del self._users[user_id]

    def wait(self, job_id: str, timeout: float) -> None:
        """Return when the job has finished or ``timeout`` seconds have passed."""
        with self._lock:
            finished = self._jobs.setdefault(job_id, threading.Event())
            self._watchers[job_id] += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="job-watch",
                                                daemon=True)
                self._thread.start()
        try:
            self._look([job_id])
            finished.wait(timeout)
        finally:
            with self._lock:
                self._watchers[job_id] -= 1
                if not self._watchers[job_id]:
                    del self._watchers[job_id]
                    del self._jobs[job_id]

    def _look(self, job_ids: list[str]) -> None:
        """Read the jobs' statuses and wake the waiters of those that have ended."""
        try:
            with self._uow() as uow:
                statuses = uow.jobs.statuses(job_ids)
        except ScanlineError as exc:
            log.warning("job statuses not read: %s", exc.detail)
            return
        # A job that finished, or that is gone (deleted): nothing more to wait for.
        self._wake(j for j in job_ids if statuses.get(j, ocr.DONE) in ocr.FINISHED)

    def _wake(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                if job_id in self._jobs:
                    self._jobs[job_id].set()

    def _run(self) -> None:
        listener = self._listener()
        next_connect = next_look = idle_since = 0.0
        try:
            while True:
                now = time.monotonic()
                with self._lock:
                    watched = list(self._jobs)
                    if watched:
                        idle_since = 0.0
                    elif not idle_since:
                        idle_since = now
                    elif now - idle_since > IDLE_SECONDS:
                        self._thread = None
                        return
                if not listener.listening and now >= next_connect:
                    try:
                        listener.open()
                        next_look = now  # whatever ended while no one listened
                    except ScanlineError as exc:
                        log.warning("job ends not listened to, polling: %s", exc.detail)
                        next_connect = now + RECONNECT_SECONDS
                if watched and now >= next_look:
                    self._look(watched)
                    next_look = now + (self._poll if listener.listening
                                       else self._fallback_poll)
                if not listener.listening:
                    time.sleep(self._fallback_poll)
                    continue
                timeout = min(max(0.0, next_look - now), 1.0) if watched else 1.0
                try:
                    self._wake(listener.wait(timeout))
                except ScanlineError as exc:
                    log.warning("listening for job ends failed: %s", exc.detail)
        finally:
            listener.close()
