"""Generate the secret files stack.yml names, once, under ``.local/secrets``.

A secret is never overwritten: the database role and the broker user are set from these
files, so regenerating one would lock the running stack out of its own services.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from collections.abc import Callable, Iterable
from pathlib import Path

from infra.local import paths

ALWAYS = ("postgres-password", "rabbitmq-password", "s3-access-key", "s3-secret-key")


def _password() -> str:
    return secrets.token_urlsafe(32)


def _hmac_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _access_key() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _ed25519_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


GENERATORS: dict[str, Callable[[], str]] = {
    "password": _password,
    "hmac-key": _hmac_key,
    "access-key": _access_key,
    "ed25519-pem": _ed25519_pem,
}


def secret_kinds() -> dict[str, str]:
    """``scanline.secrets.SECRET_KINDS`` when it exists; otherwise every secret is a password."""
    try:
        from scanline.secrets import SECRET_KINDS
    except ImportError:
        return {}
    return dict(SECRET_KINDS)


def ensure_secrets(names: Iterable[str], directory: Path = paths.SECRETS_DIR) -> list[str]:
    """Create missing secret files (0600 in a 0700 directory); return the names created."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    kinds = secret_kinds()
    created = []
    for name in sorted(set(names) | set(ALWAYS)):
        path = directory / name
        if path.exists():
            continue
        value = GENERATORS[kinds.get(name, "password")]()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value if value.endswith("\n") else value + "\n")
        created.append(name)
    return created


def read_secret(name: str, directory: Path = paths.SECRETS_DIR) -> str:
    return (directory / name).read_text().strip()
