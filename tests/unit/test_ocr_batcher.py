"""The micro-batcher: concurrent submissions share one engine call."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from scanline.ocr.batcher import MicroBatcher


class Recorder:
    def __init__(self, delay: float = 0.05) -> None:
        self.calls: list[list[int]] = []
        self.delay = delay
        self.active = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self._lock:
            self.calls.append(list(items))
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.delay)
        with self._lock:
            self.active -= 1
        return [i * 10 for i in items]


def test_concurrent_requests_run_as_batches_of_at_most_max_batch() -> None:
    engine = Recorder()
    batcher = MicroBatcher(engine, max_batch=4, max_wait=0.05)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(batcher.submit, range(8)))
    assert [r.value for r in results] == [i * 10 for i in range(8)]
    assert sorted(i for call in engine.calls for i in call) == list(range(8))
    assert all(len(call) <= 4 for call in engine.calls)
    assert len(engine.calls) <= 3  # 8 requests, not 8 engine calls
    assert max(r.batch_size for r in results) == 4


def test_a_lone_request_waits_at_most_max_wait() -> None:
    batcher = MicroBatcher(Recorder(delay=0), max_batch=8, max_wait=0.02)
    started = time.monotonic()
    result = batcher.submit(1)
    assert result.value == 10 and result.batch_size == 1
    assert time.monotonic() - started < 0.5


def test_several_workers_run_batches_in_parallel() -> None:
    engine = Recorder(delay=0.2)
    batcher = MicroBatcher(engine, max_batch=1, max_wait=0, workers=2)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(batcher.submit, range(2)))
    assert engine.peak == 2 and time.monotonic() - started < 0.35


def test_an_engine_failure_reaches_every_caller_of_the_batch_and_the_next_batch_runs() -> None:
    def broken(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("engine crashed")
        return list(items)

    batcher = MicroBatcher(broken, max_batch=4, max_wait=0.05)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(batcher.submit, i) for i in (13, 14)]
        errors = [f.exception(timeout=5) for f in futures]
    assert any(isinstance(e, RuntimeError) for e in errors)
    assert batcher.submit(1).value == 1


def test_an_engine_that_loses_results_is_an_error() -> None:
    batcher = MicroBatcher(lambda items: [], max_batch=2, max_wait=0)
    with pytest.raises(RuntimeError, match="0 results for 1"):
        batcher.submit(5)
