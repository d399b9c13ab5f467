"""Delivering completion callbacks: the signed ``ocr.completed`` event, POSTed to the URL
the job named, until it is taken.

A finished job's callback is a row written in the same transaction that finishes the job
(``uow.callbacks``), so none is lost and none is made twice. A sender thread in each ocr
process takes the due ones (claimed row by row, so replicas never post the same one at
once), POSTs each as a structured CloudEvent, and on anything but a 2xx answer tries again
after a growing pause (``scanline.domain.callbacks.retry_delay``) until the retry period
ends; then the callback is dead-lettered: kept with its last error, listed and replayed
by ``python -m scanline.callbacks``. Only hosts on ``OCR_CALLBACK_HOSTS`` are called,
checked again at every attempt, and redirects are never followed. Delivery is at least
once: a receiver keeps the event ``id`` to recognise the rare repeat (a sender that died
between the receiver's answer and recording it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

import requests

from scanline.adapters.ocr_lifecycle_repository import Callback
from scanline.adapters.unit_of_work import UnitOfWork
from scanline.clock import Clock
from scanline.domain import callbacks
from scanline.domain.job_policy import JobPolicy
from scanline.errors import ScanlineError
from scanline.events import STRUCTURED_CONTENT_TYPE

log = logging.getLogger(__name__)

BATCH = 10


class CallbackSender:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], policy: JobPolicy,
                 clock: Clock, *, idle: float = 1.0) -> None:
        self._uow, self._policy, self._clock, self._idle = unit_of_work, policy, clock, idle
        self._session = requests.Session()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """A callback was just added: deliver it now rather than at the next round."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                sent = self.deliver_due()
            except ScanlineError as exc:
                log.warning("callbacks not delivered: %s", exc.detail)
                sent = 0
            if sent < BATCH:
                self._wake.wait(self._idle)
                self._wake.clear()

    def deliver_due(self) -> int:
        """Attempt every callback due now (at most a batch); how many were attempted."""
        # Long enough for every POST of the batch: no other sender takes one meanwhile.
        hold = timedelta(seconds=self._policy.callback_timeout * BATCH + 5)
        uow = self._uow()
        with uow:
            due = uow.callbacks.claim_due(self._clock.now(), hold=hold, limit=BATCH)
        for callback in due:
            error = self._post(callback)
            now = self._clock.now()
            with uow:
                if error is None:
                    uow.callbacks.delivered(callback.job_id, now)
                elif (now - callback.created_at > self._policy.callback_retry_for
                      or not callbacks.allowed(callback.url, self._policy.callback_hosts)):
                    uow.callbacks.give_up(callback.job_id, error)
                    log.warning("callback of job %s dead-lettered: %s", callback.job_id, error)
                else:
                    uow.callbacks.retry(callback.job_id,
                                        now + callbacks.retry_delay(callback.attempts), error)
        return len(due)

    def _post(self, callback: Callback) -> str | None:
        """None if the receiver took it, else why not."""
        if not callbacks.allowed(callback.url, self._policy.callback_hosts):
            return "the callback host is not on OCR_CALLBACK_HOSTS"
        try:
            answer = self._session.post(
                callback.url, data=callback.body.encode(), allow_redirects=False,
                timeout=self._policy.callback_timeout,
                headers={"Content-Type": STRUCTURED_CONTENT_TYPE,
                         "User-Agent": "Scanline-Callbacks/1"})
        except requests.RequestException as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= answer.status_code < 300:
            log.info("callback of job %s delivered", callback.job_id)
            return None
        return f"the receiver answered {answer.status_code}"
