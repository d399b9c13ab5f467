"""Accounts through the gateway, as a user would: register, read the code from the mail
sink, verify, log in, refresh, revoke; plus the answers an attacker would probe."""

from __future__ import annotations

import re
import uuid
from typing import Any

import jwt
import pytest
import requests

from tests.support.mailbox import Mailbox
from tests.support.stack import Stack

PASSWORD = "correct horse battery staple"


def url(stack: Stack, function: str, path: str = "") -> str:
    return f"{stack.gateway}/function/{function}{path}"


def address() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}@example.com"


def post(stack: Stack, function: str, body: Any, path: str = "", **kw: Any) -> requests.Response:
    return requests.post(url(stack, function, path), json=body, timeout=15, **kw)


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
    assert post(stack, "verify-otp", {"email": email, "otp": code}).status_code == 200
    return email


def login(stack: Stack, email: str, password: str = PASSWORD) -> requests.Response:
    return post(stack, "token", {"grant_type": "password", "username": email,
                                 "password": password})


def test_register_verify_login_userinfo(stack: Stack, mailbox: Mailbox) -> None:
    email = address()
    r = post(stack, "register", {"name": "Eve Example", "email": email.upper(),
                                 "password": PASSWORD})
    assert (r.status_code, r.json()) == (202, {"status": "pending_verification"})
    assert login(stack, email).status_code == 403  # not verified yet
    code = code_from_mail(mailbox, email)
    verified = post(stack, "verify-otp", {"email": email, "otp": code})
    assert (verified.status_code, verified.json()) == (200, {"status": "verified"})
    assert post(stack, "verify-otp", {"email": email, "otp": code}).status_code == 400

    tokens = requests.post(url(stack, "token"), timeout=15, data={
        "grant_type": "password", "username": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    header = jwt.get_unverified_header(body["access_token"])
    jwks = requests.get(url(stack, "token", "/jwks.json"), timeout=15).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(body["access_token"], jwt.PyJWK(key).key, algorithms=["EdDSA"],
                        audience="scanline", options={"verify_iss": False})
    assert set(claims) == {"sub", "iss", "aud", "iat", "nbf", "exp", "jti"}

    me = requests.get(url(stack, "token", "/userinfo"), timeout=15,
                      headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() | {"created_at": None} == {
        "sub": claims["sub"], "name": "Eve Example", "email": email, "email_verified": True,
        "created_at": None}


def test_refresh_rotation_reuse_and_revoke(stack: Stack, verified_user: str) -> None:
    first = login(stack, verified_user).json()["refresh_token"]
    grant = {"grant_type": "refresh_token", "refresh_token": first}
    rotated = post(stack, "token", grant)
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert post(stack, "token", grant).status_code == 401  # reuse of the rotated token
    assert post(stack, "token", {"grant_type": "refresh_token",
                                 "refresh_token": second}).status_code == 401  # family revoked
    other = login(stack, verified_user).json()["refresh_token"]
    assert post(stack, "token", {"refresh_token": other}, "/revoke").status_code == 200
    assert post(stack, "token", {"grant_type": "refresh_token",
                                 "refresh_token": other}).status_code == 401


def test_no_enumeration_through_register_issue_otp_or_token(stack: Stack,
                                                            verified_user: str) -> None:
    new = post(stack, "register", {"name": "N", "email": address(), "password": PASSWORD})
    old = post(stack, "register", {"name": "N", "email": verified_user, "password": PASSWORD})
    assert (new.status_code, new.text) == (old.status_code, old.text)
    # The user's registration already used its one code this minute; an unknown address
    # that asked once is limited the same way, with the same answer.
    stranger = address()
    assert post(stack, "issue-otp", {"email": stranger}).status_code == 202
    known = post(stack, "issue-otp", {"email": verified_user})
    unknown = post(stack, "issue-otp", {"email": stranger})
    assert (known.status_code, known.text) == (unknown.status_code, unknown.text)
    assert known.status_code == 429
    wrong = login(stack, verified_user, "not the password")
    missing = login(stack, address(), "not the password")
    assert (wrong.status_code, wrong.text) == (missing.status_code, missing.text)
    assert wrong.status_code == 401


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
    ("token", {"grant_type": "password", "username": "x@example.com", "password": "x" * 10_000},
     422),
    ("verify-otp", {"email": "x@example.com", "otp": "abcdef"}, 422),
    ("issue-otp", {"email": "not an address"}, 422),
])
def test_bad_input_is_a_problem_document(stack: Stack, function: str, body: Any,
                                         status: int) -> None:
    r = post(stack, function, body)
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == status


@pytest.mark.parametrize("function", ["register", "issue-otp", "verify-otp", "token"])
def test_non_json_and_oversized_bodies(stack: Stack, function: str) -> None:
    broken = requests.post(url(stack, function), data=b"{oops", timeout=15,
                           headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    huge = requests.post(url(stack, function), data=b"{" + b" " * 70_000 + b"}", timeout=15,
                         headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert huge.headers["Content-Type"] == "application/problem+json"
