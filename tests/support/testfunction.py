"""A test's own event-triggered function: built like the real ones, consumed by its own
trigger process, with its own queue and dead-letter queue (removed afterwards).

The handler lives in a folder of the test suite (not in stack.yml); it is laid out with
``infra.local.build`` exactly as ``faas-cli build`` would, runs the real template, and is fed
by ``tests.support.lone_trigger``, which runs the stack trigger's own code.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pika
import requests

from infra.local import paths
from infra.local.build import build_context
from infra.local.environment import function_environment
from infra.local.stackfile import Function, Stack, load
from scanline.adapters.topology import dead_letter_queue, queue_name
from scanline.payloads import Payload
from tests.support.signing import producer_keys, signed
from tests.support.tcpproxy import free_port

LANG = "python3-flask-cloudevents"


class TestFunction:
    __test__ = False  # not a pytest test class

    def __init__(self, name: str, handler_dir: Path, topic: str, workdir: Path, amqp_url: str,
                 *, producer: str, prefetch: int = 4, delivery_limit: int = 10,
                 timeout: float = 30) -> None:
        """``producer``: the only producer the function trusts, with a key of its own."""
        self.name, self.topic, self.amqp_url = name, topic, amqp_url
        self.handler_dir, self.workdir = handler_dir, workdir
        self.producer = producer
        self.secrets_dir = producer_keys(workdir / "secrets", producer)
        self.prefetch, self.delivery_limit, self.timeout = prefetch, delivery_limit, timeout
        self.port = free_port()
        self.url = f"http://{paths.HOST}:{self.port}"
        self.function: subprocess.Popen[bytes] | None = None
        self.trigger: subprocess.Popen[bytes] | None = None

    def event(self, payload: Payload) -> tuple[str, bytes]:
        """``payload`` signed by the producer this function trusts: (id, structured body)."""
        event = signed(payload, self.producer, secrets_dir=self.secrets_dir)
        return event.id, event.to_structured()

    @property
    def queue(self) -> str:
        return queue_name(self.name)

    @property
    def dead_letters(self) -> str:
        return dead_letter_queue(self.name)

    def start(self) -> None:
        real = load()
        stack = Stack(root=paths.REPO, copy=real.copy, functions={self.name: Function(
            name=self.name, lang=LANG, port=self.port,
            handler="./" + str(self.handler_dir.relative_to(paths.REPO)))})
        context = build_context(self.name, stack, out=self.workdir)
        env = {**function_environment(self.name), "upstream_url": self.url,
               "PYTHONUNBUFFERED": "1", "THREADS": "16", "SECRETS_DIR": str(self.secrets_dir)}
        logs = self.workdir / f"{self.name}.log"
        with logs.open("ab") as log:
            self.function = subprocess.Popen([str(paths.PYTHON), "index.py"], cwd=context,
                                             env=env, stdout=log, stderr=subprocess.STDOUT)
            self._wait_healthy()
            self.trigger = subprocess.Popen(
                [str(paths.PYTHON), "-m", "tests.support.lone_trigger", "--function", self.name,
                 "--port", str(self.port), "--topic", self.topic,
                 "--prefetch", str(self.prefetch), "--delivery-limit", str(self.delivery_limit),
                 "--timeout", str(self.timeout)],
                cwd=paths.REPO, stdout=log, stderr=subprocess.STDOUT)
        self._wait_consumer()

    def _wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(f"{self.url}/_/health", timeout=1).raise_for_status()
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _wait_consumer(self, timeout: float = 30) -> None:
        """Until the trigger has declared the queue and consumes it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._declared().method.consumer_count > 0:
                    return
            except pika.exceptions.ChannelClosedByBroker:
                pass  # not declared yet
            if time.monotonic() > deadline:
                raise AssertionError(f"the trigger for {self.name} did not start consuming")
            time.sleep(0.2)

    def _declared(self) -> Any:
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            return connection.channel().queue_declare(self.queue, passive=True)
        finally:
            connection.close()

    def ready_count(self) -> int:
        return int(self._declared().method.message_count)

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/stats", timeout=10).json()

    def reset(self) -> None:
        requests.post(f"{self.url}/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        for process in (self.trigger, self.function):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            for queue in (self.queue, self.dead_letters):
                channel.queue_delete(queue)
        finally:
            connection.close()
