"""Take a server of the local stack away and always bring it back: the fault suite's levers.

PostgreSQL and RabbitMQ are system daemons (stopped with their own tools), the SMTP sink,
S3, the gateway, the trigger and every function are supervisord programs. Each context
manager restores the server in ``finally``, whatever the test body raised.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.local import paths
from infra.local.services import _postgres_cluster, port_open, wait_for_port
from tests.support.stack import Stack


def _run(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stdout}{result.stderr}")
    return result.stdout


@contextmanager
def rabbitmq_stopped() -> Iterator[None]:
    """Stop the RabbitMQ application (the Erlang node stays up, every connection drops)."""
    _run("rabbitmqctl", "-q", "stop_app")
    try:
        yield
    finally:
        _run("rabbitmqctl", "-q", "start_app")
        _run("rabbitmqctl", "-q", "await_startup", "--timeout", "60")
        wait_for_port(paths.RABBITMQ_PORT, 60, "RabbitMQ")


@contextmanager
def postgresql_stopped() -> Iterator[None]:
    version, cluster = _postgres_cluster()
    ctl = ("pg_ctlcluster", "--skip-systemctl-redirect", version, cluster)
    _run(*ctl, "stop", "-m", "fast")
    try:
        yield
    finally:
        if not port_open(paths.POSTGRES_PORT):
            _run(*ctl, "start")
        wait_for_port(paths.POSTGRES_PORT, 60, "PostgreSQL")


@contextmanager
def program_stopped(stack: Stack, name: str) -> Iterator[None]:
    stack.stop_program(name)
    try:
        yield
    finally:
        stack.start_program(name)


@dataclass(frozen=True)
class Program:
    name: str
    state: str
    pid: int | None


def programs(stack: Stack) -> dict[str, Program]:
    """``supervisorctl status`` as data: name → state and pid."""
    found = {}
    for line in stack.supervisorctl("status").splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        pid = None
        if "pid" in parts:
            pid = int(parts[parts.index("pid") + 1].rstrip(","))
        found[parts[0]] = Program(parts[0], parts[1], pid)
    return found


def wait_running(stack: Stack, name: str, *, other_than: int | None = None,
                 timeout: float = 30) -> int:
    """The pid of ``name`` once supervisord reports it RUNNING (under a new pid, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        program = programs(stack).get(name)
        if (program and program.state == "RUNNING" and program.pid
                and program.pid != other_than):
            return program.pid
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} is not running again within {timeout} s: {program}")
        time.sleep(0.2)


def kill(pid: int) -> None:
    """SIGKILL: no clean-up, no goodbye; what the OOM killer or a node loss does."""
    os.kill(pid, signal.SIGKILL)


def rss_kib(pid: int) -> int:
    """Resident set size from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def queue_counts(queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of ``queue``, as the broker reports them."""
    out = _run("rabbitmqctl", "-q", "list_queues", "--no-table-headers", "name",
               "messages_ready", "messages_unacknowledged")
    for line in out.splitlines():
        name, ready, unacked = line.split()
        if name == queue:
            return int(ready), int(unacked)
    raise AssertionError(f"queue {queue} not found")
