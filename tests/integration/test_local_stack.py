"""The local stack itself: build layout, mail sink, broker topology, gateway, dead letters."""

from __future__ import annotations

import json
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pika
import pika.exceptions
import pytest
import requests

from infra.connector.amqp import connection_parameters
from infra.local import paths
from infra.local.build import build_context
from infra.local.gateway import CONNECTIONS_PER_CLIENT
from infra.local.pytest_stack import GATEWAY, local_stack  # noqa: F401 (fixture)
from infra.local.secretgen import gateway_admin
from infra.local.stackfile import Stack, envsubst, load
from scanline.adapters.topology import (
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    dead_letter_queue,
    queue_arguments,
    queue_name,
)
from tests.support import clients
from tests.support.tools import tool

# --- build layout (no services needed) ---------------------------------------------------


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_build_context_matches_faas_cli_layout(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _write(repo / "templates/lang/index.py", "template index")
    _write(repo / "templates/lang/template.yml")
    _write(repo / "templates/lang/function/handler.py", "template handler")
    _write(repo / "templates/lang/function/requirements.txt")
    _write(repo / "functions/fn/handler.py", "real handler")
    _write(repo / "functions/fn/lib/util.py")
    _write(repo / "functions/fn/build/junk")
    _write(repo / "functions/fn/template/junk")
    _write(repo / "shared/__init__.py")
    _write(repo / "stack.yml", "functions:\n  fn: {lang: lang, handler: ./functions/fn}\n"
                              "configuration: {copy: [./shared]}\n")
    out = tmp_path / "build"

    context = build_context("fn", load(repo / "stack.yml"), out)

    assert (repo / "template").resolve() == (repo / "templates").resolve()
    files = {str(p.relative_to(context)) for p in context.rglob("*") if p.is_file()}
    assert files == {"index.py", "template.yml", "function/handler.py",
                     "function/requirements.txt", "function/lib/util.py",
                     "function/shared/__init__.py"}
    assert (context / "function/handler.py").read_text() == "real handler"


def test_repository_template_dir_resolves_to_templates() -> None:
    assert (paths.REPO / "template").resolve() == (paths.REPO / "templates").resolve()


def test_envsubst_follows_faas_cli() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert envsubst("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $SET ${UNSET}", env) == \
        "x d d  x "


# --- running services --------------------------------------------------------------------


def _subscribers(stack: Stack) -> list[str]:
    return [f.name for f in stack.functions.values() if f.topics]


def test_mail_sink_stores_each_message_as_eml(local_stack: Stack) -> None:  # noqa: F811
    subject = f"sink {uuid.uuid4()}"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", subject
    message.set_content("body")
    with smtplib.SMTP(paths.HOST, paths.SMTP_PORT, timeout=5) as smtp:
        smtp.send_message(message)
    listing: list[dict[str, str]] = []
    for _ in range(50):
        listing = requests.get(f"http://{paths.HOST}:{paths.MAIL_WEB_PORT}/api/messages",
                               timeout=5).json()
        if any(m["subject"] == subject for m in listing):
            break
        time.sleep(0.1)
    found = [m for m in listing if m["subject"] == subject]
    assert found and found[0]["to"] == "b@example.com"
    eml = paths.mail_dir() / found[0]["file"]
    assert eml.suffix == ".eml" and subject in eml.read_text()
    assert not list(paths.mail_dir().glob(".*.tmp"))
    cli = subprocess.run([sys.executable, "-m", "infra.local.mail", "list"], cwd=paths.REPO,
                         capture_output=True, text=True, check=True)
    assert subject in cli.stdout


def test_trigger_topology_is_declared(local_stack: Stack) -> None:  # noqa: F811
    subscribers = _subscribers(local_stack)
    if not subscribers:
        pytest.skip("no function in stack.yml has a topic annotation")
    connection = pika.BlockingConnection(connection_parameters())
    try:
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True, passive=True)
        channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="direct", durable=True,
                                 passive=True)
        for fn in subscribers:
            channel.queue_declare(dead_letter_queue(fn), durable=True, passive=True)
            # Re-declaring with identical arguments succeeds only if they match exactly.
            channel.queue_declare(queue_name(fn), durable=True, arguments=queue_arguments(fn))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as mismatch:
            channel.queue_declare(queue_name(subscribers[0]), durable=True,
                                  arguments=queue_arguments(subscribers[0], 1234))
        assert mismatch.value.reply_code == 406
    finally:
        connection.close()
    listed = subprocess.run(["rabbitmqctl", "-q", "list_bindings", "source_name",
                             "destination_name", "routing_key", "--formatter", "json"],
                            capture_output=True, text=True, check=True).stdout
    bindings = {(b["source_name"], b["destination_name"], b["routing_key"])
                for b in json.loads(listed)}
    for fn in subscribers:
        for topic in local_stack.functions[fn].topics:
            assert (EXCHANGE, queue_name(fn), topic) in bindings
        assert (DEAD_LETTER_EXCHANGE, dead_letter_queue(fn), dead_letter_queue(fn)) in bindings


def test_unknown_function_is_a_404_problem(local_stack: Stack) -> None:  # noqa: F811
    for prefix in ("function", "async-function"):
        response = requests.post(f"{GATEWAY}/{prefix}/no-such-fn/x?y=1", data=b"{}", timeout=5)
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 404


def test_healthz_lists_every_function_and_dependency(local_stack: Stack) -> None:  # noqa: F811
    # A stranger learns whether the stack is up, not which part of it is down.
    verdict = requests.get(f"{GATEWAY}/healthz", timeout=10)
    assert verdict.json() == {"status": "ok" if verdict.status_code == 200 else "degraded"}
    document = requests.get(f"{GATEWAY}/healthz", auth=gateway_admin(), timeout=10).json()
    assert set(document["functions"]) == set(local_stack.functions)
    # What the functions' own readiness checks report (db, bus, store, mail, event keys).
    assert set(document["dependencies"]) == {"postgresql", "rabbitmq", "s3", "smtp", "secrets"}
    assert document["status"] in {"ok", "degraded"}
    listed = requests.get(f"{GATEWAY}/system/functions", auth=gateway_admin(), timeout=10).json()
    assert {f["name"] for f in listed} == set(local_stack.functions)


def test_system_routes_ask_for_the_administrator(local_stack: Stack,  # noqa: F811
                                                 tmp_path: Path) -> None:
    """As OpenFaaS's gateway: nothing under /system/ answers a stranger, whatever the
    method or path, and the real faas-cli logs in and lists with the admin's password."""
    user, password = gateway_admin()
    strangers = [
        requests.get(f"{GATEWAY}/system/functions", timeout=5),
        requests.get(f"{GATEWAY}/system/functions", auth=(user, password + "x"), timeout=5),
        requests.get(f"{GATEWAY}/system/functions", auth=("root", password), timeout=5),
        requests.get(f"{GATEWAY}/system/functions",
                     headers={"Authorization": "Basic !!not-base64"}, timeout=5),
        requests.get(f"{GATEWAY}/system/functions",
                     headers={"Authorization": f"Bearer {password}"}, timeout=5),
        requests.post(f"{GATEWAY}/system/functions", json={"service": "x"}, timeout=5),
        requests.get(f"{GATEWAY}/system/info", timeout=5),
    ]
    for response in strangers:
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert response.headers["Content-Type"] == "application/problem+json"
        assert not any(name in response.text for name in local_stack.functions)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    login = subprocess.run([str(tool("faas-cli")), "login", "--gateway", GATEWAY, "--username",
                            user, "--password-stdin"], input=password, env=env,
                           capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stdout + login.stderr
    listed = subprocess.run([str(tool("faas-cli")), "list", "--gateway", GATEWAY], env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert {line.split()[0] for line in listed.stdout.splitlines()[1:]} == set(
        local_stack.functions)


def _public(stack: Stack) -> str:
    return next(name for name, fn in stack.functions.items() if not fn.event_only)


def test_proxy_reaches_a_function_sub_path(local_stack: Stack) -> None:  # noqa: F811
    name = _public(local_stack)
    assert requests.get(f"{GATEWAY}/function/{name}/_/health", timeout=5).status_code == 200


def test_event_only_functions_have_no_public_endpoint(local_stack: Stack) -> None:  # noqa: F811
    hidden = [name for name, fn in local_stack.functions.items() if fn.event_only]
    assert set(hidden) == {"send-email", "ocr"}
    for name in hidden:
        for prefix in ("function", "async-function"):
            response = requests.post(f"{GATEWAY}/{prefix}/{name}", data=b"{}", timeout=5)
            assert response.status_code == 404, (prefix, name)
            assert "no public endpoint" in response.json()["detail"]


def _answer_to_headers_alone(head: bytes) -> tuple[str, bytes]:
    """The gateway's answer to a request whose body is never sent."""
    with socket.create_connection((paths.HOST, paths.GATEWAY_PORT), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(4096)  # a timeout here: the gateway waited for the body
        head_part, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head_part).group(1))
        while len(body) < length:
            body += sock.recv(4096)
    return head_part.decode(), body


def test_the_servers_own_refusals_are_problem_documents(local_stack: Stack) -> None:  # noqa: F811
    """Waitress's own answers (headers over its limit, a request line that is no HTTP)
    are problem documents, like every other answer."""
    huge = requests.post(f"{GATEWAY}/function/register", data=b"{}", timeout=10,
                         headers={"X-Padding": "a" * (1024 * 1024)})
    assert huge.status_code == 431
    assert huge.headers["Content-Type"] == "application/problem+json"
    assert huge.json()["status"] == 431
    head, body = _answer_to_headers_alone(b"NOT HTTP AT ALL\r\n\r\n")
    assert head.split("\r\n")[0].endswith("400 Bad Request")
    assert "application/problem+json" in head and json.loads(body)["status"] == 400


def test_a_body_over_the_functions_limit_is_refused_before_it_is_passed_on(
        local_stack: Stack) -> None:  # noqa: F811
    """Over the largest limit of any function: refused from the headers, the body never
    sent (it was a plain-text 413 past 64 MiB, and waited for the body below). Over its
    own function's limit: a 413 problem document, declared or chunked."""
    largest = max(f.max_request_bytes for f in local_stack.functions.values())
    limit = local_stack.functions["register"].max_request_bytes
    for prefix in ("function", "async-function"):
        for declared in (largest + 1, 10**15):
            head, body = _answer_to_headers_alone(
                f"POST /{prefix}/register HTTP/1.1\r\nHost: x\r\nContent-Type: "
                f"application/json\r\nContent-Length: {declared}\r\n\r\n".encode())
            assert head.startswith("HTTP/1.1 413") and "application/problem+json" in head
            assert json.loads(body)["status"] == 413
            assert json.loads(body)["detail"] == (f"the body is {declared} bytes; no function "
                                                  f"here accepts more than {largest}")
        for data in (b"x" * (limit + 1), iter([b"x" * limit, b"x"])):
            response = requests.post(f"{GATEWAY}/{prefix}/register", data=data, timeout=10,
                                     headers={"Content-Type": "application/json"})
            assert response.status_code == 413
            assert response.headers["Content-Type"] == "application/problem+json"


def test_slow_clients_do_not_hold_the_gateway(local_stack: Stack) -> None:  # noqa: F811
    """40 clients that send half a request and wait hold none of the gateway's threads
    (a server that reads in its worker threads, tried instead, stopped answering)."""
    slow = [socket.create_connection((paths.HOST, paths.GATEWAY_PORT)) for _ in range(40)]
    try:
        for i, sock in enumerate(slow):
            sock.sendall(b"POST /function/register HTTP/1.1\r\nHost: x\r\n" + (
                b"Content-Length: 1000\r\n\r\n{" if i % 2 else b"X-Slow: 1"))
        assert requests.get(f"{GATEWAY}/healthz", timeout=5).status_code in (200, 503)
    finally:
        for sock in slow:
            sock.close()


def test_one_clients_idle_connections_do_not_lock_others_out(local_stack: Stack) -> None:  # noqa: F811
    """300 half-requests from one address, past waitress's own limit of 100 connections
    (which, reached, stopped the gateway accepting anyone) and past one client's share:
    that client keeps its share, and everyone else is still served."""
    attacker = clients.loopback_address()
    idle = []
    try:
        for _ in range(300):
            sock = socket.create_connection((paths.HOST, paths.GATEWAY_PORT),
                                            source_address=(attacker, 0))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            idle.append(sock)
        time.sleep(0.5)
        someone = clients.session()
        assert someone.get(f"{GATEWAY}/healthz", timeout=5).status_code in (200, 503)
        # Past its share, the attacker's connections were closed at once.
        closed = 0
        for sock in idle:
            sock.settimeout(0.01)
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass  # still open: within its share
        assert closed >= 300 - CONNECTIONS_PER_CLIENT
    finally:
        for sock in idle:
            sock.close()


def test_async_call_is_queued_and_called_back(local_stack: Stack) -> None:  # noqa: F811
    received: list[dict[str, str]] = []
    done = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()
            done.set()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((paths.HOST, paths.CALLBACK_PORT), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name = _public(local_stack)
        response = requests.post(
            f"{GATEWAY}/async-function/{name}/_/health", data=b"{}", timeout=5,
            headers={"X-Callback-Url": f"http://{paths.HOST}:{server.server_port}/cb"})
        assert response.status_code == 202
        assert done.wait(15), "no callback within 15 s"
        assert received[0]["X-Call-Id"] == response.headers["X-Call-Id"]
        assert received[0]["X-Function-Status"].isdigit()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("callback", [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://127.0.0.2:9/",  # a host not on the list
    f"http://{paths.HOST}:{paths.GATEWAY_PORT}/function/register",  # allowed host, other port
    f"http://{paths.HOST}@evil.example/", "file:///etc/passwd", "gopher://127.0.0.1/",
])
def test_callbacks_go_only_to_allowed_hosts(local_stack: Stack, callback: str) -> None:  # noqa: F811
    response = requests.post(f"{GATEWAY}/async-function/{_public(local_stack)}/_/health",
                             data=b"{}", timeout=5, headers={"X-Callback-Url": callback})
    assert response.status_code == 400
    assert "GATEWAY_CALLBACK_HOSTS" in response.json()["detail"]


def test_a_callback_that_redirects_is_not_followed(local_stack: Stack) -> None:  # noqa: F811
    hits: list[str] = []
    done = threading.Event()

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", "/elsewhere")
            self.end_headers()
            done.set()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((paths.HOST, paths.CALLBACK_PORT), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        response = requests.post(
            f"{GATEWAY}/async-function/{_public(local_stack)}/_/health", data=b"{}", timeout=5,
            headers={"X-Callback-Url": f"http://{paths.HOST}:{server.server_port}/cb"})
        assert response.status_code == 202
        assert done.wait(15)
        time.sleep(1)
        assert hits == ["/cb"]  # never /elsewhere
    finally:
        server.shutdown()
        server.server_close()
