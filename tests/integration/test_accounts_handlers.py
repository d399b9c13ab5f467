"""The four account functions in-process (the template's app + handler) against the real
PostgreSQL and RabbitMQ, with a clock the test moves. Each protection of issue 3 has a test
here that fails if the protection is removed."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from scanline import events
from scanline.adapters.accounts_tables import otp_codes, refresh_tokens, users
from scanline.bootstrap import Container
from scanline.clock import FixedClock
from scanline.domain import otp
from scanline.domain.rate_limits import ACCOUNT_EXISTS_MAIL, LOGIN_FAILURES
from scanline.payloads import EmailRequested, UserRegistered, UserVerified
from scanline.runtime.app import create_app
from tests.support.broker import EventTap, Received
from tests.support.signing import signed, signed_data

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
PASSWORD = "correct horse battery staple"


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"accounts_{name.replace('-', '_')}",
                                                  FUNCTIONS / name / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLERS = {name: load_handler(name) for name in ("register", "issue-otp", "verify-otp", "token")}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def deps(container: Container, clock: FixedClock) -> Iterator[Container]:
    built = Container(container.settings, clock=clock)
    yield built
    built.close()


Client = Callable[[str], FlaskClient]


@pytest.fixture
def client(deps: Container) -> Iterator[Client]:
    """``client("verify-otp")``: a test client of that function, on the test's clock."""
    containers: dict[str, Container] = {}

    def get(name: str) -> FlaskClient:
        if name not in containers:
            containers[name] = Container(
                dataclasses.replace(deps.settings, function_name=name), clock=deps.clock)
        return create_app(HANDLERS[name], containers[name]).test_client()
    yield get
    for built in containers.values():
        built.close()


def address() -> str:
    return f"itest-{uuid.uuid4().hex[:12]}@example.com"


def create_user(deps: Container, email: str, *, verified: bool = False,
                password: str = PASSWORD) -> uuid.UUID:
    password_hash = deps.passwords.hash(password)
    with deps.unit_of_work() as uow:
        user_id = uow.users.create(email=email, name="Itest User",
                                   password_hash=password_hash, now=deps.clock.now())
        assert user_id is not None
        if verified:
            uow.users.mark_verified(user_id, deps.clock.now())
    return user_id


def mails_to(received: Received, email: str) -> list[events.Event]:
    return [e for e in received.events
            if e.type == EmailRequested.TYPE and e.data.get("to") == email]


def request_code(client: Client, tap: EventTap, email: str) -> str:
    with tap.listen(EmailRequested.TYPE) as received:
        r = client("issue-otp").post("/", json={"email": email})
        assert r.status_code == 202, r.json
        mail = received.wait_until(lambda e: e.data.get("to") == email)
    return mail.data["text"].split("code is ")[1][:6]


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "application/problem+json"
    return r.json


# ---- register --------------------------------------------------------------------------

def test_register_new_and_existing_get_the_same_answer_and_different_mail(
        client: Client, deps: Container, tap: EventTap, clock: FixedClock) -> None:
    email = address()
    with tap.listen(UserRegistered.TYPE, EmailRequested.TYPE) as received:
        first = client("register").post("/", json={"name": "Alice", "email": email,
                                                   "password": PASSWORD})
        clock.advance(seconds=ACCOUNT_EXISTS_MAIL.window.total_seconds())
        second = client("register").post("/", json={"name": "Mallory",
                                                    "email": email.upper(),
                                                    "password": "another long password"})
        registered = received.wait_until(lambda e: e.type == UserRegistered.TYPE
                                         and e.data["email"] == email)
        # (The stack's own issue-otp also mails this address a code, for the first call.)
        exists = received.wait_until(lambda e: e.type == EmailRequested.TYPE
                                     and e.data["to"] == email and "already" in e.data["subject"])
    assert (first.status_code, first.json) == (second.status_code, second.json) == (
        202, {"status": "pending_verification"})
    assert first.headers.get("Content-Type") == second.headers.get("Content-Type")
    assert set(registered.data) == {"user_id", "email"} and registered.subject == registered.data[
        "user_id"]
    assert PASSWORD not in json.dumps(registered.data)
    assert "sign in" in exists.data["text"].lower()
    with deps.db.connect() as conn:
        rows = conn.execute(sa.select(users).where(sa.func.lower(users.c.email) == email)).all()
    assert len(rows) == 1 and rows[0].name == "Alice" and rows[0].verified_at is None
    assert rows[0].password_hash.startswith("$argon2id$") and PASSWORD not in rows[0].password_hash


def test_account_exists_mail_is_limited_per_address(client: Client, deps: Container,
                                                    tap: EventTap, clock: FixedClock) -> None:
    email = address()
    create_user(deps, email)
    register = client("register")
    body = {"name": "Spammer", "email": email, "password": PASSWORD}
    with tap.listen(EmailRequested.TYPE) as received:
        answers = {register.post("/", json=body).status_code for _ in range(3)}
        clock.advance(seconds=ACCOUNT_EXISTS_MAIL.window.total_seconds())
        answers.add(register.post("/", json=body).status_code)
        received.wait_until(lambda e: len(mails_to(received, email)) == 2)
        time.sleep(1.0)
        assert len(mails_to(received, email)) == 2
    assert answers == {202}


def test_register_takes_as_long_for_an_existing_address(client: Client, deps: Container) -> None:
    email = address()
    create_user(deps, email)
    register = client("register")

    def timed(target: str) -> float:
        started = time.perf_counter()
        r = register.post("/", json={"name": "N", "email": target, "password": PASSWORD})
        assert r.status_code == 202
        return time.perf_counter() - started

    new = statistics.median(timed(address()) for _ in range(5))
    existing = statistics.median(timed(email) for _ in range(5))
    assert existing > 0.7 * new, (existing, new)


def test_concurrent_registrations_of_one_address_make_one_user(client: Client,
                                                               deps: Container) -> None:
    email = address()
    statuses: list[int] = []
    variants = [email, email.upper(), email.capitalize(), email.title()] * 2

    register = client("register").application

    def attempt(variant: str) -> None:
        r = register.test_client().post("/", json={"name": "Racer", "email": variant,
                                                   "password": PASSWORD})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in variants]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [202] * len(variants)
    with deps.db.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(users)
                             .where(sa.func.lower(users.c.email) == email)).scalar_one()
    assert count == 1


@pytest.mark.parametrize("body", [
    {"email": "a@example.com", "password": PASSWORD},
    {"name": "N", "email": "a@example.com", "password": PASSWORD, "admin": True},
    {"name": 1, "email": "a@example.com", "password": PASSWORD},
    {"name": "N", "email": ["a@example.com"], "password": PASSWORD},
    {"name": "N", "email": "not-an-address", "password": PASSWORD},
    {"name": "N", "email": "a@example.com", "password": "short"},
    {"name": "N", "email": "a@example.com", "password": "Password"},
    {"name": "N", "email": "a@example.com", "password": "x" * 10_000},
    [], "text",
])
def test_register_bad_input_is_422_and_creates_nothing(client: Client, deps: Container,
                                                       body: Any) -> None:
    started = time.perf_counter()
    r = client("register").post("/", json=body)
    assert problem(r, 422)["status"] == 422
    assert time.perf_counter() - started < 0.05  # refused before any hashing
    with deps.db.connect() as conn:
        assert conn.execute(sa.select(users.c.id).where(
            users.c.email == "a@example.com")).first() is None


def test_register_refuses_non_json_oversized_and_get(client: Client) -> None:
    register = client("register")
    assert problem(register.post("/", data="{nope", content_type="application/json"),
                   400)["status"] == 400
    big = {"name": "N", "email": "a@example.com", "password": PASSWORD, "pad": "x" * 70_000}
    assert problem(register.post("/", json=big), 413)["status"] == 413
    assert problem(register.get("/"), 405)["status"] == 405


# ---- issue-otp -------------------------------------------------------------------------

def test_code_is_mailed_to_unverified_accounts_only_with_the_same_answer(
        client: Client, deps: Container, tap: EventTap) -> None:
    pending, verified, unknown = address(), address(), address()
    create_user(deps, pending)
    create_user(deps, verified, verified=True)
    with tap.listen(EmailRequested.TYPE) as received:
        answers = [client("issue-otp").post("/", json={"email": e})
                   for e in (pending.upper(), verified, unknown)]
        mail = received.wait_until(lambda e: e.data.get("to") == pending)
        time.sleep(1.0)
        assert mails_to(received, verified) == mails_to(received, unknown) == []
    assert {(r.status_code, json.dumps(r.json)) for r in answers} == {
        (202, json.dumps({"status": "otp_sent"}))}
    code = mail.data["text"].split("code is ")[1][:6]
    assert code.isdigit() and len(code) == 6
    with deps.db.connect() as conn:
        row = conn.execute(sa.select(otp_codes).join(users).where(users.c.email == pending)).one()
    assert code.encode() not in row.digest and code not in row.digest.hex()
    assert row.digest == otp.digest(deps.otp_key, str(row.user_id), code)
    assert row.expires_at == deps.clock.now() + timedelta(minutes=10)


def test_one_code_per_address_per_minute_known_or_not(client: Client, deps: Container,
                                                      clock: FixedClock) -> None:
    known, unknown = address(), address()
    create_user(deps, known)
    issue = client("issue-otp")
    for email in (known, unknown):
        assert issue.post("/", json={"email": email}).status_code == 202
    clock.advance(seconds=20)
    limited = [issue.post("/", json={"email": e}) for e in (known, unknown.upper())]
    assert [(r.status_code, r.headers["Retry-After"], r.json) for r in limited] == [
        (429, "40", limited[0].json)] * 2
    clock.advance(seconds=40)
    for email in (known, unknown):
        assert issue.post("/", json={"email": email}).status_code == 202


def test_a_new_code_replaces_the_old_one(client: Client, deps: Container, tap: EventTap,
                                         clock: FixedClock) -> None:
    email = address()
    create_user(deps, email)
    first = request_code(client, tap, email)
    clock.advance(seconds=61)
    second = request_code(client, tap, email)
    verify = client("verify-otp")
    if first != second:
        assert verify.post("/", json={"email": email, "otp": first}).status_code == 400
    assert verify.post("/", json={"email": email, "otp": second}).status_code == 200


def registered_event(user_id: uuid.UUID, email: str, event_id: str | None = None) -> bytes:
    """user.registered as register signs it (the same id again: a redelivery)."""
    changes = {"id": event_id} if event_id else {}
    return signed(UserRegistered(user_id=str(user_id), email=email), "register",
                  subject=str(user_id), **changes).to_structured()


def test_registered_event_sends_one_code_and_is_acked_even_when_limited(
        client: Client, deps: Container, tap: EventTap) -> None:
    email = address()
    user_id = create_user(deps, email)
    issue = client("issue-otp")
    event_id = str(uuid.uuid4())
    with tap.listen(EmailRequested.TYPE) as received:
        first = issue.post("/", data=registered_event(user_id, email, event_id),
                           content_type="application/cloudevents+json")
        again = issue.post("/", data=registered_event(user_id, email, event_id),
                           content_type="application/cloudevents+json")
        limited = issue.post("/", data=registered_event(user_id, email),
                             content_type="application/cloudevents+json")
        received.wait_until(lambda e: e.data.get("to") == email)
        time.sleep(1.0)
        assert len(mails_to(received, email)) == 1
    assert [(r.status_code, r.json["status"]) for r in (first, again, limited)] == [
        (200, "otp_sent"), (200, "duplicate"), (200, "rate_limited")]


def test_malformed_registered_event_is_a_4xx(client: Client) -> None:
    event = signed_data(UserRegistered.TYPE, {"email": "x@example.com"}, "register")
    r = client("issue-otp").post("/", data=event.to_structured(),
                                 content_type="application/cloudevents+json")
    assert problem(r, 422)["status"] == 422


def test_an_unsigned_registered_event_is_refused_before_anything_happens(
        client: Client, deps: Container, tap: EventTap) -> None:
    email = address()
    user_id = create_user(deps, email)
    event = signed(UserRegistered(user_id=str(user_id), email=email), "register")
    forged = dataclasses.replace(event, extensions={})
    with tap.listen(EmailRequested.TYPE) as received:
        r = client("issue-otp").post("/", data=forged.to_structured(),
                                     content_type="application/cloudevents+json")
        assert problem(r, 401)["type"].endswith("event-not-trusted")
        assert received.absent(event.id, seconds=1.0) and mails_to(received, email) == []
    with deps.unit_of_work() as uow:  # not even the inbox saw it
        assert uow.inbox.claim(event.id) is True


# ---- verify-otp ------------------------------------------------------------------------

def test_right_code_verifies_once_and_emits_user_verified(client: Client, deps: Container,
                                                          tap: EventTap) -> None:
    email = address()
    user_id = create_user(deps, email)
    code = request_code(client, tap, email)
    verify = client("verify-otp")
    with tap.listen(UserVerified.TYPE) as received:
        ok = verify.post("/", json={"email": email.upper(), "otp": code})
        verified = received.wait_until(lambda e: e.subject == str(user_id))
    assert (ok.status_code, ok.json) == (200, {"status": "verified"})
    assert verified.data == {"user_id": str(user_id)}
    assert problem(verify.post("/", json={"email": email, "otp": code}), 400)
    with deps.db.connect() as conn:
        assert conn.execute(sa.select(users.c.verified_at).where(
            users.c.id == user_id)).scalar_one() == deps.clock.now()


def test_attempts_are_counted_and_five_wrong_kill_the_code(client: Client, deps: Container,
                                                           tap: EventTap) -> None:
    email = address()
    create_user(deps, email)
    code = request_code(client, tap, email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    verify = client("verify-otp")
    statuses = [verify.post("/", json={"email": email, "otp": wrong}).status_code
                for _ in range(otp.MAX_ATTEMPTS)]
    assert statuses == [400] * (otp.MAX_ATTEMPTS - 1) + [429]
    assert problem(verify.post("/", json={"email": email, "otp": code}), 429)
    with deps.db.connect() as conn:
        assert conn.execute(sa.select(otp_codes.c.attempts).join(users).where(
            users.c.email == email)).scalar_one() == otp.MAX_ATTEMPTS + 1


def test_expired_code_is_refused(client: Client, deps: Container, tap: EventTap,
                                 clock: FixedClock) -> None:
    late, in_time = address(), address()
    for email in (late, in_time):
        create_user(deps, email)
    codes = {email: request_code(client, tap, email) for email in (late, in_time)}
    verify = client("verify-otp")
    clock.advance(minutes=9, seconds=59)
    assert verify.post("/", json={"email": in_time, "otp": codes[in_time]}).status_code == 200
    clock.advance(seconds=1)
    assert problem(verify.post("/", json={"email": late, "otp": codes[late]}), 400)


def test_ten_concurrent_right_codes_verify_exactly_once(client: Client, deps: Container,
                                                        tap: EventTap) -> None:
    email = address()
    create_user(deps, email)
    code = request_code(client, tap, email)
    verify = client("verify-otp").application
    barrier = threading.Barrier(10)
    statuses: list[int] = []

    def attempt() -> None:
        barrier.wait()
        r = verify.test_client().post("/", json={"email": email, "otp": code})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) == 1 and len(statuses) == 10
    assert set(statuses) <= {200, 400, 429}


@pytest.mark.parametrize("body", [{"email": "a@example.com"}, {"email": "a@example.com",
                                   "otp": "12345"}, {"email": "a@example.com", "otp": 123456},
                                  {"email": "a@example.com", "otp": "123456", "extra": 1}])
def test_verify_bad_input_is_422(client: Client, body: dict[str, Any]) -> None:
    assert problem(client("verify-otp").post("/", json=body), 422)


def test_the_code_never_appears_in_logs(client: Client, deps: Container, tap: EventTap,
                                        caplog: pytest.LogCaptureFixture) -> None:
    email = address()
    create_user(deps, email)
    with caplog.at_level(logging.DEBUG):
        code = request_code(client, tap, email)
        client("verify-otp").post("/", json={"email": email, "otp": "000000"})
        client("verify-otp").post("/", json={"email": email, "otp": code})
    assert caplog.records and all(code not in r.getMessage() for r in caplog.records)


# ---- token -----------------------------------------------------------------------------

def login(client: Client, email: str, password: str = PASSWORD, form: bool = False) -> Any:
    data = {"grant_type": "password", "username": email, "password": password}
    if form:
        return client("token").post("/", data=data)
    return client("token").post("/", json=data)


def refresh_grant(client: Client, refresh_token: str) -> Any:
    return client("token").post("/", json={"grant_type": "refresh_token",
                                           "refresh_token": refresh_token})


def test_password_grant_json_and_form_issue_signed_tokens(client: Client,
                                                          deps: Container) -> None:
    email = address()
    user_id = create_user(deps, email, verified=True)
    for form in (False, True):
        r = login(client, email.upper(), form=form)
        assert r.status_code == 200, r.json
        assert r.headers["Cache-Control"] == "no-store"
        body = r.json
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
        assert body["token_type"] == "bearer" and body["expires_in"] == 900
        assert deps.tokens.verify(body["access_token"]).subject == str(user_id)
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 900 and email not in json.dumps(claims)


def test_unknown_user_and_wrong_password_are_indistinguishable(client: Client,
                                                               deps: Container) -> None:
    email = address()
    create_user(deps, email, verified=True)
    unknown = address()

    def attempt(target: str) -> tuple[float, Any]:
        started = time.perf_counter()
        r = login(client, target, "wrong password here")
        return time.perf_counter() - started, r

    results = {target: [attempt(target) for _ in range(5)] for target in (email, unknown)}
    seen = {(r.status_code, r.get_data(as_text=True), r.headers.get("WWW-Authenticate"))
            for runs in results.values() for _, r in runs}
    assert len(seen) == 1 and next(iter(seen))[0] == 401
    wrong = statistics.median(t for t, _ in results[email])
    missing = statistics.median(t for t, _ in results[unknown])
    assert 0.7 < missing / wrong < 1.4, (missing, wrong)


def test_unverified_account_with_right_password_is_403(client: Client,
                                                       deps: Container) -> None:
    email = address()
    create_user(deps, email)
    assert problem(login(client, email), 403)
    assert problem(login(client, email, "wrong password here"), 401)


def test_failed_logins_are_limited_per_account(client: Client, deps: Container,
                                               clock: FixedClock) -> None:
    email = address()
    create_user(deps, email, verified=True)
    for _ in range(LOGIN_FAILURES.allowed):
        assert login(client, email, "wrong password here").status_code == 401
    blocked = login(client, email)
    assert problem(blocked, 429) and int(blocked.headers["Retry-After"]) > 0
    clock.advance(seconds=LOGIN_FAILURES.window.total_seconds())
    assert login(client, email).status_code == 200


def test_refresh_rotates_and_reuse_revokes_the_family(client: Client, deps: Container) -> None:
    email = address()
    create_user(deps, email, verified=True)
    first = login(client, email).json["refresh_token"]
    rotated = refresh_grant(client, first)
    assert rotated.status_code == 200
    second = rotated.json["refresh_token"]
    assert second != first and deps.tokens.verify(rotated.json["access_token"])
    # The old token again: theft suspected, the whole family dies, also the newest token.
    reuse = refresh_grant(client, first)
    assert problem(reuse, 401)
    assert problem(refresh_grant(client, second), 401)
    # Another login (another family) is unaffected.
    assert login(client, email).status_code == 200


def test_revoke_ends_the_family_and_always_answers_200(client: Client, deps: Container) -> None:
    email = address()
    create_user(deps, email, verified=True)
    token = client("token")
    refresh = login(client, email).json["refresh_token"]
    assert token.post("/revoke", json={"refresh_token": refresh}).status_code == 200
    assert token.post("/revoke", json={"refresh_token": "never-issued"}).status_code == 200
    assert problem(refresh_grant(client, refresh), 401)
    with deps.db.connect() as conn:
        assert all(r.revoked_at for r in conn.execute(sa.select(refresh_tokens).join(users)
                                                      .where(users.c.email == email)))


def test_expired_refresh_token_is_refused(client: Client, deps: Container,
                                          clock: FixedClock) -> None:
    email = address()
    create_user(deps, email, verified=True)
    refresh = login(client, email).json["refresh_token"]
    clock.advance(days=30)
    assert problem(refresh_grant(client, refresh), 401)


def test_jwks_publishes_current_and_previous_keys(client: Client, deps: Container) -> None:
    r = client("token").get("/jwks.json")
    assert r.status_code == 200
    kids = [k["kid"] for k in r.json["keys"]]
    assert kids[0] == deps.keys.kid and len(kids) == len(set(kids)) >= 1
    assert all(set(k) == {"kty", "crv", "x", "kid", "alg", "use"} for k in r.json["keys"])


def test_userinfo_needs_a_valid_bearer_token(client: Client, deps: Container,
                                             clock: FixedClock) -> None:
    email = address()
    user_id = create_user(deps, email, verified=True)
    access = login(client, email).json["access_token"]
    token = client("token")
    r = token.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 200
    assert r.json == {"sub": str(user_id), "name": "Itest User", "email": email,
                      "email_verified": True, "created_at": r.json["created_at"]}
    assert problem(token.get("/userinfo"), 401)
    assert problem(token.get("/userinfo", headers={"Authorization": f"Bearer {access}x"}), 401)
    clock.advance(minutes=16)
    assert problem(token.get("/userinfo", headers={"Authorization": f"Bearer {access}"}), 401)


@pytest.mark.parametrize("body", [
    {"grant_type": "password", "username": "a@example.com", "password": "x" * 10_000},
    {"grant_type": "password", "username": "a@example.com"},
    {"grant_type": "client_credentials"},
    {"grant_type": "refresh_token", "refresh_token": "x", "extra": True},
    {}, [],
])
def test_token_bad_input_is_422(client: Client, body: Any) -> None:
    started = time.perf_counter()
    assert problem(client("token").post("/", json=body), 422)
    assert time.perf_counter() - started < 0.05


def test_login_upgrades_a_hash_made_with_weaker_parameters(client: Client,
                                                           deps: Container) -> None:
    from scanline.domain.passwords import PasswordHasher

    email = address()
    weak = PasswordHasher(memory_kib=8192, time_cost=1).hash(PASSWORD)
    with deps.unit_of_work() as uow:
        user_id = uow.users.create(email=email, name="Old", password_hash=weak,
                                   now=deps.clock.now())
        assert user_id is not None
        uow.users.mark_verified(user_id, deps.clock.now())
    assert login(client, email).status_code == 200
    with deps.db.connect() as conn:
        stored = conn.execute(sa.select(users.c.password_hash).where(
            users.c.id == user_id)).scalar_one()
    assert stored != weak and not deps.passwords.needs_rehash(stored)
    assert login(client, email).status_code == 200
