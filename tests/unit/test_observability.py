"""What a function tells an operator: Prometheus metrics by route, status and delivery
outcome, login outcomes and OCR pages, and OpenTelemetry spans exported over OTLP/HTTP
that continue the caller's trace."""

from __future__ import annotations

import dataclasses
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import REGISTRY

from infra.local.secretgen import ensure_secrets
from scanline import errors, tracing
from scanline.bootstrap import Container
from scanline.payloads import EmailRequested
from scanline.runtime import Response, Routes, metrics
from scanline.runtime.app import create_app
from scanline.secrets import EVENT_KEYRING, SEAL_PUBLIC_KEY, event_key_secret
from scanline.settings import Settings
from tests.support.signing import signed_data

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def handler_module() -> types.ModuleType:
    routes = Routes()

    @routes.http("/things/<int:thing>", "GET")
    def thing(thing: int) -> dict[str, int]:
        if thing == 0:
            raise errors.NotFound("no thing 0")
        return {"thing": thing}

    @routes.http("/login", "POST")
    def login() -> dict[str, str]:
        with metrics.login_outcome():
            raise errors.OAuthError("invalid_grant", "wrong address or password")

    @routes.event(EmailRequested, inbox=False)
    def mail(event: EmailRequested) -> Response:
        return Response({"to": event.to})

    module = types.ModuleType("handler")
    module.routes = routes  # type: ignore[attr-defined]
    return module


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    ensure_secrets([event_key_secret("issue-otp"), EVENT_KEYRING, SEAL_PUBLIC_KEY], tmp_path)
    return tmp_path


@pytest.fixture
def client(secrets: Path) -> Iterator[FlaskClient]:
    container = Container(Settings.from_env({"FUNCTION_NAME": "observed",
                                             "SECRETS_DIR": str(secrets)}))
    yield create_app(handler_module(), container).test_client()
    container.close()


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_plain_calls_are_counted_by_route_rule_and_status(client: FlaskClient) -> None:
    ok = value("scanline_http_requests_total", route="/things/<int:thing>", method="GET",
               status="200")
    missing = value("scanline_http_requests_total", route="/things/<int:thing>",
                    method="GET", status="404")
    assert client.get("/things/3").status_code == 200
    assert client.get("/things/0").status_code == 404
    assert client.get("/_/health").status_code == 200  # probes are not operations
    assert value("scanline_http_requests_total", route="/things/<int:thing>", method="GET",
                 status="200") == ok + 1
    assert value("scanline_http_requests_total", route="/things/<int:thing>", method="GET",
                 status="404") == missing + 1
    assert value("scanline_http_request_seconds_count", route="/things/<int:thing>") >= 2


def test_deliveries_are_counted_by_type_and_outcome(client: FlaskClient, secrets: Path) -> None:
    payload = EmailRequested(to="a@example.com", subject="Hi", text="hello")
    event = signed_data(payload.TYPE, payload.to_data(), "issue-otp", secrets_dir=secrets)
    forged = dataclasses.replace(event, data={**event.data, "key": "A" * 43})
    kinds = {"type": payload.TYPE}
    done, rejected = (value("scanline_event_deliveries_total", **kinds, outcome=o)
                      for o in ("done", "rejected"))
    headers = {"Content-Type": "application/cloudevents+json"}
    assert client.post("/", data=event.to_structured(), headers=headers).status_code == 200
    assert client.post("/", data=forged.to_structured(), headers=headers).status_code == 401
    assert value("scanline_event_deliveries_total", **kinds, outcome="done") == done + 1
    assert value("scanline_event_deliveries_total", **kinds, outcome="rejected") == rejected + 1


@pytest.mark.parametrize(("status", "duplicate", "outcome"), [
    (200, False, "done"), (200, True, "duplicate"), (401, False, "rejected"),
    (422, False, "rejected"), (429, False, "retry"), (503, False, "retry")])
def test_the_broker_contract_names_each_outcome(status: int, duplicate: bool,
                                                outcome: str) -> None:
    assert metrics.delivery_outcome(status, duplicate) == outcome


def test_logins_and_ocr_pages_are_counted(client: FlaskClient) -> None:
    failed = value("scanline_logins_total", outcome="bad-credentials")
    assert client.post("/login").status_code == 400
    assert value("scanline_logins_total", outcome="bad-credentials") == failed + 1
    pages = value("scanline_ocr_pages_total", engine="tesseract")
    metrics.ocr_page("tesseract", 0.25)
    assert value("scanline_ocr_pages_total", engine="tesseract") == pages + 1


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps every exported span."""

    spans: list[Any] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    handler = type("Collector", (_Collector,), {"spans": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setattr(tracing, "_state", {})
    assert tracing.configure("observed", endpoint)
    yield handler.spans
    tracing.shutdown()
    server.shutdown()


def test_a_call_is_a_span_of_the_callers_trace_exported_over_otlp(
        client: FlaskClient, collector: list[Any]) -> None:
    assert client.get("/things/7", headers={"traceparent": PARENT}).status_code == 200
    tracing.shutdown()  # flushes the batch
    (span,) = [s for s in collector if s.name == "GET /things/<int:thing>"]
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT.split("-")[2]


def test_without_an_endpoint_nothing_is_traced() -> None:
    assert tracing.configure("observed", "") is False
    with tracing.span("x", PARENT) as traceparent:
        assert traceparent is None
