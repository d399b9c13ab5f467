"""A function started before PostgreSQL and RabbitMQ answer 503, then recovers by itself."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.local import paths
from infra.local.build import build_context
from infra.local.environment import function_environment
from infra.local.stackfile import load
from scanline.payloads import EmailRequested
from tests.support.mailbox import Mailbox
from tests.support.signing import signed
from tests.support.stack import Stack
from tests.support.tcpproxy import TcpProxy, free_port


@pytest.fixture
def isolated_send_email(tmp_path: Path) -> Iterator[tuple[str, TcpProxy, TcpProxy]]:
    """send-email as its own process, reaching PostgreSQL and RabbitMQ only through proxies
    that are not listening yet."""
    context = build_context("send-email", load(), out=tmp_path)
    db_proxy, amqp_proxy = TcpProxy(paths.POSTGRES_PORT), TcpProxy(paths.RABBITMQ_PORT)
    port = free_port()
    env = function_environment("send-email")
    # METRICS_PORT=0: the stack's own send-email already serves its metrics port.
    env.update(upstream_url=f"http://127.0.0.1:{port}", FUNCTION_NAME="send-email",
               METRICS_PORT="0",
               DATABASE_URL=env["DATABASE_URL"].replace(f":{paths.POSTGRES_PORT}/",
                                                        f":{db_proxy.port}/"),
               RABBITMQ_URL=env["RABBITMQ_URL"].replace(f":{paths.RABBITMQ_PORT}/",
                                                        f":{amqp_proxy.port}/"))
    process = subprocess.Popen([str(paths.PYTHON), "index.py"], cwd=context, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{url}/_/health", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url, db_proxy, amqp_proxy
    finally:
        process.terminate()
        process.wait(10)
        db_proxy.stop()
        amqp_proxy.stop()


def test_503_while_servers_are_absent_then_recovers_without_restart(
        stack: Stack, mailbox: Mailbox,
        isolated_send_email: tuple[str, TcpProxy, TcpProxy]) -> None:
    url, db_proxy, amqp_proxy = isolated_send_email
    subject = f"recovery {uuid.uuid4()}"
    event = signed(EmailRequested(to="r@example.com", subject=subject, text="back"))
    headers = {"Content-Type": "application/cloudevents+json"}

    started = time.monotonic()
    down = requests.post(url, data=event.to_structured(), headers=headers, timeout=10)
    assert down.status_code == 503 and time.monotonic() - started < 2.5
    assert down.headers["Content-Type"] == "application/problem+json"
    assert requests.get(f"{url}/_/ready", timeout=10).status_code == 503

    db_proxy.start()
    amqp_proxy.start()
    deadline = time.monotonic() + 15
    while (up := requests.post(url, data=event.to_structured(), headers=headers,
                               timeout=10)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert up.status_code == 200, up.text
    assert json.loads(up.text)["status"] == "sent"
    mailbox.wait_for(subject=subject)
    assert requests.get(f"{url}/_/ready", timeout=10).status_code == 200
