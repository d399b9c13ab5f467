"""The connector's decisions: how much it takes per function, how it answers a busy one,
and how Knative's dead letters are named and explained."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pika.spec import Basic, BasicProperties

from infra.connector import trigger
from infra.connector.amqp import Outcome, Verdict
from infra.connector.deadletter_sink import UNROUTED, reason_of, subscriber_of
from infra.generate.common import dns_label, image_tag, sibling_image
from infra.local.stackfile import Function


def _function(**environment: str) -> Function:
    return Function(name="fn", lang="", handler="", port=0, environment=environment,
                    labels={"com.openfaas.scale.max": "4"})


def test_prefetch_is_what_the_function_replicas_can_take_at_once() -> None:
    assert trigger.prefetch_for(_function(max_inflight="4"), 8, "1") == 4
    assert trigger.prefetch_for(_function(max_inflight="4"), 8, "max") == 16
    assert trigger.prefetch_for(_function(), 8, "max") == 32
    assert trigger.prefetch_for(_function(), 8, "2") == 16


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.ACK), (204, Outcome.ACK), (400, Outcome.DEAD_LETTER),
    (401, Outcome.DEAD_LETTER), (415, Outcome.DEAD_LETTER), (408, Outcome.RETRY),
    (429, Outcome.RETRY), (500, Outcome.RETRY), (503, Outcome.RETRY), (504, Outcome.RETRY)])
def test_answers_map_onto_the_broker(status: int, outcome: Outcome) -> None:
    assert trigger.outcome_for(status) is outcome


class _Busy(BaseHTTPRequestHandler):
    """429 for the first ``busy`` calls, then 200: a function at its max_inflight."""

    busy = 0
    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        status = 429 if type(self).calls <= type(self).busy else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_function() -> Iterator[tuple[ThreadingHTTPServer, type[_Busy]]]:
    handler = type("Busy", (_Busy,), {"busy": 2, "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()


def _deliver(deliverer: trigger.Deliverer) -> Outcome | Verdict:
    method = Basic.Deliver(routing_key="io.scanline.test.v1")
    return deliverer(method, BasicProperties(message_id="m1", headers={}), b"{}")


def test_a_busy_function_is_asked_again_without_spending_a_delivery(busy_function, monkeypatch
                                                                    ) -> None:
    server, handler = busy_function
    monkeypatch.setenv("FUNCTION_URL_TEMPLATE", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setattr(trigger, "backoff", lambda attempt: 0.01)
    verdict = _deliver(trigger.Deliverer(_function(exec_timeout="5s"), timeout=5))
    assert verdict == Verdict(Outcome.ACK, "")
    assert handler.calls == 3  # two 429s waited out, then done: one delivery


def test_a_function_busy_past_the_patience_is_redelivered(busy_function, monkeypatch) -> None:
    server, handler = busy_function
    handler.busy = 1000
    monkeypatch.setenv("FUNCTION_URL_TEMPLATE", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setattr(trigger, "backoff", lambda attempt: 0.01)
    deliverer = trigger.Deliverer(_function(exec_timeout="5s"), timeout=5, busy_patience=0.1)
    verdict = _deliver(deliverer)
    assert isinstance(verdict, Verdict) and verdict.outcome is Outcome.RETRY
    assert verdict.reason.startswith("429")


def test_the_timeout_covers_the_functions_exec_timeout() -> None:
    assert trigger.Deliverer(_function(exec_timeout="120s"), timeout=30).timeout == 125
    assert trigger.Deliverer(_function(exec_timeout="5s"), timeout=30).timeout == 30


def test_knative_dead_letters_are_filed_under_their_subscriber() -> None:
    known = ["ocr", "send-email"]
    assert subscriber_of("http://ocr.scanline.svc.cluster.local", known) == "ocr"
    assert subscriber_of("http://send-email.scanline.svc.cluster.local/", known) == "send-email"
    assert subscriber_of("http://other.example/", known) == UNROUTED
    assert subscriber_of("", known) == UNROUTED


def test_knative_dead_letters_keep_the_functions_problem_detail() -> None:
    problem = base64.b64encode(json.dumps({"detail": "bad signature"}).encode()).decode()
    assert reason_of({"knativeerrorcode": "401", "knativeerrordata": problem}) == \
        "401 bad signature"
    assert reason_of({"knativeerrorcode": "500", "knativeerrordata": "not base64!"}) == \
        "500 not base64!"
    assert reason_of({}) == "dead-lettered by the Knative broker"


def test_release_images_follow_the_functions_registry_and_tag() -> None:
    fn = Function(name="register", lang="", handler="", port=0,
                  image="registry.example:5000/team/register:v1.2")
    assert sibling_image(fn, "scanline-connector") == \
        "registry.example:5000/team/scanline-connector:v1.2"
    assert image_tag(fn) == "v1.2"
    untagged = Function(name="register", lang="", handler="", port=0,
                        image="registry.example:5000/team/register")
    assert image_tag(untagged) == "latest"
    assert dns_label("V1.2.0+build_7") == "v1-2-0-build-7"


def test_a_pod_relays_out_exactly_the_ports_its_environment_names() -> None:
    from infra.local.pod import contained, outward_ports

    env = {"DATABASE_URL": "postgresql+pg8000://scanline@127.0.0.1:5432/scanline",
           "RABBITMQ_URL": "amqp://scanline@127.0.0.1:5672/%2F",
           "S3_ENDPOINT_URL": "http://127.0.0.1:9000", "SMTP_HOST": "127.0.0.1",
           "SMTP_PORT": "1025", "JWKS_URL": "http://127.0.0.1:8080/function/token/jwks.json",
           "upstream_url": "http://127.0.0.1:8105", "PUBLIC_URL": "https://example.com",
           "OCR_CALLBACK_HOSTS": "127.0.0.1:8099,hooks.example.com:443"}
    assert outward_ports(env) == {5432, 5672, 9000, 1025, 8080, 8099}
    command = contained(Path("/bin/watchdog"))
    assert command[-1] == "/bin/watchdog" and "--kill-child" in command
    assert command[1:3] == ["--pdeathsig", "KILL"]
