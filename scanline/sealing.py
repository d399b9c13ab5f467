"""Sealed event data: what only the event's consumer may read, whoever else reads the broker.

Signatures (``scanline.signing``) say who sent an event, not who may read it, and every
holder of the broker's credentials can bind a queue of its own to the exchange. Most
events carry only ids and keys; ``email.requested`` carries what a mail says (a
verification code, a document's text). Its data is therefore sealed for send-email: HPKE
(RFC 9180, base mode: X25519, HKDF-SHA256, ChaCha20-Poly1305) to send-email's public key,
with the event type as the context, so only the holder of the private key
(``event-seal-key``, mounted in send-email alone) can open it. On the wire the data is
``{"sealed": <base64url>, "key": <key id>}``; the signature covers that sealed form.

The runtime seals what a producer emits and opens what the consumer receives, for every
type declared ``sealed`` in ``scanline.payloads``: handlers see the plain payload. During
a rotation the private-key file holds the new key first and the old one after it, so
events sealed before the switch still open.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from scanline import jsontext
from scanline.errors import DependencyUnavailable, InvalidInput
from scanline.validation import compiled, strict_object

SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
# The largest sealed data: the largest mail (scanline.payloads) with its framing.
MAX_SEALED = 4 * 1024 * 1024
SEALED = strict_object({"sealed": {"type": "string", "minLength": 1, "maxLength": MAX_SEALED},
                        "key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"}},
                       required=["sealed", "key"])
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def key_id(key: X25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64url(hashlib.sha256(raw).digest())


class Sealer:
    """Seals data for the consumer whose public key this is (producers hold it)."""

    def __init__(self, key: X25519PublicKey) -> None:
        self._key, self.kid = key, key_id(key)

    @classmethod
    def from_pem(cls, pem: str) -> Sealer:
        key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(key, X25519PublicKey):
            raise ValueError("event-seal-public-key must be an X25519 public key (PEM)")
        return cls(key)

    def seal(self, type_: str, data: Any) -> dict[str, str]:
        return self.seal_text(type_, json.dumps(data, ensure_ascii=False,
                                                separators=(",", ":")).encode())

    def seal_text(self, type_: str, plain: bytes) -> dict[str, str]:
        """Seal ``plain`` as it is: the consumer parses it only after opening it, so the
        fuzz suite seals hostile JSON this way to reach that parser."""
        return {"sealed": _b64url(SUITE.encrypt(plain, self._key, type_.encode())),
                "key": self.kid}


class Opener:
    """Opens data sealed for this consumer (send-email holds its private keys)."""

    def __init__(self, keys: Iterable[X25519PrivateKey]) -> None:
        self._keys = {key_id(k.public_key()): k for k in keys}
        if not self._keys:
            raise ValueError("event-seal-key holds no X25519 private key")

    @classmethod
    def from_pem(cls, text: str) -> Opener:
        keys = []
        for block in _PEM.findall(text):
            key = serialization.load_pem_private_key(block.encode(), password=None)
            if not isinstance(key, X25519PrivateKey):
                raise ValueError("event-seal-key must hold X25519 private keys (PKCS#8 PEM)")
            keys.append(key)
        return cls(keys)

    def public_pem(self) -> str:
        """The public key producers seal with: the newest key's (the file's first)."""
        first = next(iter(self._keys.values()))
        return first.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def first_pem(self) -> str:
        first = next(iter(self._keys.values()))
        return first.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode()

    def open(self, type_: str, data: Any) -> Any:
        compiled(SEALED).check(data, InvalidInput, f"{type_} events carry sealed data")
        key = self._keys.get(data["key"])
        if key is None:
            # A rotation out of order: retried (503) until the key is mounted, never lost.
            raise DependencyUnavailable("secrets", f"the {type_} event is sealed for key "
                                        f"{data['key']}, which event-seal-key does not hold")
        try:
            sealed = base64.urlsafe_b64decode(data["sealed"] + "=" * (-len(data["sealed"]) % 4))
            return jsontext.loads(SUITE.decrypt(sealed, key, type_.encode()),
                                  what=f"sealed {type_} data")
        except Exception:
            raise InvalidInput(f"the sealed data of the {type_} event does not open") from None
