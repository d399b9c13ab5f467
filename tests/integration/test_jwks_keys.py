"""The JWKS key source against a real HTTP server: caching, rotation, unknown kids, outages.

The forgery cases (alg none, HS256 with the public key, tampering, wrong claims...) run
against this key source too, through the parametrised ``verifier`` fixture of
tests/unit/test_accounts_jwt.py. Cache time is driven by a fake monotonic timer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import ECAlgorithm

from scanline.adapters.jwks import FRESH_SECONDS, MIN_INTERVAL_SECONDS, STALE_SECONDS, JwksKeys
from scanline.auth import (
    KeyRing,
    TokenSettings,
    TokenSigner,
    TokenVerifier,
    jwks_public_keys,
)
from scanline.clock import FixedClock
from scanline.errors import DependencyUnavailable, Unauthorized
from tests.support.jwks_server import JwksServer, serving


class _NothingRevoked:
    """No session ends in these tests (the revocation list has tests of its own)."""

    def is_revoked(self, session_id: str) -> bool:
        return False


NOTHING_REVOKED = _NothingRevoked()
SETTINGS = TokenSettings(issuer="https://scanline.test/function/token", audience="scanline")
CLOCK = FixedClock(datetime.now(UTC))


class Timer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def token(ring: KeyRing, subject: str = "user-1") -> str:
    return TokenSigner(ring, SETTINGS, CLOCK).issue(subject, "session-1")


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing(Ed25519PrivateKey.generate())


@pytest.fixture
def server(ring: KeyRing) -> Iterator[JwksServer]:
    with serving(ring.jwks()) as running:
        yield running


@pytest.fixture
def timer() -> Timer:
    return Timer()


def verifier_for(url: str, timer: Timer, timeout: float = 2.0) -> TokenVerifier:
    return TokenVerifier(JwksKeys(url, timeout, monotonic=timer), SETTINGS, CLOCK,
                         NOTHING_REVOKED)


def test_valid_token_verifies_and_the_keys_are_cached_for_their_lifespan(
        ring: KeyRing, server: JwksServer, timer: Timer) -> None:
    verifier = verifier_for(server.url, timer)
    assert verifier.verify(token(ring)).subject == "user-1"
    timer.advance(FRESH_SECONDS - 1)
    assert verifier.verify(token(ring, "user-2")).subject == "user-2"
    assert server.hits == 1
    timer.advance(1)
    verifier.verify(token(ring))
    assert server.hits == 2


def test_tokens_of_the_current_and_previous_keys_are_accepted() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    rotated = KeyRing(new, old.public_key())
    with serving(rotated.jwks()) as server:
        verifier = verifier_for(server.url, Timer())
        assert verifier.verify(token(KeyRing(old), "old")).subject == "old"
        assert verifier.verify(token(rotated, "new")).subject == "new"
        assert server.hits == 1


def test_unknown_kid_refetches_once_then_401(ring: KeyRing, server: JwksServer,
                                             timer: Timer) -> None:
    verifier = verifier_for(server.url, timer)
    verifier.verify(token(ring))
    timer.advance(MIN_INTERVAL_SECONDS)
    stranger = KeyRing(Ed25519PrivateKey.generate())
    for _ in range(5):
        with pytest.raises(Unauthorized):
            verifier.verify(token(stranger))
    assert server.hits == 2  # one refetch, then rate-limited


def test_a_rotated_key_is_picked_up_by_the_unknown_kid_refetch(ring: KeyRing,
                                                              server: JwksServer,
                                                              timer: Timer) -> None:
    verifier = verifier_for(server.url, timer)
    verifier.verify(token(ring))
    rotated = KeyRing(Ed25519PrivateKey.generate(), ring.signing_key.public_key())
    server.document = rotated.jwks()
    timer.advance(MIN_INTERVAL_SECONDS)
    assert verifier.verify(token(rotated, "after")).subject == "after"
    assert verifier.verify(token(ring, "before")).subject == "before"
    assert server.hits == 2


def _ec_only() -> dict[str, Any]:
    jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": "ec", "alg": "ES256"}]}


@pytest.mark.parametrize(("status", "document"), [
    (500, {"error": "boom"}), (200, {"keys": []}), (200, "not a jwks"), (200, _ec_only())])
def test_no_usable_jwks_and_nothing_cached_is_503(ring: KeyRing, server: JwksServer,
                                                   timer: Timer, status: int,
                                                   document: Any) -> None:
    server.status, server.document = status, document
    with pytest.raises(DependencyUnavailable) as raised:
        verifier_for(server.url, timer).verify(token(ring))
    assert raised.value.dependency == "jwks" and raised.value.status == 503


def test_unreachable_jwks_with_nothing_cached_is_503(ring: KeyRing, server: JwksServer,
                                                      timer: Timer) -> None:
    server.stop()
    with pytest.raises(DependencyUnavailable):
        verifier_for(server.url, timer).verify(token(ring))


def test_a_failing_jwks_is_retried_at_most_every_interval_then_recovers(
        ring: KeyRing, server: JwksServer, timer: Timer) -> None:
    server.status = 503
    verifier = verifier_for(server.url, timer)
    for _ in range(3):
        with pytest.raises(DependencyUnavailable):
            verifier.verify(token(ring))
    assert server.hits == 1
    server.status = 200
    timer.advance(MIN_INTERVAL_SECONDS)
    assert verifier.verify(token(ring)).subject == "user-1"
    assert server.hits == 2


def test_a_jwks_that_never_answers_is_503_after_the_timeout(ring: KeyRing,
                                                             timer: Timer) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the backlog; nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"
        with pytest.raises(DependencyUnavailable):
            verifier_for(url, timer, timeout=0.2).verify(token(ring))


def test_jwks_down_with_a_warm_cache_still_verifies_until_the_cache_is_too_old(
        ring: KeyRing, server: JwksServer, timer: Timer) -> None:
    verifier = verifier_for(server.url, timer)
    verifier.verify(token(ring))
    server.stop()
    timer.advance(FRESH_SECONDS + 1)  # due for a refresh, which fails
    assert verifier.verify(token(ring, "still")).subject == "still"
    with pytest.raises(Unauthorized):  # forgeries are still refused meanwhile
        verifier.verify(token(KeyRing(Ed25519PrivateKey.generate())))
    timer.advance(STALE_SECONDS - FRESH_SECONDS)
    with pytest.raises(DependencyUnavailable):
        verifier.verify(token(ring))


def test_only_ed25519_signature_keys_are_taken_from_a_jwks(ring: KeyRing) -> None:
    good = ring.jwks()["keys"][0]
    document = {"keys": [
        good,
        {**good, "kid": "hs", "alg": "HS256"},
        {**good, "kid": "enc", "use": "enc"},
        {**good, "kid": "x25519", "crv": "X25519"},
        {**good, "kid": "ec", "kty": "EC"},
        {**good, "kid": "short", "x": good["x"][:10]},
        {**good, "kid": 7},
        *_ec_only()["keys"],
        "garbage",
    ]}
    assert list(jwks_public_keys(document)) == [ring.kid]
    with pytest.raises(ValueError):
        jwks_public_keys({"keys": "none"})
