"""The local queue-worker: runs what ``/async-function/<name>`` queued, as OpenFaaS's does.

It consumes ``scanline.async`` (a quorum queue with its dead-letter queue, like a function's)
and POSTs each request to its function with the caller's headers and ``X-Call-Id``. 408,
429 and 5xx answers are retried with back-off (the Pro queue-worker's set) until the
delivery limit dead-letters the call; any other answer is final, and is POSTed to
``X-Callback-Url`` when its host is on ``GATEWAY_CALLBACK_HOSTS``, never following
redirects. A lost callback is logged, not retried: the function already ran.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from urllib.parse import quote

import requests
from pika.spec import Basic, BasicProperties

from infra.connector.amqp import Consumer, Outcome
from infra.local import paths
from infra.local.gateway import (
    ASYNC_QUEUE,
    CALLBACK_HOSTS,
    FUNCTION_TIMEOUT,
    PATH_SAFE,
    declare_async_queue,
)
from infra.local.stackfile import Stack, load
from scanline.domain import callbacks
from scanline.logs import configure as configure_logging

log = logging.getLogger("queue-worker")

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class QueueWorker:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.session = requests.Session()

    def __call__(self, method: Basic.Deliver, properties: BasicProperties,
                 body: bytes) -> Outcome:
        meta = properties.headers or {}
        name = str(meta.get("function", ""))
        function = self.stack.functions.get(name)
        call_id = properties.message_id or ""
        if function is None or function.event_only:
            log.warning("async call for a function that takes no calls", extra={"target": name})
            return Outcome.DEAD_LETTER
        sub_path = str(meta.get("path", "/"))
        if not sub_path.startswith("/"):  # "@host/..." would make the function's address
            log.warning("async call with a malformed path", extra={"target": name})
            return Outcome.DEAD_LETTER
        url = f"http://{paths.HOST}:{function.port}{quote(sub_path, safe=PATH_SAFE)}"
        if meta.get("query"):
            url += f"?{meta['query']}"
        headers = json.loads(str(meta.get("request-headers", "{}")))
        try:
            response = self.session.post(url, data=body, headers=headers,
                                         timeout=FUNCTION_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            log.warning("async invoke failed", extra={"target": name, "call_id": call_id,
                                                      "error": type(exc).__name__})
            return Outcome.RETRY
        if response.status_code in RETRY_STATUSES:
            return Outcome.RETRY
        log.info("async invoked", extra={"target": name, "call_id": call_id,
                                         "status": response.status_code})
        callback = str(meta.get("callback-url", ""))
        if callback and callbacks.allowed(callback, CALLBACK_HOSTS):
            self._callback(callback, name, call_id, response)
        return Outcome.ACK

    def _callback(self, url: str, name: str, call_id: str, response: requests.Response) -> None:
        headers = {"X-Call-Id": call_id, "X-Function-Status": str(response.status_code),
                   "X-Function-Name": name,
                   "Content-Type": response.headers.get("Content-Type",
                                                        "application/octet-stream")}
        try:
            self.session.post(url, data=response.content, headers=headers, timeout=10,
                              allow_redirects=False)
        except requests.RequestException as exc:
            log.warning("callback failed", extra={"call_id": call_id, "error": repr(exc)})


def main() -> None:
    configure_logging("queue-worker")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker = Consumer(ASYNC_QUEUE, declare_async_queue, QueueWorker(load()),
                      prefetch=int(os.environ.get("ASYNC_WORKERS", "4")), stop=stop)
    worker.start()
    stop.wait()
    worker.join(timeout=35)


if __name__ == "__main__":
    main()
