"""Keeping a job's lease alive while the engine works on it.

The claim gives the worker a lease that runs out after ``lease`` (``OCR_LEASE_SECONDS``);
a thread renews it every third of that, so a live worker never loses its job to a
redelivery, and a worker that dies stops renewing: its job is claimable again once the
lease has run out. A worker that lost its lease anyway (the database was unreachable for
longer than the lease and another worker took over) finds out when it finishes: only the
lease holder's result is accepted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.errors import DependencyUnavailable

log = logging.getLogger(__name__)


@contextmanager
def kept(uow: UnitOfWork, job_id: str, token: str, clock: Clock,
         lease: timedelta) -> Iterator[None]:
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease.total_seconds() / 3):
            try:
                with uow:
                    if not uow.jobs.renew(job_id, token, now=clock.now(), lease=lease):
                        log.warning("ocr job %s: the lease passed to another worker", job_id)
                        return
            except DependencyUnavailable as exc:
                log.warning("ocr job %s: lease not renewed: %s", job_id, exc.detail)

    thread = threading.Thread(target=renew, name=f"lease-{job_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
