"""Collects concurrent requests into batches so the engine runs once per batch.

With a broker prefetch above one, several deliveries reach the function at once, each on
its own server thread. Each thread ``submit``s its image and blocks; ``workers`` threads
take what is queued — waiting at most ``max_wait`` seconds for more once the first item
is there — run the engine on up to ``max_batch`` items and hand each thread its result.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Batched(Generic[R]):
    value: R
    batch_size: int
    queued_seconds: float  # from submit until the batch started
    run_seconds: float  # the engine call for the whole batch


class MicroBatcher(Generic[T, R]):
    def __init__(self, run: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int,
                 max_wait: float, workers: int = 1, name: str = "batcher") -> None:
        self._run, self._max_batch, self._max_wait = run, max(1, max_batch), max_wait
        self._workers, self._name = max(1, workers), name
        self._queue: queue.Queue[tuple[T, Future[Batched[R]], float]] = queue.Queue()
        self._started = False
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                for n in range(self._workers):
                    threading.Thread(target=self._loop, name=f"{self._name}-{n}",
                                     daemon=True).start()
                self._started = True

    def submit(self, item: T, timeout: float | None = None) -> Batched[R]:
        """Block until ``item``'s batch has run; re-raises the engine's exception."""
        self._start()
        future: Future[Batched[R]] = Future()
        self._queue.put((item, future, time.monotonic()))
        return future.result(timeout)

    def _take(self) -> list[tuple[T, Future[Batched[R]], float]]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self._max_wait
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            started = time.monotonic()
            try:
                results = list(self._run([item for item, _, _ in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"engine returned {len(results)} results for "
                                       f"{len(batch)} images")
            except BaseException as exc:  # every waiting caller must hear of the failure
                for _, future, _ in batch:
                    future.set_exception(exc)
                continue
            took = time.monotonic() - started
            for (_, future, queued), value in zip(batch, results, strict=True):
                future.set_result(Batched(value, len(batch), started - queued, took))
