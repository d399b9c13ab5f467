"""Accounts through the gateway, as a user would: register, read the code from the mail
sink, verify, log in, refresh, revoke; plus the answers an attacker would probe."""

from __future__ import annotations

import re
import uuid
from typing import Any

import jwt
import pytest
import requests

from tests.support import clients
from tests.support.mailbox import Mailbox
from tests.support.stack import Stack

PASSWORD = "correct horse battery staple"


def url(stack: Stack, function: str, path: str = "") -> str:
    return f"{stack.gateway}/function/{function}{path}"


def address() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}@example.com"


def post(stack: Stack, function: str, body: Any, path: str = "", **kw: Any) -> requests.Response:
    """From a client address of its own: limits per address never leak between tests."""
    return clients.session().post(url(stack, function, path), json=body, timeout=15, **kw)


def code_from_mail(mailbox: Mailbox, email: str) -> str:
    message = mailbox.wait_for(to=email, subject="verification code", timeout=15)
    found = re.search(r"code is (\d{6})", message.get_content())
    assert found, message.get_content()
    return found.group(1)


@pytest.fixture
def verified_user(stack: Stack, mailbox: Mailbox) -> str:
    email = address()
    r = post(stack, "register", {"name": "E2E", "email": email, "password": PASSWORD})
    assert r.status_code == 202
    code = code_from_mail(mailbox, email)
    verified = post(stack, "verify-otp", {"email": email, "otp": code, "password": PASSWORD})
    assert verified.status_code == 200
    return email


def login(stack: Stack, email: str, password: str = PASSWORD) -> requests.Response:
    return clients.session().post(url(stack, "token"), timeout=15, data={
        "grant_type": "password", "username": email, "password": password})


def refresh(stack: Stack, token: str) -> requests.Response:
    return requests.post(url(stack, "token"), timeout=15,
                         data={"grant_type": "refresh_token", "refresh_token": token})


def test_register_verify_login_userinfo(stack: Stack, mailbox: Mailbox) -> None:
    email = address()
    r = post(stack, "register", {"name": "Eve Example", "email": email.upper(),
                                 "password": PASSWORD})
    assert (r.status_code, r.json()) == (202, {"status": "pending_verification"})
    assert login(stack, email).json()["error"] == "invalid_grant"  # no account yet
    code = code_from_mail(mailbox, email)
    verified = post(stack, "verify-otp", {"email": email, "otp": code, "password": PASSWORD})
    assert (verified.status_code, verified.json()) == (200, {"status": "verified"})
    assert post(stack, "verify-otp", {"email": email, "otp": code,
                                      "password": PASSWORD}).status_code == 400

    tokens = login(stack, email)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    header = jwt.get_unverified_header(body["access_token"])
    jwks = requests.get(url(stack, "token", "/jwks.json"), timeout=15).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(body["access_token"], jwt.PyJWK(key).key, algorithms=["EdDSA"],
                        audience="scanline", issuer=f"{stack.gateway}/function/token")
    assert set(claims) == {"sub", "sid", "iss", "aud", "iat", "nbf", "exp", "jti"}

    me = requests.get(url(stack, "token", "/userinfo"), timeout=15,
                      headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() | {"created_at": None} == {
        "sub": claims["sub"], "name": "Eve Example", "email": email, "email_verified": True,
        "created_at": None}


def test_refresh_rotation_reuse_and_revoke(stack: Stack, verified_user: str) -> None:
    first = login(stack, verified_user).json()["refresh_token"]
    rotated = refresh(stack, first)
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert refresh(stack, first).status_code == 200  # within the grace: a concurrent refresh
    other = login(stack, verified_user).json()["refresh_token"]
    assert requests.post(url(stack, "token", "/revoke"), timeout=15,
                         data={"token": other}).json() == {"status": "revoked"}
    assert refresh(stack, other).json()["error"] == "invalid_grant"
    assert refresh(stack, second).status_code == 200  # the other session goes on


def test_no_enumeration_through_register_issue_otp_or_token(stack: Stack,
                                                            verified_user: str) -> None:
    new = post(stack, "register", {"name": "N", "email": address(), "password": PASSWORD})
    old = post(stack, "register", {"name": "N", "email": verified_user, "password": PASSWORD})
    assert (new.status_code, new.text) == (old.status_code, old.text)
    # A registration's own code does not use the resend slot: a known address right after
    # its sign-up and an unknown one get the same answers, and the same limit after.
    pending = address()
    assert post(stack, "register", {"name": "N", "email": pending,
                                    "password": PASSWORD}).status_code == 202
    stranger = address()
    first = [post(stack, "issue-otp", {"email": e}) for e in (pending, stranger)]
    again = [post(stack, "issue-otp", {"email": e}) for e in (pending, stranger)]
    assert {(r.status_code, r.text) for r in first} == {(202, '{"status": "otp_sent"}')}
    assert len({(r.status_code, r.text) for r in again}) == 1 and again[0].status_code == 429
    wrong = login(stack, verified_user, "not the password")
    missing = login(stack, address(), "not the password")
    assert (wrong.status_code, wrong.text) == (missing.status_code, missing.text)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_resend_is_limited_for_any_address(stack: Stack) -> None:
    email = address()
    assert post(stack, "issue-otp", {"email": email}).status_code == 202
    again = post(stack, "issue-otp", {"email": email})
    assert again.status_code == 429 and 0 < int(again.headers["Retry-After"]) <= 60
    assert again.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(("function", "body", "status"), [
    ("register", {"name": "N", "email": "x@example.com", "password": "x" * 10_000}, 422),
    ("register", {"name": "N", "email": "x@example.com"}, 422),
    ("register", {"name": "N", "email": "x@example.com", "password": PASSWORD, "role": 1}, 422),
    ("verify-otp", {"email": "x@example.com", "otp": "abcdef"}, 422),
    ("issue-otp", {"email": "not an address"}, 422),
])
def test_bad_input_is_a_problem_document(stack: Stack, function: str, body: Any,
                                         status: int) -> None:
    r = post(stack, function, body)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == status


def test_bad_token_requests_are_oauth_errors(stack: Stack) -> None:
    r = requests.post(url(stack, "token"), timeout=15, data={
        "grant_type": "password", "username": "x@example.com", "password": "x" * 10_000})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("function", ["register", "issue-otp", "verify-otp", "token"])
def test_non_json_and_oversized_bodies(stack: Stack, function: str) -> None:
    broken = requests.post(url(stack, function), data=b"{oops", timeout=15,
                           headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    huge = requests.post(url(stack, function), data=b"{" + b" " * 70_000 + b"}", timeout=15,
                         headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert huge.headers["Content-Type"] == "application/problem+json"
