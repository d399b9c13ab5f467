"""Waiting for jobs to finish (``?wait=N``) without letting waiters starve anyone.

A waiting request holds one of its process's threads, so waiting is bounded twice: each
user may hold ``waits_per_user`` waits and the process ``waits_per_process`` in all; past
either, the answer is 429 with ``Retry-After`` at once, so another user's request and the
health checks always find a free thread. The waiters themselves do not query: one thread
per process reads the status of every job someone waits for, in one query every
``poll`` seconds while there are waiters, and wakes those whose job has finished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.domain import ocr
from scanline.errors import ScanlineError, TooManyRequests

log = logging.getLogger(__name__)


class JobWatch:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], *, per_user: int,
                 per_process: int, poll: float = 0.05) -> None:
        self._uow, self._per_user, self._per_process = unit_of_work, per_user, per_process
        self._poll = poll
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
            finished.wait(timeout)
        finally:
            with self._lock:
                self._watchers[job_id] -= 1
                if not self._watchers[job_id]:
                    del self._watchers[job_id]
                    del self._jobs[job_id]

    def _run(self) -> None:
        while True:
            with self._lock:
                watched = list(self._jobs)
                if not watched:
                    self._thread = None
                    return
            try:
                uow = self._uow()
                with uow:
                    statuses = uow.jobs.statuses(watched)
            except ScanlineError as exc:
                log.warning("job statuses not read: %s", exc.detail)
                statuses = {}
            with self._lock:
                for job_id in watched:
                    # A job that finished, or that is gone (deleted): nothing more to wait for.
                    if statuses.get(job_id, ocr.DONE) in ocr.FINISHED and job_id in self._jobs:
                        self._jobs[job_id].set()
            time.sleep(self._poll)
