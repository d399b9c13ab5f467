"""Signed events: every event is signed by the function that emits it, and verified by the
function that receives it before anything else happens.

CloudEvents has no signature standard, and the brokers Scanline runs on add nothing that
names the sender (OpenFaaS exposes every function on its gateway; Knative's sender
identity is alpha and absent from the RabbitMQ broker). So the event carries its own proof:

- The signature is Ed25519 over the RFC 8785 (JSON Canonicalization Scheme) form of
  ``specversion``, ``id``, ``source``, ``type``, ``subject``, ``time`` (UTC, microseconds),
  ``datacontenttype``, the data and the key id. Canonical JSON rather than the bytes on the
  wire, so the signature survives binary and structured mode, RabbitMQ and Knative's
  broker, which all re-serialise. Other extensions (``traceparent``) are not covered: a
  broker may rewrite them and nothing is decided on them.
- The key id (``keyid`` extension, RFC 7638 thumbprint) picks the public key in the
  keyring; the keyring says which function owns it. The event is accepted only if that
  function may emit the type (``scanline.payloads``), its ``source`` is that function's own,
  and its ``time`` is neither older than the replay window nor in the future.
- Within the window, a replayed event is a duplicate: consumers record each event id
  (``processed_events``, or the job row for ``ocr``), so it has no second effect.

Each function signs with its own key (secret ``event-key-<function>``); the keyring of
public keys (``event-public-keys``, no secret in it) is what consumers trust. Rotating a
key: add the new public key to the keyring (both verify), then give the producer the new
private key, then drop the old public key once the window has passed.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from scanline import payloads
from scanline.auth import public_jwk, thumbprint
from scanline.clock import Clock
from scanline.errors import Unauthorized
from scanline.events import Event
from scanline.jsontext import MAX_SAFE_INTEGER

KEY_ID = "keyid"
SIGNATURE = "signature"
# Tolerated clock difference between the producer's replica and the consumer's.
MAX_SKEW = timedelta(minutes=5)


def source_of(producer: str) -> str:
    """The CloudEvent ``source`` of every event function ``producer`` emits."""
    return f"/functions/{producer}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint, the same rule as the JWT keys' ``kid``."""
    return thumbprint(key)


def _canonical_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_bytes(event: Event, kid: str) -> bytes:
    """What the signature covers (see the module docstring)."""
    try:
        document: dict[str, Any] = {
            "specversion": event.specversion, "id": event.id, "source": event.source,
            "type": event.type, "subject": event.subject, "time": _canonical_time(event.time),
            "datacontenttype": event.datacontenttype, KEY_ID: kid,
        }
        if isinstance(event.data, (bytes, bytearray)):
            document["data_base64"] = base64.b64encode(event.data).decode()
        else:
            document["data"] = event.data
        return canonical_json(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, OverflowError):
        # A time beyond the calendar, text that is not Unicode: nothing was signed like it.
        raise _refused("the event cannot be put in canonical form") from None


def _without_floats(value: Any) -> bool:
    """True for JSON made of strings, safe integers, booleans and null under ASCII keys."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) and k.isascii() for k in item):
                return False
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif not (isinstance(item, int) and abs(item) <= MAX_SAFE_INTEGER):
            return False
    return True


def canonical_json(document: Any) -> bytes:
    """RFC 8785 canonical JSON. For documents without floats (all of Scanline's events)
    the C encoder with sorted keys, no whitespace and no ASCII-escaping writes the very same
    bytes RFC 8785 prescribes (a unit test holds them equal) at a tenth of the cost;
    anything else goes through the ``rfc8785`` implementation."""
    if _without_floats(document):
        return json.dumps(document, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()
    return rfc8785.dumps(document)


class EventRejected(Unauthorized):
    """An event whose signature or producer cannot be trusted (401; dead-lettered)."""

    slug = "event-not-trusted"

    def __init__(self, detail: str = "", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.headers["WWW-Authenticate"] = 'Signature realm="scanline-events"'


def _refused(reason: str) -> EventRejected:
    return EventRejected(f"event refused: {reason}")


class EventSigner:
    """Signs what one function emits, with that function's own key."""

    def __init__(self, producer: str, key: Ed25519PrivateKey) -> None:
        self.producer = producer
        self._key = key
        self.kid = key_id(key.public_key())

    @classmethod
    def from_pem(cls, producer: str, pem: str) -> EventSigner:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"event-key-{producer} must be an Ed25519 private key (PKCS#8 PEM)")
        return cls(producer, key)

    def sign(self, event: Event) -> Event:
        if event.source != source_of(self.producer):
            raise ValueError(f"{self.producer} signs only events from {source_of(self.producer)}")
        signature = self._key.sign(signed_bytes(event, self.kid))
        return dataclasses.replace(event, extensions={
            **event.extensions, KEY_ID: self.kid, SIGNATURE: _b64url(signature)})


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    producer: str
    key: Ed25519PublicKey

    def jwk(self) -> dict[str, str]:
        return {**public_jwk(self.key), "kid": self.kid, "alg": "EdDSA", "use": "sig",
                "producer": self.producer}


class Keyring:
    """The public keys consumers trust, each naming the one function that holds it.

    Its document is a JWK set whose keys carry a ``producer`` member; during a rotation a
    producer has two keys in it."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self._keys = {k.kid: k for k in keys}

    @classmethod
    def from_document(cls, document: Any) -> Keyring:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the event keyring is not a JWK set")
        keys = []
        for jwk in document["keys"]:
            if not (isinstance(jwk, dict) and jwk.get("kty") == "OKP"
                    and jwk.get("crv") == "Ed25519" and isinstance(jwk.get("x"), str)
                    and isinstance(jwk.get("producer"), str)):
                raise ValueError(f"the event keyring has an entry that is not an Ed25519 "
                                 f"producer key: {str(jwk)[:80]}")
            key = Ed25519PublicKey.from_public_bytes(_unb64url(jwk["x"]))
            kid = key_id(key)
            if jwk.get("kid", kid) != kid:
                raise ValueError(f"keyring entry {jwk['kid']!r} is not its key's thumbprint")
            keys.append(TrustedKey(kid, jwk["producer"], key))
        return cls(keys)

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        return cls.from_document(json.loads(text))

    def find(self, kid: str) -> TrustedKey | None:
        return self._keys.get(kid)

    def document(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self._keys.values()]}


class EventVerifier:
    """Decides whether a received event is trusted; the reason for a refusal is the detail
    of the 401 (it names no key material, only which rule failed)."""

    def __init__(self, keyring: Keyring, clock: Clock, *, max_age: timedelta,
                 max_skew: timedelta = MAX_SKEW) -> None:
        """``max_age`` (``EVENT_MAX_AGE_SECONDS``) is the replay window: consumers keep the
        ids they processed at least this long, so within it a replay is a duplicate and
        after it a refusal."""
        self._keyring, self._clock = keyring, clock
        self._max_age, self._max_skew = max_age, max_skew

    def verify(self, event: Event) -> str:
        """The producer that signed ``event``, or ``EventRejected``."""
        kid, signature = event.extensions.get(KEY_ID), event.extensions.get(SIGNATURE)
        if not isinstance(kid, str) or not isinstance(signature, str):
            raise _refused("it is not signed")
        trusted = self._keyring.find(kid)
        if trusted is None:
            raise _refused("it is signed with an unknown key")
        try:
            trusted.key.verify(_unb64url(signature), signed_bytes(event, kid))
        except (InvalidSignature, binascii.Error, ValueError):
            raise _refused("the signature does not match the event") from None
        payload = payloads.by_type(event.type)
        if payload is None or trusted.producer not in payload.PRODUCERS:
            raise _refused(f"{trusted.producer} may not emit {event.type}")
        if event.source != source_of(trusted.producer):
            raise _refused(f"the source is not {source_of(trusted.producer)}")
        self._check_time(event.time)
        return trusted.producer

    def _check_time(self, sent: datetime | None) -> None:
        if sent is None:
            raise _refused("it has no time")
        if sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)
        now = self._clock.now()
        if sent < now - self._max_age:
            raise _refused(f"it is older than {self._max_age} (the replay window)")
        if sent > now + self._max_skew:
            raise _refused("its time is in the future")


def keyring_document(producers: Mapping[str, Iterable[Ed25519PublicKey]]) -> dict[str, Any]:
    """The keyring document for these producers' public keys (the set-up tools write it)."""
    return Keyring(TrustedKey(key_id(k), producer, k) for producer, keys in producers.items()
                   for k in keys).document()
