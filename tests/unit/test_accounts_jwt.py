"""The shared access-token verifier: what it accepts, and every forgery it must refuse.

The ``verifier`` fixture runs each case twice: with the token function's own key ring, and
with the keys fetched from a JWKS served over HTTP (what every other function uses).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scanline.adapters.jwks import JwksKeys
from scanline.auth import (
    KeyRing,
    TokenSettings,
    TokenSigner,
    TokenVerifier,
    load_private_key,
    public_jwk,
    thumbprint,
)
from scanline.clock import FixedClock
from scanline.domain.tokens import access_claims
from scanline.errors import Unauthorized
from tests.support.jwks_server import serving

SETTINGS = TokenSettings(issuer="https://scanline.test/function/token", audience="scanline")
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Revoked:
    """Sessions ended in the test (the real list polls PostgreSQL: an integration test)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self.ids


NONE_REVOKED = Revoked()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing(Ed25519PrivateKey.generate())


@pytest.fixture
def signer(ring: KeyRing, clock: FixedClock) -> TokenSigner:
    return TokenSigner(ring, SETTINGS, clock)


@pytest.fixture(params=["key ring", "jwks"])
def verifier(request: pytest.FixtureRequest, ring: KeyRing,
             clock: FixedClock) -> Iterator[TokenVerifier]:
    if request.param == "key ring":
        yield TokenVerifier(ring, SETTINGS, clock, NONE_REVOKED)
        return
    with serving(ring.jwks()) as server:
        yield TokenVerifier(JwksKeys(server.url), SETTINGS, clock, NONE_REVOKED)


def claims(**changes: Any) -> dict[str, Any]:
    base = access_claims("user-1", "session-1", issuer=SETTINGS.issuer,
                         audience=SETTINGS.audience, now=NOW)
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def rejected(verifier: TokenVerifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except Unauthorized as exc:
        assert exc.detail == "the access token is missing, invalid or expired"
        return True
    return False


def test_rfc8037_thumbprint_example() -> None:
    # RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(x)
    assert thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_issued_token_verifies_with_kid_type_and_claims(signer: TokenSigner, ring: KeyRing,
                                                        verifier: TokenVerifier) -> None:
    token = signer.issue("user-1", "session-1")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": ring.kid}
    verified = verifier.verify(token)
    assert verified.subject == "user-1"
    assert verified.expires_at - verified.issued_at == timedelta(minutes=15)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert "email" not in payload and "name" not in payload


def test_token_is_valid_until_exp_then_refused(signer: TokenSigner, verifier: TokenVerifier,
                                               clock: FixedClock) -> None:
    token = signer.issue("user-1", "session-1")
    clock.advance(minutes=14, seconds=59)
    verifier.verify(token)
    clock.advance(seconds=10)
    assert rejected(verifier, token)


def test_not_yet_valid_token_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    later = int((NOW + timedelta(hours=1)).timestamp())
    token = TokenSigner(ring, SETTINGS, FixedClock(NOW)).sign(claims(nbf=later))
    assert rejected(verifier, token)


@pytest.mark.parametrize("change", [{"aud": "someone-else"}, {"iss": "https://evil.example"},
                                    {"aud": None}, {"iss": None}, {"exp": None},
                                    {"nbf": None}, {"jti": None}, {"sub": None},
                                    {"exp": "never"}, {"aud": ["other", "more"]},
                                    {"sid": None}, {"sid": 7}])
def test_wrong_or_missing_claims_are_refused(ring: KeyRing, verifier: TokenVerifier,
                                             change: dict[str, Any]) -> None:
    token = TokenSigner(ring, SETTINGS, FixedClock(NOW)).sign(claims(**change))
    assert rejected(verifier, token)


def test_alg_none_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": ring.kid}).encode())
    body = b64(json.dumps(claims()).encode())
    assert rejected(verifier, f"{header}.{body}.")
    assert rejected(verifier, f"{header}.{body}.c2ln")


def test_hs256_signed_with_the_public_key_is_refused(ring: KeyRing,
                                                     verifier: TokenVerifier) -> None:
    """Algorithm confusion: the attacker knows the public key and HMACs with it."""
    public = ring.signing_key.public_key()
    for secret in (public.public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo),
                   json.dumps(public_jwk(public)).encode(),
                   base64.urlsafe_b64decode(public_jwk(public)["x"] + "=")):
        header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": ring.kid}).encode())
        body = b64(json.dumps(claims()).encode())
        mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        assert rejected(verifier, f"{header}.{body}.{b64(mac)}")


def test_tampered_payload_or_signature_is_refused(signer: TokenSigner,
                                                  verifier: TokenVerifier) -> None:
    header, body, signature = signer.issue("user-1", "session-1").split(".")
    forged_body = b64(json.dumps(claims(sub="admin")).encode())
    assert rejected(verifier, f"{header}.{forged_body}.{signature}")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert rejected(verifier, f"{header}.{body}.{flipped}")


def test_unknown_kid_or_foreign_key_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    stranger = KeyRing(Ed25519PrivateKey.generate())
    assert rejected(verifier, TokenSigner(stranger, SETTINGS, FixedClock(NOW)).sign(claims()))
    # A foreign key that claims our kid: the signature check fails.
    foreign = jwt.encode(claims(), stranger.signing_key, algorithm="EdDSA",
                         headers={"kid": ring.kid, "typ": "at+jwt"})
    assert rejected(verifier, foreign)


def test_wrong_type_header_is_refused(ring: KeyRing, verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), ring.signing_key, algorithm="EdDSA",
                       headers={"kid": ring.kid, "typ": "JWT"})
    assert rejected(verifier, token)


@pytest.mark.parametrize("garbage", [None, "", "abc", "a.b.c", "e30.e30.", "..."])
def test_garbage_is_refused(verifier: TokenVerifier, garbage: str | None) -> None:
    with pytest.raises(Unauthorized):
        verifier.verify(garbage)


def test_rotation_publishes_both_keys_and_old_tokens_stay_valid(clock: FixedClock) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    before = KeyRing(old)
    old_token = TokenSigner(before, SETTINGS, clock).issue("user-1", "session-1")
    after = KeyRing(load_private_key(pem(new)), old.public_key())
    assert [k["kid"] for k in after.jwks()["keys"]] == [after.kid, before.kid]
    assert all(k["alg"] == "EdDSA" and k["kty"] == "OKP" and "d" not in k
               for k in after.jwks()["keys"])
    verifier = TokenVerifier(after, SETTINGS, clock, NONE_REVOKED)
    assert verifier.verify(old_token).subject == "user-1"
    fresh = TokenSigner(after, SETTINGS, clock).issue("u2", "session-1")
    assert verifier.verify(fresh).subject == "u2"
    # Once the previous key is dropped from the ring, its tokens are refused.
    assert rejected(TokenVerifier(KeyRing(new), SETTINGS, clock, NONE_REVOKED), old_token)


def test_a_non_ed25519_signing_key_is_refused_at_load() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
    with pytest.raises(ValueError):
        load_private_key(text)


def test_a_revoked_sessions_tokens_are_refused(signer: TokenSigner, ring: KeyRing,
                                               clock: FixedClock) -> None:
    revoked = Revoked()
    verifier = TokenVerifier(ring, SETTINGS, clock, revoked)
    token = signer.issue("user-1", "session-9")
    assert verifier.verify(token).session_id == "session-9"
    revoked.ids.add("session-9")
    assert rejected(verifier, token)
    assert verifier.verify(signer.issue("user-1", "session-10")).subject == "user-1"
