"""The runtime enforces what a handler module declares: routing, schemas, tokens, event
signatures, and the 200/4xx/5xx contract. The handler here records what its views got."""

from __future__ import annotations

import dataclasses
import io
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from infra.local.secretgen import ensure_secrets
from scanline import errors
from scanline.auth import Claims
from scanline.bootstrap import Container
from scanline.events import Event, new_event
from scanline.payloads import EmailRequested, UserRegistered
from scanline.runtime import Response, Routes
from scanline.runtime.app import Function, create_app
from scanline.runtime.injection import StartupError
from scanline.secrets import EVENT_KEYRING, SEAL_PUBLIC_KEY, event_key_secret
from scanline.settings import Settings
from scanline.signing import source_of
from tests.support.signing import sign, signed_data

NAME = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}},
        "required": ["name"], "additionalProperties": False}
UPLOAD = {"type": "object", "required": ["file"],
          "properties": {"file": {"type": "string", "contentMediaType": "image/png"}}}
UNIFORM = 0.5
seen: list[Any] = []


class NothingRevoked:
    """Stands in for the revocation list, which polls PostgreSQL (integration tests)."""

    def is_revoked(self, session_id: str) -> bool:
        return False


def handler_module() -> types.ModuleType:
    routes = Routes()

    @routes.http("/greet", "POST", body={"application/json": NAME,
                                         "application/x-www-form-urlencoded": NAME})
    def greet(body: dict[str, Any]) -> Response:
        return Response({"hello": body["name"]}, status=202)

    @routes.http("/even", "POST", body={"application/json": NAME}, uniform_time=True)
    def even(body: dict[str, Any]) -> Response:
        if body["name"] == "taken":
            raise errors.Conflict("already there")
        return Response({"hello": body["name"]}, status=202)

    @routes.http("/items/<int:item>", "GET", query={"limit": {"type": "integer", "maximum": 9}})
    def item(item: int, query: dict[str, Any]) -> dict[str, Any]:
        return {"item": item, "query": query}

    @routes.http("/mine", "GET", auth=True)
    def mine(caller: Claims) -> dict[str, Any]:
        return {"sub": caller.subject}

    @routes.http("/upload", "POST", body={"multipart/form-data": UPLOAD})
    def upload(files: dict[str, Any]) -> dict[str, Any]:
        return {"file": files["file"].read().decode()}

    @routes.http("/boom", "POST")
    def boom() -> None:
        raise RuntimeError("secret internals")

    @routes.http("/conflict", "POST")
    def conflict() -> None:
        raise errors.Conflict("already there")

    @routes.event(EmailRequested, inbox=False)
    def mail(event: EmailRequested, envelope: Event) -> Response:
        seen.append((event, envelope))
        return Response({"to": event.to}, status=202)

    module = types.ModuleType("handler")
    module.routes = routes  # type: ignore[attr-defined]
    return module


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    ensure_secrets([event_key_secret("issue-otp"), event_key_secret("send-email"),
                    EVENT_KEYRING, "jwt-signing-key", SEAL_PUBLIC_KEY], tmp_path)
    return tmp_path


@pytest.fixture
def container(secrets: Path) -> Iterator[Container]:
    settings = Settings.from_env({"FUNCTION_NAME": "echo", "SECRETS_DIR": str(secrets),
                                  "MAX_REQUEST_BYTES": "8192",
                                  "UNIFORM_ANSWER_SECONDS": str(UNIFORM)})
    built = Container(settings, replace={"revocations": NothingRevoked()})
    yield built
    built.close()


@pytest.fixture
def client(container: Container) -> FlaskClient:
    seen.clear()
    return create_app(handler_module(), container).test_client()


def mail_event(secrets: Path, producer: str = "issue-otp", **changes: Any) -> Event:
    payload = EmailRequested(to="a@example.com", subject="Hi", text="hello")
    data = changes.pop("data", payload.to_data())
    return signed_data(payload.TYPE, data, producer, secrets_dir=secrets, **changes)


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.content_type == "application/problem+json"
    return r.json


# ---- plain calls ------------------------------------------------------------------------

def test_json_and_form_bodies_are_checked_and_handed_over(client: FlaskClient) -> None:
    assert client.post("/greet", json={"name": "Ann"}).json == {"hello": "Ann"}
    assert client.post("/greet", data={"name": "Bo"}).status_code == 202
    assert problem(client.post("/greet", json={"name": "far too long"}), 422)["errors"]
    assert problem(client.post("/greet", json={"name": "A", "extra": 1}), 422)["errors"]
    assert "takes" in problem(client.post("/greet", data=b"x", content_type="text/plain"),
                              415)["detail"]


def test_a_uniform_time_operation_holds_every_answer_and_error_until_its_time(
        client: FlaskClient) -> None:
    def timed(path: str, **options: Any) -> tuple[int, float]:
        started = time.monotonic()
        status = client.post(path, **options).status_code
        return status, time.monotonic() - started

    answers = [timed("/even", json={"name": "Ann"}), timed("/even", json={"name": "taken"}),
               timed("/even", json={"name": "far too long"})]
    assert [status for status, _ in answers] == [202, 409, 422]
    assert all(took >= UNIFORM for _, took in answers), answers
    # Other operations of the same function answer as soon as they are done.
    assert timed("/greet", json={"name": "Ann"})[1] < UNIFORM


def test_query_values_are_converted_to_their_schema_types_then_checked(
        client: FlaskClient) -> None:
    assert client.get("/items/3?limit=4&cachebuster=1").json == {"item": 3,
                                                                 "query": {"limit": 4}}
    problem(client.get("/items/3?limit=10"), 422)
    problem(client.get("/items/3?limit=four"), 422)
    problem(client.get("/items/x"), 404)
    assert problem(client.delete("/items/3"), 405)


def test_auth_routes_verify_the_bearer_token_before_the_view(
        client: FlaskClient, container: Container) -> None:
    token = container.signer.issue("user-1", "session-1")
    r = client.get("/mine", headers={"Authorization": f"Bearer {token}"})
    assert r.json == {"sub": "user-1"}
    assert problem(client.get("/mine"), 401)
    assert problem(client.get("/mine", headers={"Authorization": f"Bearer {token}x"}), 401)


def test_multipart_file_parts_are_required_by_the_schema(client: FlaskClient) -> None:
    r = client.post("/upload", data={"file": (io.BytesIO(b"bytes"), "a.png")},
                    content_type="multipart/form-data")
    assert r.json == {"file": "bytes"}
    problem(client.post("/upload", data={"other": "x"}, content_type="multipart/form-data"), 422)


@pytest.mark.parametrize("body", [
    b"[" * 1100 + b"]" * 1100,  # RecursionError in json.loads
    b'{"name": ' + b"9" * 5000 + b"}",  # beyond int/str conversion's limit
    b'{"name": NaN}', b'{"name": 1e999}', b'{"name": 9007199254740993}',
    b"\xff\xfe", b"{nope",
])
def test_hostile_json_is_a_400_not_a_500(client: FlaskClient, body: bytes) -> None:
    problem(client.post("/greet", data=body, content_type="application/json"), 400)


def test_errors_are_problems_and_crashes_tell_nothing(client: FlaskClient) -> None:
    r = client.post("/conflict")
    assert (r.status_code, r.json["detail"]) == (409, "already there")
    r = client.post("/boom")
    assert r.status_code == 500 and "secret internals" not in r.get_data(as_text=True)
    problem(client.post("/greet", data=b"x" * 9000, content_type="application/json"), 413)


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/_/health").status_code == 200
    # The handler consumes events: readiness checks the keyring it verifies them with, and
    # the key that opens the sealed ones.
    assert client.get("/_/ready").json == {
        "status": "ok", "dependencies": {"event-keyring": "up", "seal-key": "up"}}


# ---- event deliveries -------------------------------------------------------------------

def test_a_signed_event_reaches_its_handler_as_a_payload_and_2xx_becomes_200(
        client: FlaskClient, secrets: Path) -> None:
    event = mail_event(secrets)
    headers, body = event.to_binary()
    r = client.post("/", data=body, headers=headers)
    assert (r.status_code, r.json) == (200, {"to": "a@example.com"})
    payload, envelope = seen[-1]
    assert isinstance(payload, EmailRequested) and envelope.id == event.id
    for content_type in ("application/cloudevents+json", "text/plain"):
        r = client.post("/", data=event.to_structured(), content_type=content_type)
        assert r.status_code == 200


def test_unsigned_tampered_foreign_and_misattributed_events_are_401(
        client: FlaskClient, secrets: Path) -> None:
    good = mail_event(secrets)
    unsigned = dataclasses.replace(good, extensions={"traceparent": good.traceparent})
    tampered = dataclasses.replace(good, data={**good.data, "to": "evil@example.com"})
    moved = dataclasses.replace(good, subject="someone-else")
    # send-email holds a valid key, but may not ask for mail.
    foreign = mail_event(secrets, producer="send-email")
    # The right key, but claiming to come from another function.
    renamed = dataclasses.replace(good, source=source_of("register"))
    for event in (unsigned, tampered, moved, foreign, renamed):
        r = client.post("/", data=event.to_structured(),
                        content_type="application/cloudevents+json")
        assert problem(r, 401)["type"].endswith("event-not-trusted")
    assert seen == []


def test_an_event_outside_the_replay_window_is_401(client: FlaskClient, secrets: Path,
                                                   container: Container) -> None:
    old = mail_event(secrets, time=container.clock.now().replace(year=2020))
    problem(client.post("/", data=old.to_structured(),
                        content_type="application/cloudevents+json"), 401)


def test_signed_events_of_other_types_or_with_bad_data_are_4xx(
        client: FlaskClient, secrets: Path) -> None:
    other = sign(new_event(UserRegistered.TYPE, {"registration_id": "x"},
                           source=source_of("issue-otp")), "issue-otp", secrets)
    # issue-otp may not emit user.registered: refused before the type is even looked up.
    problem(client.post("/", data=other.to_structured(),
                        content_type="application/cloudevents+json"), 401)
    bad = mail_event(secrets, data={"to": "a@example.com", "subject": "x\r\nBcc: all@x.com",
                                    "text": "t"})
    errors_ = problem(client.post("/", data=bad.to_structured(),
                                  content_type="application/cloudevents+json"), 422)["errors"]
    assert errors_[0]["pointer"] == "/subject"


@pytest.mark.parametrize(("headers", "body"), [
    ({"ce-id": "x", "ce-source": "/t", "ce-type": EmailRequested.TYPE}, b"{}"),
    ({"Content-Type": "application/cloudevents+json"}, b'{"specversion": "1.0", "id": '),
    ({"Content-Type": "application/cloudevents+json"},
     b'{"specversion":"1.0","id":"a","source":"/s","type":"t","data":' + b"[" * 1100
     + b"]" * 1100 + b"}"),
])
def test_malformed_envelopes_are_400(client: FlaskClient, headers: dict[str, str],
                                     body: bytes) -> None:
    problem(client.post("/", data=body, headers=headers), 400)


# ---- start-up ---------------------------------------------------------------------------

def test_a_view_asking_for_an_unknown_dependency_fails_at_start(container: Container) -> None:
    routes = Routes()

    @routes.http("/", "GET")
    def view(databse: object) -> None:  # a typo
        """Never called."""

    module = types.ModuleType("handler")
    module.routes = routes  # type: ignore[attr-defined]
    with pytest.raises(StartupError, match="databse"):
        create_app(module, container)


def test_caller_is_only_for_operations_that_require_a_token(container: Container) -> None:
    routes = Routes()

    @routes.http("/", "GET")
    def view(caller: Claims) -> None:
        """Never called."""

    module = types.ModuleType("handler")
    module.routes = routes  # type: ignore[attr-defined]
    with pytest.raises(StartupError, match="caller"):
        create_app(module, container)


def test_readiness_follows_what_the_views_use(container: Container) -> None:
    routes = Routes()

    @routes.http("/", "POST", emits=[EmailRequested])
    def view(uow: object, store: object) -> None:
        """Never called."""

    module = types.ModuleType("handler")
    module.routes = routes  # type: ignore[attr-defined]
    assert Function(module, container).readiness == ("db", "store", "bus", "event-signing-key",
                                                     "seal-public-key")
