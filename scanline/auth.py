"""Access tokens: the one signer (the token function) and the one verifier (every function).

Tokens are EdDSA (Ed25519) JWTs of type ``at+jwt`` (RFC 9068) whose ``kid`` is the RFC 7638
thumbprint of the signing key. The verifier is deliberately narrow: the algorithm is
pinned (``none``, HS256-with-the-public-key and every other confusion are refused before
any signature check), the key is chosen by ``kid`` among the published keys only, and
``exp``, ``nbf``, ``iat``, ``aud``, ``iss``, ``sub`` and ``jti`` are required. Time is
judged by the container's clock, the same clock the signer used.

Rotation: ``jwt-signing-key`` signs; ``jwt-previous-signing-key`` (optional) is the key
it replaced, still published in the JWKS and still accepted, so tokens it signed stay
valid until they expire (15 minutes) — then the previous key can be removed.

Only the token function holds those keys. Every other function verifies with the public
keys of its JWKS (``JWKS_URL``, fetched by ``scanline.adapters.jwks``), so a function that
checks tokens can never mint one.

Revocation: every access token names its session (``sid``). Logging out, a refresh token
reused after its grace (suspected theft) and a password change revoke sessions in
PostgreSQL; each verifier keeps the recently revoked sessions in memory, refreshed every
couple of seconds (``scanline.adapters.revocations``), and refuses their tokens: a
revoked session's tokens stop working everywhere within seconds, not at their expiry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from scanline.clock import Clock
from scanline.domain.tokens import access_claims
from scanline.errors import Unauthorized
from scanline.secrets import Secrets
from scanline.settings import Settings

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("sub", "sid", "iss", "aud", "iat", "nbf", "exp", "jti")
log = logging.getLogger(__name__)

# Tolerated clock difference between the replica that signed and the one that verifies.
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    # The token function's JWKS; empty where the signing keys themselves are mounted.
    jwks_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSettings:
        return cls(issuer=settings.get("JWT_ISSUER", f"{settings.public_url}/function/token"),
                   audience=settings.get("JWT_AUDIENCE", "scanline"),
                   jwks_url=settings.get("JWKS_URL"))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}


def thumbprint(key: Ed25519PublicKey) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    canonical = json.dumps(public_jwk(key), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def jwks_public_keys(document: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signature keys of a JWK set, by ``kid``.

    Any other member (another key type or curve, another algorithm, an encryption key, a
    malformed entry) is skipped, never interpreted: the verifier only ever sees EdDSA keys.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    found: dict[str, Ed25519PublicKey] = {}
    for jwk in document["keys"]:
        if not (isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519"
                and jwk.get("alg", ALGORITHM) == ALGORITHM and jwk.get("use", "sig") == "sig"
                and isinstance(jwk.get("kid"), str) and isinstance(jwk.get("x"), str)):
            continue
        try:
            raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
            found[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            continue
    return found


def load_private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the JWT signing key must be an Ed25519 private key (PKCS#8 PEM)")
    return key


class PublicKeys(Protocol):
    """Where a verifier finds the public key a token's ``kid`` names."""

    def find(self, kid: str) -> Ed25519PublicKey | None: ...


class RevokedSessions(Protocol):
    """Which sessions have ended (their access tokens are refused)."""

    def is_revoked(self, session_id: str) -> bool: ...


class KeyRing:
    """The current signing key plus the public keys tokens may be verified with."""

    def __init__(self, current: Ed25519PrivateKey,
                 previous: Ed25519PublicKey | None = None) -> None:
        self.signing_key = current
        self.kid = thumbprint(current.public_key())
        self.public_keys: dict[str, Ed25519PublicKey] = {self.kid: current.public_key()}
        if previous is not None:
            self.public_keys.setdefault(thumbprint(previous), previous)

    @classmethod
    def from_secrets(cls, secrets: Secrets) -> KeyRing:
        previous = secrets.read("jwt-previous-signing-key", default="")
        return cls(load_private_key(secrets.read("jwt-signing-key")),
                   load_private_key(previous).public_key() if previous else None)

    def find(self, kid: str) -> Ed25519PublicKey | None:
        return self.public_keys.get(kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**public_jwk(key), "kid": kid, "alg": ALGORITHM, "use": "sig"}
                         for kid, key in self.public_keys.items()]}


@dataclass(frozen=True)
class Claims:
    subject: str
    session_id: str
    token_id: str
    issued_at: datetime
    expires_at: datetime


class TokenSigner:
    def __init__(self, keys: KeyRing, settings: TokenSettings, clock: Clock) -> None:
        self._keys, self._settings, self._clock = keys, settings, clock

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._keys.signing_key, algorithm=ALGORITHM,
                          headers={"kid": self._keys.kid, "typ": TOKEN_TYPE})

    def issue(self, subject: str, session: str) -> str:
        """A fresh access token for ``subject`` in ``session`` (``scanline.domain.tokens``)."""
        return self.sign(access_claims(subject, session, issuer=self._settings.issuer,
                                       audience=self._settings.audience, now=self._clock.now()))


def _rejected(reason: str) -> Unauthorized:
    """One answer for every failure: the caller learns nothing about which check failed;
    the reason goes to the log (never the token itself)."""
    log.info("access token rejected: %s", reason)
    return Unauthorized("the access token is missing, invalid or expired")


class TokenVerifier:
    def __init__(self, keys: PublicKeys, settings: TokenSettings, clock: Clock,
                 revoked: RevokedSessions, leeway: int = LEEWAY_SECONDS) -> None:
        self._keys, self._revoked = keys, revoked
        self._settings, self._clock, self._leeway = settings, clock, leeway

    def verify(self, token: str | None) -> Claims:
        """The claims of a valid access token, or ``Unauthorized``."""
        if not token:
            raise _rejected("no token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _rejected("malformed") from None
        if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
            raise _rejected("algorithm or type")
        kid = header.get("kid")
        key = self._keys.find(kid) if isinstance(kid, str) else None
        if key is None:
            raise _rejected("unknown kid")
        try:
            payload = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=self._settings.audience,
                issuer=self._settings.issuer,
                # Time claims are checked below against the injected clock.
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": False,
                         "verify_nbf": False, "verify_iat": False})
        except jwt.PyJWTError:
            raise _rejected("signature or claims") from None
        claims = self._check_claims(payload)
        if self._revoked.is_revoked(claims.session_id):
            raise _rejected("session revoked")
        return claims

    def _check_claims(self, payload: Mapping[str, Any]) -> Claims:
        times = [payload[name] for name in ("iat", "nbf", "exp")]
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
            raise _rejected("time claims must be integers")
        iat, nbf, exp = times
        now = self._clock.now().timestamp()
        if now + self._leeway < nbf or now + self._leeway < iat or now >= exp + self._leeway:
            raise _rejected("not yet valid or expired")
        if not all(isinstance(payload[name], str) for name in ("sub", "sid", "jti")):
            raise _rejected("sub, sid and jti must be strings")
        return Claims(subject=payload["sub"], session_id=payload["sid"],
                      token_id=payload["jti"],
                      issued_at=datetime.fromtimestamp(iat, self._clock.now().tzinfo),
                      expires_at=datetime.fromtimestamp(exp, self._clock.now().tzinfo))
