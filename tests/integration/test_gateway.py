"""The local gateway's own behaviour, in-process, in front of the running stack's functions:
``/healthz`` is built from each function's ``/_/ready`` (a function whose readiness says
503 makes it degraded and names the dependency, to the administrator only; one report
serves a second's callers), and the metrics, on a port of their own, count invocations
under OpenFaaS's metric names."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from infra.local.gateway import Gateway
from infra.local.pytest_stack import local_stack  # noqa: F401 (fixture)
from infra.local.secretgen import gateway_admin
from infra.local.stackfile import Function, Stack


def _client(stack: Stack) -> Client:
    return Client(Gateway(stack))


def _admin() -> dict[str, str]:
    pair = ":".join(gateway_admin())
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def test_healthz_is_every_functions_readiness(local_stack: Stack) -> None:  # noqa: F811
    response = _client(local_stack).get("/healthz", headers=_admin())
    document = response.get_json()
    assert set(document["functions"]) == set(local_stack.functions)
    assert document["dependencies"]["postgresql"] == "up"
    assert response.status_code == (200 if document["status"] == "ok" else 503)


def test_healthz_checks_the_functions_once_for_a_seconds_callers(
        local_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A flood of health checks is not a flood of readiness calls to every function."""
    gateway = Gateway(local_stack)
    asked: list[str] = []
    readiness = gateway.readiness

    def counted(function: Function) -> Any:
        asked.append(function.name)
        return readiness(function)

    monkeypatch.setattr(gateway, "readiness", counted)
    client = Client(gateway)
    codes = [client.get("/healthz").status_code for _ in range(20)]
    assert set(codes) <= {200, 503} and len(asked) == len(local_stack.functions)


class _NotReady(BaseHTTPRequestHandler):
    """A function whose readiness says its database is down."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "unavailable",
                           "dependencies": {"db": "down: connection refused"}}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def not_ready() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def test_a_function_that_is_not_ready_degrades_healthz(local_stack: Stack,  # noqa: F811
                                                       not_ready: int) -> None:
    sick = Function(name="sick", lang="", handler="", port=not_ready)
    stack = Stack(root=local_stack.root, copy=local_stack.copy,
                  functions={**local_stack.functions, "sick": sick})
    client = _client(stack)
    stranger = client.get("/healthz")
    assert stranger.status_code == 503 and stranger.get_json() == {"status": "degraded"}
    response = client.get("/healthz", headers=_admin())
    document = response.get_json()
    assert response.status_code == 503 and document["status"] == "degraded"
    assert document["functions"]["sick"] == "down"
    assert document["dependencies"]["postgresql"] == "down"


def _samples(text: str, name: str) -> dict[tuple[str, str], float]:
    return {(s.labels["function_name"], s.labels["code"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name}


def test_metrics_count_invocations_with_openfaas_names(local_stack: Stack) -> None:  # noqa: F811
    client = _client(local_stack)
    assert client.get("/metrics").status_code == 404  # not on the public port
    metrics = Client(make_wsgi_app())  # what GATEWAY_METRICS_PORT serves
    name = next(n for n, fn in local_stack.functions.items() if not fn.event_only)
    before = _samples(metrics.get("/metrics").get_data(as_text=True),
                      "gateway_function_invocation_total")
    status = client.get(f"/function/{name}/openapi.json").status_code
    text = metrics.get("/metrics").get_data(as_text=True)
    after = _samples(text, "gateway_function_invocation_total")
    key = (f"{name}.openfaas-fn", str(status))
    assert after[key] == before.get(key, 0) + 1
    assert _samples(text, "gateway_functions_seconds_count")[key] >= 1
