"""The account functions in-process (the template's app + handler) against the real
PostgreSQL and RabbitMQ, with a clock the test moves and the client address the test
chooses. Each protection of issues 3 and 14 has a test here that fails if the protection
is removed.

Codes reach these tests as mail requests on the exchange: register (in-process) emits
``user.registered``, the stack's issue-otp turns it into an ``email.requested``, which the
``tap`` sees. Where a test needs the clock to decide (caps, windows), it delivers the signed
events to its own in-process issue-otp instead.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import re
import threading
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

from scanline.adapters.accounts_tables import (
    audit_events,
    code_requests,
    registrations,
    sessions,
    users,
)
from scanline.bootstrap import Container
from scanline.clock import FixedClock
from scanline.domain import audit
from scanline.domain.passwords import PasswordHasher
from scanline.domain.rate_limits import (
    CODE_GUESSES,
    LOGIN_FAILURES_PER_CLIENT,
    LOGIN_FAILURES_PER_PAIR,
)
from scanline.events import Event
from scanline.payloads import CodeRequested, EmailRequested, UserRegistered, UserVerified
from scanline.runtime.app import create_app
from tests.support.broker import EventTap, Received
from tests.support.signing import signed, signed_data

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
PASSWORD = "correct horse battery staple"
STRANGERS_PASSWORD = "a stranger's own passphrase 7"


def load_handler(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"accounts_{name.replace('-', '_')}",
                                                  FUNCTIONS / name / "handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLERS = {name: load_handler(name)
            for name in ("register", "issue-otp", "verify-otp", "token", "housekeeping")}


class CountingHasher:
    """The real hasher, counting its calls: "refused before any hash" is then a fact the
    test reads, not a duration it guesses."""

    def __init__(self, real: PasswordHasher) -> None:
        self.real, self.calls = real, 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def hash(self, password: str) -> str:
        self._count()
        return self.real.hash(password)

    def verify(self, password: str, stored: str | None) -> bool:
        self._count()
        return self.real.verify(password, stored)

    def needs_rehash(self, stored: str) -> bool:
        return self.real.needs_rehash(stored)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def counting(hasher: PasswordHasher) -> CountingHasher:
    return CountingHasher(hasher)


@pytest.fixture
def deps(container: Container, clock: FixedClock, counting: CountingHasher) -> Iterator[Container]:
    built = Container(container.settings, clock=clock, replace={"passwords": counting})
    yield built
    built.close()


Client = Callable[..., FlaskClient]


@pytest.fixture
def client(deps: Container, counting: CountingHasher) -> Iterator[Client]:
    """``client("verify-otp", client_address="10.0.0.7")``: a test client of that function,
    on the test's clock, whose calls come from that address."""
    containers: dict[str, Container] = {}
    apps: dict[str, Any] = {}

    def get(name: str, client_address: str = "10.0.0.1") -> FlaskClient:
        if name not in containers:
            containers[name] = Container(
                dataclasses.replace(deps.settings, function_name=name), clock=deps.clock,
                replace={"passwords": counting})
            apps[name] = create_app(HANDLERS[name], containers[name])
        test_client = apps[name].test_client()
        test_client.environ_base["REMOTE_ADDR"] = client_address
        return test_client
    yield get
    for built in containers.values():
        built.close()


def address() -> str:
    return f"itest-{uuid.uuid4().hex[:12]}@example.com"


def somewhere() -> str:
    """A client address of its own, so one test's calls never meet another's limits."""
    n = uuid.uuid4().int
    return f"10.{n % 200 + 50}.{n // 200 % 250}.{n // 50_000 % 250 + 1}"


def create_user(deps: Container, email: str, password: str = PASSWORD) -> uuid.UUID:
    """A verified account, as verify-otp leaves it."""
    password_hash = deps.passwords.hash(password)
    with deps.unit_of_work() as uow:
        user_id = uow.users.create(email=email, name="Itest User",
                                   password_hash=password_hash, now=deps.clock.now())
    assert user_id is not None
    return user_id


def pending(deps: Container, email: str, clock: FixedClock) -> uuid.UUID:
    """A registration of ``email`` as register leaves it (no code yet), for a year."""
    with deps.unit_of_work() as uow:
        return uow.registrations.add(email=email, name="N", password_hash="x",
                                     now=clock.now(), expires_at=clock.now() + timedelta(days=365))


def code_requested(deps: Container, email: str, clock: FixedClock,
                   purpose: str = "verification") -> CodeRequested:
    """The event issue-otp's HTTP route emits, with the request it keeps."""
    with deps.unit_of_work() as uow:
        request_id = uow.code_requests.add(email=email, purpose=purpose, now=clock.now())
    return CodeRequested(request_id=str(request_id))


def mails_to(received: Received, email: str, subject: str = "") -> list[Event]:
    return [e for e in received.events if e.type == EmailRequested.TYPE
            and e.data.get("to") == email and subject in e.data.get("subject", "")]


def code_in(mail: Event) -> str:
    found = re.search(r"code is (\d{6})", mail.data["text"])
    assert found, mail.data["text"]
    return found.group(1)


def register(client: Client, tap: EventTap, email: str, password: str = PASSWORD,
             client_address: str | None = None) -> str:
    """Register through the function; the code the stack mails for this registration."""
    with tap.listen(EmailRequested.TYPE) as received:
        r = client("register", client_address or somewhere()).post(
            "/", json={"name": "Itest User", "email": email, "password": password})
        assert (r.status_code, r.json) == (202, {"status": "pending_verification"})
        return code_in(received.wait_until(
            lambda e: e.data.get("to") == email and "verification code" in e.data["subject"],
            timeout=15))


def verify(client: Client, email: str, code: str, password: str | None = PASSWORD,
           client_address: str | None = None) -> Any:
    body = {"email": email, "otp": code, **({"password": password} if password else {})}
    return client("verify-otp", client_address or somewhere()).post("/", json=body)


def sign_up(client: Client, tap: EventTap, email: str, password: str = PASSWORD) -> None:
    code = register(client, tap, email, password)
    assert verify(client, email, code, password).status_code == 200


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "application/problem+json"
    return r.json


def oauth_error(r: Any, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.json["error"] == error and r.json["error_description"]
    assert r.headers["Cache-Control"] == "no-store"
    return r.json


def audit_rows(deps: Container, account: str) -> list[Any]:
    with deps.db.connect() as conn:
        return conn.execute(sa.select(audit_events).where(audit_events.c.account == account)
                            .order_by(audit_events.c.id)).all()


# ---- sign-up: no pre-hijack -------------------------------------------------------------

def test_a_stranger_who_registered_first_gains_nothing(client: Client, deps: Container,
                                                       tap: EventTap) -> None:
    victim = address()
    # The stranger registers the victim's address with their own password; the code goes
    # to the victim's mailbox, which the stranger cannot read.
    strangers_code = register(client, tap, victim, STRANGERS_PASSWORD, "203.0.113.9")
    # The victim signs up too, later, with their own password, and gets their own code.
    victims_code = register(client, tap, victim, PASSWORD, "198.51.100.4")
    # The stranger's code does not open the victim's registration with the victim's
    # password (two codes may be equal by chance; their bindings never are).
    if strangers_code != victims_code:
        assert problem(verify(client, victim, strangers_code, PASSWORD), 400)
    assert verify(client, victim, victims_code, PASSWORD).status_code == 200
    token = client("token")
    assert token.post("/", data={"grant_type": "password", "username": victim,
                                 "password": PASSWORD}).status_code == 200
    oauth_error(token.post("/", data={"grant_type": "password", "username": victim,
                                      "password": STRANGERS_PASSWORD}), 400, "invalid_grant")
    # Every registration of the address ended with the verification.
    with deps.db.connect() as conn:
        left = conn.execute(sa.select(registrations.c.id).where(
            registrations.c.email == victim)).all()
    assert left == []


def test_a_code_without_its_registrations_password_verifies_nothing(
        client: Client, deps: Container, tap: EventTap) -> None:
    email = address()
    code = register(client, tap, email)
    assert problem(verify(client, email, code, password=None), 400)
    assert problem(verify(client, email, code, "not the password at all"), 400)
    assert verify(client, email, code).status_code == 200
    with deps.db.connect() as conn:
        assert conn.execute(sa.select(users.c.verified_at).where(
            users.c.email == email)).scalar_one() is not None


def test_a_legacy_registration_still_verifies_with_email_and_code(
        client: Client, deps: Container, tap: EventTap) -> None:
    email = address()
    code = register(client, tap, email)
    with deps.db.connect() as conn:  # as migration 0005 left an unverified account
        conn.execute(registrations.update().where(registrations.c.email == email)
                     .values(legacy=True))
    assert verify(client, email, code, password=None).status_code == 200


def test_registrations_expire_after_a_day(client: Client, deps: Container, tap: EventTap,
                                          clock: FixedClock) -> None:
    email = address()
    code = register(client, tap, email)
    clock.advance(hours=24, seconds=1)
    assert problem(verify(client, email, code), 400)


# ---- register ----------------------------------------------------------------------------

def test_register_answers_the_same_and_mails_a_code_or_an_existing_account_notice(
        client: Client, deps: Container, tap: EventTap) -> None:
    new, existing = address(), address()
    create_user(deps, existing)
    with tap.listen(EmailRequested.TYPE, UserRegistered.TYPE) as received:
        answers = [client("register").post("/", json={
            "name": "N", "email": e, "password": "another long password"}) for e in (new, existing)]
        code_mail = received.wait_until(lambda e: e.data.get("to") == new)
        notice = received.wait_until(lambda e: e.data.get("to") == existing)
    assert [(r.status_code, r.json) for r in answers] == [
        (202, {"status": "pending_verification"})] * 2
    assert "verification code" in code_mail.data["subject"]
    assert "already exists" in notice.data["subject"] and "code is" not in notice.data["text"]
    registered = [e for e in received.events if e.type == UserRegistered.TYPE]
    # Only the registration's id travels: issue-otp read each address from the database.
    assert len(registered) >= 2 and all(set(e.data) == {"registration_id"} for e in registered)


def test_account_exists_notices_are_limited_to_one_a_day(client: Client, deps: Container,
                                                        tap: EventTap, clock: FixedClock) -> None:
    existing = address()
    create_user(deps, existing)
    issue = client("issue-otp")

    def registered_again() -> None:
        event = signed(UserRegistered(registration_id=str(pending(deps, existing, clock))),
                       "register")
        r = issue.post("/", data=event.to_structured(),
                       content_type="application/cloudevents+json")
        assert r.json["status"] == "account_exists"

    with tap.listen(EmailRequested.TYPE) as received:
        for _ in range(3):
            registered_again()
        received.wait_until(lambda e: e.data.get("to") == existing)
        assert received.absent("later ones", seconds=1.0)
        clock.advance(days=1, seconds=1)
        registered_again()
        received.wait_until(lambda e: len(mails_to(received, existing)) == 2)
    assert len(mails_to(received, existing, "already exists")) == 2


def test_register_does_the_same_work_for_every_address(client: Client, deps: Container,
                                                       counting: CountingHasher) -> None:
    existing = address()
    create_user(deps, existing)
    before = counting.calls
    for email in (address(), existing):
        r = client("register").post("/", json={"name": "N", "email": email,
                                                "password": "another long password"})
        assert r.status_code == 202
    assert counting.calls - before == 2  # one hash each


@pytest.mark.parametrize("body", [
    {"email": "a@example.com", "password": PASSWORD},
    {"name": "N", "email": "a@example.com", "password": PASSWORD, "admin": True},
    {"name": 1, "email": "a@example.com", "password": PASSWORD},
    {"name": "N", "email": ["a@example.com"], "password": PASSWORD},
    {"name": "N", "email": "not-an-address", "password": PASSWORD},
    {"name": "N", "email": "a@example.com", "password": "short"},
    {"name": "N", "email": "a@example.com", "password": "P@ssw0rd"},
    {"name": "N", "email": "a@example.com", "password": "aaaaaaaa"},
    {"name": "N", "email": "a@example.com", "password": "scanline123"},
    {"name": "N", "email": "a@example.com", "password": "a@example.com"},
    {"name": "N", "email": "a@example.com", "password": "x" * 10_000},
    [], "text",
])
def test_register_bad_input_is_422_before_any_hash_and_creates_nothing(
        client: Client, deps: Container, counting: CountingHasher, body: Any) -> None:
    before = counting.calls
    r = client("register").post("/", json=body)
    assert problem(r, 422)["status"] == 422
    assert counting.calls == before
    with deps.db.connect() as conn:
        assert conn.execute(sa.select(registrations.c.id).where(
            registrations.c.email == "a@example.com")).first() is None


def test_register_refuses_non_json_oversized_and_get(client: Client) -> None:
    register_fn = client("register")
    assert problem(register_fn.post("/", data="x=1", content_type="text/plain"), 415)
    problem(register_fn.post("/", data=b"{" * 70_000, content_type="application/json"), 413)
    assert problem(register_fn.get("/"), 405)


def test_registrations_are_limited_per_client_address(client: Client,
                                                      counting: CountingHasher) -> None:
    from scanline.domain.rate_limits import REGISTRATIONS_PER_CLIENT

    busy = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    statuses = [client("register", busy).post("/", json={
        "name": "N", "email": address(), "password": "another long password"}).status_code
        for _ in range(REGISTRATIONS_PER_CLIENT.allowed + 2)]
    assert statuses[:REGISTRATIONS_PER_CLIENT.allowed] == [202] * REGISTRATIONS_PER_CLIENT.allowed
    assert statuses[-2:] == [429, 429]
    elsewhere = client("register", "10.8.0.1").post("/", json={
        "name": "N", "email": address(), "password": "another long password"})
    assert elsewhere.status_code == 202


# ---- issue-otp ---------------------------------------------------------------------------

def test_resend_and_recovery_answer_the_same_for_every_address(
        client: Client, deps: Container, tap: EventTap) -> None:
    unknown, pending, verified = address(), address(), address()
    register(client, tap, pending)
    create_user(deps, verified)
    with tap.listen(EmailRequested.TYPE, CodeRequested.TYPE) as received:
        answers = {}
        for path in ("/", "/recovery"):
            for email in (unknown, pending, verified):
                r = client("issue-otp").post(path, json={"email": email})
                answers[(path, email)] = (r.status_code, r.json)
        received.wait_until(lambda e: e.data.get("to") == verified
                            and "reset" in e.data["subject"], timeout=15)
        received.wait_until(lambda e: e.data.get("to") == pending
                            and "verification" in e.data["subject"], timeout=15)
        received.absent("never", seconds=1.0)
    assert all(answer == (202, {"status": "otp_sent"}) for answer in answers.values())
    assert mails_to(received, unknown) == []
    assert [m.data["subject"] for m in mails_to(received, pending)] == [
        "Your Scanline verification code"]  # no recovery for a pending sign-up
    assert [m.data["subject"] for m in mails_to(received, verified)] == [
        "Your Scanline password reset code"]  # no sign-up code for an account


def test_one_request_per_address_a_minute_for_every_address(client: Client, deps: Container,
                                                           tap: EventTap,
                                                           clock: FixedClock) -> None:
    pending, unknown = address(), address()
    register(client, tap, pending)  # the registration's own code does not use the slot
    issue = client("issue-otp")
    for email in (pending, unknown):
        assert issue.post("/", json={"email": email}).status_code == 202
        limited = problem(issue.post("/", json={"email": email}), 429)
        assert limited["detail"] == "a code was requested for this address less than a minute ago"
    clock.advance(seconds=61)
    assert issue.post("/", json={"email": unknown}).status_code == 202


def test_code_mails_are_capped_per_address(client: Client, deps: Container, tap: EventTap,
                                           clock: FixedClock) -> None:
    email = address()
    pending(deps, email, clock)
    issue = client("issue-otp")

    def ask() -> str:
        event = signed(code_requested(deps, email, clock), "issue-otp")
        return issue.post("/", data=event.to_structured(),
                          content_type="application/cloudevents+json").json["status"]

    hour = [ask() for _ in range(6)]
    assert hour == ["otp_sent"] * 5 + ["not_sent"]
    statuses = []
    for _ in range(6):  # a new hour each time: the daily cap of 10 decides now
        clock.advance(hours=1, seconds=1)
        statuses.append(ask())
    assert statuses == ["otp_sent"] * 5 + ["not_sent"]


def test_an_unsigned_registered_event_is_refused_before_anything_happens(
        client: Client, deps: Container, tap: EventTap, clock: FixedClock) -> None:
    email = address()
    event = signed(UserRegistered(registration_id=str(pending(deps, email, clock))),
                   "register")
    forged = dataclasses.replace(event, extensions={})
    with tap.listen(EmailRequested.TYPE) as received:
        r = client("issue-otp").post("/", data=forged.to_structured(),
                                     content_type="application/cloudevents+json")
        assert problem(r, 401)["type"].endswith("event-not-trusted")
        assert received.absent(event.id, seconds=1.0) and mails_to(received, email) == []
    with deps.unit_of_work() as uow:  # not even the inbox saw it
        assert uow.inbox.claim(event.id) is True


def test_malformed_registered_event_is_a_4xx(client: Client) -> None:
    event = signed_data(UserRegistered.TYPE, {"email": "x@example.com"}, "register")
    r = client("issue-otp").post("/", data=event.to_structured(),
                                 content_type="application/cloudevents+json")
    assert problem(r, 422)["status"] == 422


# ---- verify-otp: bounded guessing --------------------------------------------------------

def test_the_right_code_verifies_once_and_emits_user_verified(
        client: Client, deps: Container, tap: EventTap) -> None:
    email = address()
    code = register(client, tap, email)
    with tap.listen(UserVerified.TYPE) as received:
        assert verify(client, email, code).json == {"status": "verified"}
        event = received.wait_until(lambda e: e.type == UserVerified.TYPE)
    assert problem(verify(client, email, code), 400)  # used
    with deps.db.connect() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.email == email)).scalar_one()
    assert event.data == {"user_id": str(user_id)}
    assert [r.event for r in audit_rows(deps, str(user_id))] == [audit.VERIFIED]


def test_twenty_wrong_codes_across_reissues_then_even_the_right_code_is_refused(
        client: Client, deps: Container, tap: EventTap, clock: FixedClock) -> None:
    email = address()
    issue = client("issue-otp")
    right = None
    wrong = 0
    for reissue in range(4):  # every re-issue brings a fresh code, not a fresh budget
        if reissue:
            clock.advance(seconds=61)
        with tap.listen(EmailRequested.TYPE) as received:
            if reissue == 0:
                right = register(client, tap, email)
            else:
                assert issue.post("/", json={"email": email}).status_code == 202
                right = code_in(received.wait_until(lambda e: e.data.get("to") == email,
                                                    timeout=15))
        for _ in range(5):
            guess = f"{(int(right) + 1 + wrong) % 1_000_000:06d}"
            assert problem(verify(client, email, guess, client_address=f"10.5.0.{wrong}"), 400)
            wrong += 1
    assert wrong == CODE_GUESSES.allowed
    refused = problem(verify(client, email, right, client_address="10.6.0.1"), 429)
    assert refused["detail"].startswith("too many codes")
    with deps.db.connect() as conn:
        assert conn.execute(sa.select(users.c.id).where(users.c.email == email)).first() is None


def test_every_address_gets_the_same_answers_from_verify(client: Client, deps: Container,
                                                         tap: EventTap) -> None:
    unknown, pending, verified = address(), address(), address()
    register(client, tap, pending)
    create_user(deps, verified)
    seen = {}
    for email in (unknown, pending, verified):
        answers = [verify(client, email, "000000", client_address=f"10.7.{i}.1")
                   for i in range(CODE_GUESSES.allowed + 1)]
        seen[email] = [(r.status_code, r.json["detail"]) for r in answers]
    assert seen[unknown] == seen[pending] == seen[verified]
    assert [s for s, _ in seen[unknown]] == [400] * CODE_GUESSES.allowed + [429]


def test_code_guesses_are_limited_per_client_address(client: Client) -> None:
    from scanline.domain.rate_limits import CODE_GUESSES_PER_CLIENT

    busy = f"10.10.{uuid.uuid4().int % 250}.7"
    statuses = [verify(client, address(), "000000", client_address=busy).status_code
                for _ in range(CODE_GUESSES_PER_CLIENT.allowed + 1)]
    assert statuses == [400] * CODE_GUESSES_PER_CLIENT.allowed + [429]


def test_ten_concurrent_right_codes_verify_exactly_once(client: Client, tap: EventTap) -> None:
    email = address()
    code = register(client, tap, email)
    app = client("verify-otp").application
    barrier = threading.Barrier(10)
    statuses: list[int] = []

    def attempt(n: int) -> None:
        test_client = app.test_client()
        test_client.environ_base["REMOTE_ADDR"] = f"10.11.0.{n}"
        barrier.wait()
        statuses.append(test_client.post("/", json={"email": email, "otp": code,
                                                    "password": PASSWORD}).status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) == 1 and len(statuses) == 10
    assert set(statuses) <= {200, 400}


@pytest.mark.parametrize("body", [{"email": "a@example.com"}, {"email": "a@example.com",
                                   "otp": "12345"}, {"email": "a@example.com", "otp": 123456},
                                  {"email": "a@example.com", "otp": "123456", "extra": 1}])
def test_verify_bad_input_is_422(client: Client, body: dict[str, Any]) -> None:
    assert problem(client("verify-otp").post("/", json=body), 422)


def test_codes_and_passwords_never_appear_in_logs_or_the_audit_log(
        client: Client, deps: Container, tap: EventTap, caplog: pytest.LogCaptureFixture) -> None:
    email = address()
    with caplog.at_level(logging.DEBUG):
        code = register(client, tap, email)
        verify(client, email, "000000")
        verify(client, email, code)
        client("token").post("/", data={"grant_type": "password", "username": email,
                                        "password": PASSWORD})
    assert caplog.records
    assert all(code not in r.getMessage() and PASSWORD not in r.getMessage()
               for r in caplog.records)
    with deps.db.connect() as conn:
        rows = conn.execute(sa.select(audit_events).order_by(audit_events.c.id.desc())
                            .limit(20)).all()
    assert rows and all(code not in str(tuple(r)) and PASSWORD not in str(tuple(r))
                        for r in rows)


# ---- password recovery -----------------------------------------------------------------------

def test_recovery_sets_a_new_password_and_ends_every_session(
        client: Client, deps: Container, tap: EventTap) -> None:
    email = address()
    create_user(deps, email)
    token = client("token")
    tokens = token.post("/", data={"grant_type": "password", "username": email,
                                   "password": PASSWORD}).json
    with tap.listen(EmailRequested.TYPE) as received:
        assert client("issue-otp").post("/recovery", json={"email": email}).status_code == 202
        code = code_in(received.wait_until(lambda e: e.data.get("to") == email, timeout=15))
    new = "a brand new passphrase 31"
    assert problem(client("verify-otp").post("/recovery", json={
        "email": email, "otp": "000000" if code != "000000" else "111111",
        "password": new}), 400)
    r = client("verify-otp").post("/recovery", json={"email": email, "otp": code,
                                                     "password": new})
    assert r.json == {"status": "password_changed"}
    oauth_error(token.post("/", data={"grant_type": "refresh_token",
                                      "refresh_token": tokens["refresh_token"]}),
                400, "invalid_grant")
    oauth_error(token.post("/", data={"grant_type": "password", "username": email,
                                      "password": PASSWORD}), 400, "invalid_grant")
    assert token.post("/", data={"grant_type": "password", "username": email,
                                 "password": new}).status_code == 200


def test_recovery_refuses_a_weak_new_password_before_counting_a_guess(client: Client) -> None:
    r = client("verify-otp").post("/recovery", json={"email": address(), "otp": "123456",
                                                     "password": "P@ssw0rd"})
    assert problem(r, 422)["errors"][0]["pointer"] == "/password"


# ---- token: logins -----------------------------------------------------------------------------

def login(client: Client, email: str, password: str = PASSWORD, form: bool = True,
          client_address: str | None = None, **extra: str) -> Any:
    data = {"grant_type": "password", "username": email, "password": password, **extra}
    token = client("token", client_address or somewhere())
    return token.post("/", data=data) if form else token.post("/", json=data)


def refresh(client: Client, refresh_token: str) -> Any:
    return client("token").post("/", data={"grant_type": "refresh_token",
                                           "refresh_token": refresh_token})


def test_password_grant_json_and_form_with_client_id_and_scope_issue_tokens_with_a_session(
        client: Client, deps: Container) -> None:
    email = address()
    user_id = create_user(deps, email)
    for form in (False, True):
        r = login(client, email.upper(), form=form, client_id="scanline-cli", scope="openid")
        assert r.status_code == 200, r.json
        assert r.headers["Cache-Control"] == "no-store"
        body = r.json
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
        assert body["token_type"] == "bearer" and body["expires_in"] == 900
        claims = deps.tokens.verify(body["access_token"])
        assert claims.subject == str(user_id)
        with deps.db.connect() as conn:
            assert conn.execute(sa.select(sessions.c.user_id).where(
                sessions.c.id == uuid.UUID(claims.session_id))).scalar_one() == user_id
        raw = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert raw["exp"] - raw["iat"] == 900 and email not in json.dumps(raw)


def test_unknown_user_and_wrong_password_are_indistinguishable_and_cost_a_hash(
        client: Client, deps: Container, counting: CountingHasher) -> None:
    email = address()
    create_user(deps, email)
    answers = []
    for who in (email, address()):
        before = counting.calls
        r = login(client, who, "wrong password!", client_address="10.12.0.1")
        answers.append((r.status_code, r.json))
        assert counting.calls - before == 1
    assert answers[0] == answers[1] == (400, {"error": "invalid_grant",
                                              "error_description":
                                                  "the username or password is wrong"})


def test_a_strangers_failures_never_stop_the_owner_from_another_address(
        client: Client, deps: Container) -> None:
    email = address()
    create_user(deps, email)
    stranger = f"10.13.{uuid.uuid4().int % 250}.9"
    answers = [login(client, email, "not the password", client_address=stranger).status_code
               for _ in range(15)]
    assert answers[:5] == [400] * 5 and 429 in answers
    assert login(client, email, client_address="10.14.0.1").status_code == 200


def test_a_pairs_delay_grows_and_a_success_clears_it(client: Client, deps: Container,
                                                     clock: FixedClock) -> None:
    email = address()
    create_user(deps, email)
    owner = "10.15.0.2"
    for _ in range(LOGIN_FAILURES_PER_PAIR.free):
        assert login(client, email, "typo typo typo", client_address=owner).status_code == 400
    blocked = login(client, email, client_address=owner)
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "1"
    clock.advance(seconds=2)
    assert login(client, email, client_address=owner).status_code == 200
    # Cleared: a typo now is just a typo.
    assert login(client, email, "typo typo typo", client_address=owner).status_code == 400
    assert login(client, email, client_address=owner).status_code == 200


def test_logins_for_unknown_users_from_one_address_are_throttled_before_hashing(
        client: Client, counting: CountingHasher) -> None:
    sprayer = f"10.16.{uuid.uuid4().int % 250}.3"
    before = counting.calls
    answers = [login(client, address(), "password spraying", client_address=sprayer)
               for _ in range(60)]
    limit = LOGIN_FAILURES_PER_CLIENT.allowed
    assert [r.status_code for r in answers] == [400] * limit + [429] * (60 - limit)
    assert counting.calls - before == limit  # the throttled ones cost no hash
    assert int(answers[-1].headers["Retry-After"]) > 0


def wrong_passwords_at_once(client: Client, email: str, attacker: str, n: int) -> list[int]:
    """``n`` logins of ``email`` with a wrong password from ``attacker``, released together
    (a barrier); their statuses."""
    app = client("token").application
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def attempt() -> None:
        test_client = app.test_client()
        test_client.environ_base["REMOTE_ADDR"] = attacker
        barrier.wait()
        statuses.append(test_client.post("/", data={
            "grant_type": "password", "username": email, "password": "guess guess"}).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_parallel_wrong_passwords_evaluate_no_more_than_the_limit(
        client: Client, deps: Container, counting: CountingHasher) -> None:
    email = address()
    create_user(deps, email)
    before = counting.calls
    statuses = wrong_passwords_at_once(client, email, f"10.17.{uuid.uuid4().int % 250}.4", 100)
    assert counting.calls - before <= LOGIN_FAILURES_PER_CLIENT.allowed
    assert statuses.count(400) <= LOGIN_FAILURES_PER_CLIENT.allowed
    # 100 at once in one process exhaust its connection pool: those wait, then get a 503
    # (a real function has 8 server threads; the limit holds either way).
    assert len(statuses) == 100 and set(statuses) <= {400, 429, 503}


def test_parallel_wrong_passwords_of_one_pair_evaluate_no_more_than_its_free_attempts(
        client: Client, deps: Container, counting: CountingHasher) -> None:
    """Counter before compare: each attempt is counted before its hash, so a burst of one
    (account, client address) is not all evaluated before the first failure is saved."""
    email = address()
    create_user(deps, email)
    before = counting.calls
    statuses = wrong_passwords_at_once(client, email, f"10.18.{uuid.uuid4().int % 250}.4", 12)
    free = LOGIN_FAILURES_PER_PAIR.free
    assert sorted(statuses) == [400] * free + [429] * (12 - free)
    assert counting.calls - before == free


def test_token_errors_are_rfc_6749(client: Client) -> None:
    token = client("token")
    oauth_error(token.post("/", data={"grant_type": "client_credentials"}), 400,
                "unsupported_grant_type")
    oauth_error(token.post("/", data={"grant_type": "password", "username": "a@b.example"}),
                400, "invalid_request")
    oauth_error(token.post("/", data={}), 400, "invalid_request")
    oauth_error(token.post("/", data="grant_type=password&grant_type=password",
                           content_type="application/x-www-form-urlencoded"),
                400, "invalid_request")
    oauth_error(token.post("/", data={"grant_type": "refresh_token",
                                      "refresh_token": "never issued"}), 400, "invalid_grant")
    oauth_error(token.post("/", json=[]), 400, "invalid_request")


# ---- token: sessions, refresh, revocation -----------------------------------------------------

def test_refresh_rotates_and_reuse_after_the_grace_ends_the_session(
        client: Client, deps: Container, clock: FixedClock) -> None:
    email = address()
    create_user(deps, email)
    first = login(client, email).json
    rotated = refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json["refresh_token"]
    assert second != first["refresh_token"]
    # Within the grace the old token again is a concurrent refresh: the same successor.
    assert refresh(client, first["refresh_token"]).json["refresh_token"] == second
    clock.advance(seconds=11)
    # The old token again, after the grace: theft suspected, the session ends.
    oauth_error(refresh(client, first["refresh_token"]), 400, "invalid_grant")
    oauth_error(refresh(client, second), 400, "invalid_grant")
    with pytest.raises(Exception, match="missing, invalid or expired"):
        deps.tokens.verify(rotated.json["access_token"])
    assert login(client, email).status_code == 200  # another login is another session


def test_concurrent_refreshes_within_the_grace_leave_a_working_session(
        client: Client, deps: Container) -> None:
    email = address()
    create_user(deps, email)
    issued = login(client, email).json
    app = client("token").application
    barrier = threading.Barrier(5)
    answers: list[Any] = []

    def attempt() -> None:
        test_client = app.test_client()
        barrier.wait()
        answers.append(test_client.post("/", data={"grant_type": "refresh_token",
                                                   "refresh_token": issued["refresh_token"]}))

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 5
    for answer in answers:  # every client got tokens that keep working
        assert deps.tokens.verify(answer.json["access_token"])
    # ... and one chain: the same successor for all, so the session did not fork into
    # five live tokens that a copy could hide among.
    successors = {a.json["refresh_token"] for a in answers}
    assert len(successors) == 1
    assert refresh(client, successors.pop()).status_code == 200


def test_sessions_end_thirty_days_after_the_login_however_often_refreshed(
        client: Client, deps: Container, clock: FixedClock) -> None:
    email = address()
    create_user(deps, email)
    current = login(client, email).json["refresh_token"]
    for _ in range(3):
        clock.advance(days=9)
        r = refresh(client, current)
        assert r.status_code == 200
        current = r.json["refresh_token"]
    clock.advance(days=3, seconds=1)
    oauth_error(refresh(client, current), 400, "invalid_grant")


def test_revocation_ends_the_session_and_its_access_tokens(client: Client,
                                                           deps: Container) -> None:
    email = address()
    create_user(deps, email)
    tokens = login(client, email).json
    token = client("token")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert token.get("/userinfo", headers=bearer).status_code == 200
    assert token.post("/revoke", data={"token": tokens["refresh_token"],
                                       "token_type_hint": "refresh_token",
                                       "client_id": "scanline-cli"}).json == {"status": "revoked"}
    assert token.post("/revoke", data={"token": "never-issued"}).status_code == 200
    # RFC 7009 §2.1: a hint the server does not know is ignored, not refused.
    assert token.post("/revoke", data={"token": "never-issued",
                                       "token_type_hint": "foo"}).status_code == 200
    nothing = oauth_error(token.post("/revoke", data={"token_type_hint": "refresh_token"}),
                          400, "invalid_request")
    assert nothing["error_description"].endswith("'token' is a required property")
    assert problem(token.get("/userinfo", headers=bearer), 401)  # at once, in this process
    oauth_error(refresh(client, tokens["refresh_token"]), 400, "invalid_grant")
    # Another process's verifier sees it through the revocation list.
    other = Container(dataclasses.replace(deps.settings, function_name="itest-verifier"))
    try:
        with pytest.raises(Exception, match="missing, invalid or expired"):
            other.tokens.verify(tokens["access_token"])
    finally:
        other.close()


def test_an_access_token_can_be_revoked_too(client: Client, deps: Container) -> None:
    email = address()
    create_user(deps, email)
    tokens = login(client, email).json
    assert client("token").post("/revoke", data={"token": tokens["access_token"]}).status_code \
        == 200
    oauth_error(refresh(client, tokens["refresh_token"]), 400, "invalid_grant")


def test_jwks_and_discovery(client: Client, deps: Container) -> None:
    token = client("token")
    r = token.get("/jwks.json")
    kids = [k["kid"] for k in r.json["keys"]]
    assert kids[0] == deps.keys.kid and len(kids) == len(set(kids)) >= 1
    metadata = token.get("/.well-known/openid-configuration").json
    issuer = metadata["issuer"]
    assert metadata["token_endpoint"] == issuer
    assert metadata["jwks_uri"] == f"{issuer}/jwks.json"
    assert metadata["revocation_endpoint"] == f"{issuer}/revoke"
    assert metadata["grant_types_supported"] == ["password", "refresh_token"]
    # No ID tokens and no authorization endpoint: nothing claimed about either.
    assert metadata["response_types_supported"] == []
    assert not any(key.startswith("id_token") for key in metadata)


def test_userinfo_needs_a_valid_bearer_token(client: Client, deps: Container,
                                             clock: FixedClock) -> None:
    email = address()
    user_id = create_user(deps, email)
    access = login(client, email).json["access_token"]
    token = client("token")
    r = token.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert r.json == {"sub": str(user_id), "name": "Itest User", "email": email,
                      "email_verified": True, "created_at": r.json["created_at"]}
    # OpenID Connect Core §5.3.1: GET and POST.
    assert token.post("/userinfo", headers={"Authorization": f"Bearer {access}"}).json == r.json
    assert problem(token.get("/userinfo"), 401)
    assert problem(token.get("/userinfo", headers={"Authorization": f"Bearer {access}x"}), 401)
    clock.advance(minutes=16)
    assert problem(token.get("/userinfo", headers={"Authorization": f"Bearer {access}"}), 401)


def test_changing_the_password_ends_every_other_session(client: Client,
                                                        deps: Container) -> None:
    email = address()
    create_user(deps, email)
    mine, other = login(client, email).json, login(client, email).json
    token = client("token")
    bearer = {"Authorization": f"Bearer {mine['access_token']}"}
    wrong = token.post("/password", headers=bearer, json={"current_password": "not it at all",
                                                          "new_password": "a fresh passphrase 8"})
    assert problem(wrong, 422)["errors"][0]["pointer"] == "/current_password"
    weak = token.post("/password", headers=bearer, json={"current_password": PASSWORD,
                                                         "new_password": "P@ssw0rd"})
    assert problem(weak, 422)["errors"][0]["pointer"] == "/new_password"
    r = token.post("/password", headers=bearer, json={"current_password": PASSWORD,
                                                      "new_password": "a fresh passphrase 8"})
    assert r.json == {"status": "password_changed"}
    assert token.get("/userinfo", headers=bearer).status_code == 200  # this session goes on
    oauth_error(refresh(client, other["refresh_token"]), 400, "invalid_grant")
    assert login(client, email, "a fresh passphrase 8").status_code == 200


def test_login_upgrades_a_hash_made_with_weaker_parameters(client: Client,
                                                           deps: Container) -> None:
    email = address()
    weak = PasswordHasher(memory_kib=8192, time_cost=1).hash(PASSWORD)
    with deps.unit_of_work() as uow:
        user_id = uow.users.create(email=email, name="Old", password_hash=weak,
                                   now=deps.clock.now())
    assert login(client, email).status_code == 200
    with deps.db.connect() as conn:
        stored = conn.execute(sa.select(users.c.password_hash).where(
            users.c.id == user_id)).scalar_one()
    assert stored != weak and not deps.passwords.needs_rehash(stored)


# ---- audit and housekeeping ------------------------------------------------------------------

def test_security_events_are_audited_with_time_account_client_and_agent(
        client: Client, deps: Container, tap: EventTap) -> None:
    email = address()
    code = register(client, tap, email)
    verify(client, email, "000000" if code != "000000" else "111111")
    verify(client, email, code)
    with deps.db.connect() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.email == email)).scalar_one()
    token = client("token", "192.0.2.44")
    token.post("/", data={"grant_type": "password", "username": email, "password": "nope nope"},
               headers={"User-Agent": "itest-agent/1.0"})
    tokens = token.post("/", data={"grant_type": "password", "username": email,
                                   "password": PASSWORD}).json
    token.post("/revoke", data={"token": tokens["refresh_token"]})
    events = [(r.event, r.outcome, r.client) for r in audit_rows(deps, str(user_id))]
    assert events == [(audit.VERIFIED, audit.OK, events[0][2]),
                      (audit.LOGIN_FAILED, audit.REFUSED, "192.0.2.44"),
                      (audit.LOGIN, audit.OK, "192.0.2.44"),
                      (audit.LOGOUT, audit.OK, "192.0.2.44")]
    assert audit_rows(deps, str(user_id))[1].user_agent == "itest-agent/1.0"


def test_housekeeping_prunes_what_expired_once_a_minute(client: Client, deps: Container,
                                                        tap: EventTap, clock: FixedClock) -> None:
    from scanline.domain.rate_limits import HOUSEKEEPING_RUNS

    email = address()
    register(client, tap, email)
    code_requested(deps, email, clock)  # its event never came (dead-lettered)
    clock.advance(days=2)
    with deps.unit_of_work() as uow:  # whatever ran before (the stack's schedule, a test)
        uow.limits.clear(HOUSEKEEPING_RUNS, "run")
    first = client("housekeeping").post("/")
    assert first.json["status"] == "done" and first.json["deleted"]["registrations"] >= 1
    assert first.json["deleted"]["code_requests"] >= 1
    assert client("housekeeping").post("/").json == {"status": "skipped"}
    with deps.db.connect() as conn:
        assert conn.execute(sa.select(registrations.c.id).where(
            registrations.c.email == email)).first() is None
        assert conn.execute(sa.select(code_requests.c.id).where(
            code_requests.c.email == email)).first() is None
