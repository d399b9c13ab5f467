"""Text that JSON allows but PostgreSQL cannot store, in every field that reaches the
database unchecked by its schema: a 422 naming the field (the token endpoints, which speak
RFC 6749: ``invalid_request`` naming it), never a 500.

schemathesis generates UTF-8 strings only, so it never sends a lone surrogate (``\\ud800``
is valid JSON) and rarely puts a NUL where it matters; these cases send both on purpose.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from tests.support.stack import Stack

pytestmark = pytest.mark.fuzz

HOSTILE = {"nul": "ab\x00cd-efgh-ijkl", "surrogate": "ab\ud800cd-efgh-ijkl"}
PASSWORD = "Zq8!vLx9#pW2-fuzz"


def _email() -> str:
    return f"fuzz-{uuid.uuid4().hex[:12]}@example.com"


# (function, sub-path, body with "?" where the hostile text goes, the field's pointer)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("register", "", {"name": "?", "email": "@", "password": PASSWORD}, "/name"),
    ("register", "", {"name": "Fuzz", "email": "@", "password": "?"}, "/password"),
    ("verify-otp", "/recovery", {"email": "@", "otp": "123456", "password": "?"}, "/password"),
    ("token", "", {"grant_type": "password", "username": "@", "password": "?"}, "/password"),
    ("token", "", {"grant_type": "refresh_token", "refresh_token": "?"}, "/refresh_token"),
    ("token", "/revoke", {"token": "?"}, "/token"),
]
OAUTH = {("token", ""), ("token", "/revoke")}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize(("function", "path", "body", "pointer"), CASES,
                         ids=[f"{c[0]}{c[1]}{c[3]}" for c in CASES])
def test_unstorable_text_is_a_422(stack: Stack, kind: str, function: str, path: str,
                                  body: dict[str, Any], pointer: str) -> None:
    filled = {k: HOSTILE[kind] if v == "?" else _email() if v == "@" else v
              for k, v in body.items()}
    r = requests.post(f"{stack.gateway}/function/{function}{path}", json=filled, timeout=15)
    if (function, path) in OAUTH:
        assert (r.status_code, r.json()["error"]) == (400, "invalid_request"), r.text
        assert pointer in r.json()["error_description"]
    else:
        assert r.status_code == 422, r.text
        assert r.headers["Content-Type"] == "application/problem+json"
        assert pointer in [e["pointer"] for e in r.json()["errors"]]
    assert HOSTILE[kind] not in r.text  # a password is never quoted back
