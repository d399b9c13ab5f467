"""The template's request → CloudEvent → response mapping, with a handler that echoes."""

import io
import json
import types
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from scanline import errors, events
from scanline.bootstrap import Container
from scanline.events import Event
from scanline.runtime import Context, Response
from scanline.runtime.app import create_app
from scanline.settings import Settings


def echo(event: Event, context: Context) -> Any:
    if event.data == {"raise": "conflict"}:
        raise errors.Conflict("already there")
    if event.data == {"raise": "boom"}:
        raise RuntimeError("secret internals")
    return Response({"id": event.id, "type": event.type, "data": event.data,
                     "synthesised": event.synthesised, "path": context.path,
                     "files": {k: f.read().decode() for k, f in context.files.items()}},
                    status=202)


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    handler = types.ModuleType("handler")
    handler.handle = echo  # type: ignore[attr-defined]
    settings = Settings.from_env({"FUNCTION_NAME": "echo", "SECRETS_DIR": str(tmp_path),
                                  "MAX_REQUEST_BYTES": "4096"})
    return create_app(handler, Container(settings)).test_client()


CE = {"ce-id": "abc", "ce-source": "/test", "ce-type": events.EMAIL_REQUESTED,
      "ce-specversion": "1.0"}


def test_binary_event_is_a_delivery_and_2xx_becomes_200(client: FlaskClient) -> None:
    r = client.post("/", headers=CE, json={"x": 1})
    assert r.status_code == 200
    assert r.json == {"id": "abc", "type": events.EMAIL_REQUESTED, "data": {"x": 1},
                      "synthesised": False, "path": "/", "files": {}}


@pytest.mark.parametrize("content_type", ["application/cloudevents+json", "text/plain"])
def test_structured_event_also_when_sent_as_text_plain(client: FlaskClient,
                                                       content_type: str) -> None:
    body = {"id": "s-1", "source": "/t", "type": events.USER_REGISTERED, "specversion": "1.0",
            "data": {"u": 1}}
    r = client.post("/", data=json.dumps(body), content_type=content_type)
    assert r.status_code == 200 and r.json["id"] == "s-1" and r.json["data"] == {"u": 1}


def test_plain_json_call_gets_a_fresh_event_and_its_own_status(client: FlaskClient) -> None:
    first = client.post("/sub/path", json={"email": "a@b.c"})
    second = client.post("/sub/path", json={"email": "a@b.c"})
    assert first.status_code == 202 and first.json["synthesised"] is True
    assert first.json["type"] == events.HTTP_REQUEST and first.json["path"] == "/sub/path"
    assert first.json["id"] != second.json["id"]


def test_form_and_multipart_calls(client: FlaskClient) -> None:
    r = client.post("/", data={"grant_type": "password", "username": "u"})
    assert r.json["data"] == {"grant_type": "password", "username": "u"}
    r = client.post("/", data={"file": (io.BytesIO(b"bytes"), "a.png"), "note": "n"},
                    content_type="multipart/form-data")
    assert r.json["files"] == {"file": "bytes"} and r.json["data"] == {"note": "n"}


@pytest.mark.parametrize(("headers", "body", "detail"), [
    ({k: v for k, v in CE.items() if k != "ce-id"}, b"{}", "id"),
    ({**CE, "ce-time": "not-a-time"}, b"{}", "invalid CloudEvent"),
    ({"Content-Type": "application/cloudevents+json"}, b"garbage", "not valid JSON"),
    ({"Content-Type": "application/cloudevents+json"}, b"[1]", "JSON object"),
    ({"Content-Type": "application/json"}, b"{nope", "not valid JSON"),
])
def test_bad_events_and_bodies_are_400_problems(client: FlaskClient, headers: dict[str, str],
                                                body: bytes, detail: str) -> None:
    r = client.post("/", headers=headers, data=body)
    assert r.status_code == 400
    assert r.content_type == "application/problem+json"
    assert detail in r.json["detail"] and r.json["status"] == 400


def test_body_over_the_limit_is_413_problem(client: FlaskClient) -> None:
    r = client.post("/", data=b"x" * 5000, content_type="application/json")
    assert r.status_code == 413 and r.content_type == "application/problem+json"


def test_domain_errors_and_crashes_map_to_problems(client: FlaskClient) -> None:
    r = client.post("/", json={"raise": "conflict"})
    assert (r.status_code, r.json["title"], r.json["detail"]) == (409, "Conflict", "already there")
    r = client.post("/", json={"raise": "boom"})
    assert r.status_code == 500 and "secret internals" not in r.get_data(as_text=True)


def test_health_needs_no_dependency(client: FlaskClient) -> None:
    assert client.get("/_/health").status_code == 200
    assert client.get("/_/ready").json == {"status": "ok", "dependencies": {}}

