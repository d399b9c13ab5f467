"""Generate the secret files stack.yml names, once, under ``.local/secrets``.

A secret is never overwritten: the database role and the broker user are set from these
files, so regenerating one would lock the running stack out of its own services. The one
exceptions hold no secret and are derived: the event keyring (``event-public-keys``),
rewritten from the ``event-key-<function>`` files beside it (plus the public keys a
rotation keeps, ``rotate_event_key``) every time, and ``event-seal-public-key``, the public
half of the newest key in ``event-seal-key``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from infra.local import paths
from scanline.sealing import Opener
from scanline.secrets import (
    EVENT_KEYRING,
    SEAL_KEY,
    SEAL_PUBLIC_KEY,
    event_key_secret,
    secret_kind,
)
from scanline.signing import Keyring, TrustedKey, key_id, keyring_document

ALWAYS = ("postgres-password", "rabbitmq-password", "s3-access-key", "s3-secret-key",
          paths.GATEWAY_PASSWORD_SECRET)
RETIRED_KEYS = "event-retired-keys.json"


def _password() -> str:
    return secrets.token_urlsafe(32)


def _hmac_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _access_key() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _ed25519_pem() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


def _x25519_pem() -> str:
    return X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()


GENERATORS: dict[str, Callable[[], str]] = {
    "password": _password,
    "hmac-key": _hmac_key,
    "access-key": _access_key,
    "ed25519-pem": _ed25519_pem,
    "x25519-pem": _x25519_pem,
}
# Derived from another secret file, rewritten from it every time: they hold no secret.
DERIVED = (EVENT_KEYRING, SEAL_PUBLIC_KEY)


def _write(path: Path, value: str, *, replace: bool = False) -> None:
    """Write a secret file created 0600 (never readable by others, not even briefly)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value if value.endswith("\n") else value + "\n")
    if replace:
        temporary.replace(path)
    else:
        os.link(temporary, path)  # fails if the file appeared meanwhile: never overwrite
        temporary.unlink()


def ensure_secrets(names: Iterable[str], directory: Path = paths.SECRETS_DIR) -> list[str]:
    """Create missing secret files (0600 in a 0700 directory); return the names created.
    The event keyring is rewritten from the event keys whenever it is among ``names``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    created = []
    wanted = set(names) | set(ALWAYS)
    if SEAL_PUBLIC_KEY in wanted:
        wanted.add(SEAL_KEY)  # the public key is derived from it
    for name in sorted(wanted):
        path = directory / name
        if path.exists() or name in DERIVED:
            continue
        _write(path, GENERATORS[secret_kind(name) or "password"]())
        created.append(name)
    if EVENT_KEYRING in wanted:
        write_keyring(directory)
    if SEAL_PUBLIC_KEY in wanted:
        write_seal_public_key(directory)
    return created


def _public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey), "event keys are Ed25519"
    return key.public_key()


def _retired(directory: Path) -> dict[str, list[dict[str, str]]]:
    """Public keys kept from rotations (``event-retired-keys.json``, not a secret either)."""
    path = directory / RETIRED_KEYS
    return json.loads(path.read_text()) if path.exists() else {}


def write_keyring(directory: Path = paths.SECRETS_DIR) -> Path:
    """``event-public-keys`` from every ``event-key-<function>`` file and the retired keys."""
    keys: dict[str, list[Ed25519PublicKey]] = {}
    for path in sorted(directory.glob(event_key_secret("*"))):
        producer = path.name.removeprefix(event_key_secret(""))
        keys.setdefault(producer, []).append(_public_key(path.read_text()))
    document = keyring_document(keys)
    document["keys"] += [jwk for jwks in _retired(directory).values() for jwk in jwks]
    path = directory / EVENT_KEYRING
    _write(path, json.dumps(document, indent=1, sort_keys=True), replace=True)
    return path


def write_seal_public_key(directory: Path = paths.SECRETS_DIR) -> Path:
    """``event-seal-public-key``: the public half of the first key in ``event-seal-key``
    (the newest, during a rotation)."""
    current = Opener.from_pem((directory / SEAL_KEY).read_text())
    path = directory / SEAL_PUBLIC_KEY
    _write(path, current.public_pem(), replace=True)
    return path


def rotate_seal_key(directory: Path = paths.SECRETS_DIR) -> None:
    """A new sealing key in front of the current ones: send-email opens both, the
    producers seal with the new one once they get the new public key. Deploy send-email's
    secret first; ``retire_seal_keys`` drops the old ones once nothing sealed for them is
    left on the broker (the replay window)."""
    path = directory / SEAL_KEY
    _write(path, _x25519_pem() + path.read_text(), replace=True)
    write_seal_public_key(directory)


def retire_seal_keys(directory: Path = paths.SECRETS_DIR) -> None:
    path = directory / SEAL_KEY
    _write(path, Opener.from_pem(path.read_text()).first_pem(), replace=True)


def rotate_event_key(function: str, directory: Path = paths.SECRETS_DIR) -> None:
    """Give ``function`` a new signing key, keeping the old public key in the keyring so
    events it already signed stay valid. Deploy the keyring to the consumers before the
    new key to the producer; ``retire_event_keys`` drops the old ones after the replay
    window (``EVENT_MAX_AGE_SECONDS``)."""
    path = directory / event_key_secret(function)
    retired = _retired(directory)
    old = Keyring(TrustedKey(key_id(k), function, k) for k in [_public_key(path.read_text())])
    retired.setdefault(function, []).extend(old.document()["keys"])
    _write(directory / RETIRED_KEYS, json.dumps(retired, indent=1, sort_keys=True),
           replace=True)
    _write(path, _ed25519_pem(), replace=True)
    write_keyring(directory)


def retire_event_keys(directory: Path = paths.SECRETS_DIR) -> None:
    """Forget the public keys kept by rotations (after the replay window has passed)."""
    (directory / RETIRED_KEYS).unlink(missing_ok=True)
    write_keyring(directory)


def export_for_compose(names: Iterable[str], source: Path = paths.SECRETS_DIR,
                       target: Path = paths.COMPOSE_SECRETS_DIR) -> Path:
    """Copies of ``names`` that the containers' own users can read.

    Compose bind-mounts a file secret with the host file's owner and mode and ignores
    ``uid``/``gid``/``mode`` (docker/compose#9648): a 0600 file is unreadable for the
    images' uid 10001 or PostgreSQL's postgres user. The copies are 0444 inside a 0700
    folder, so inside each container the secret is readable and on the host only its owner
    can reach them.
    """
    ensure_secrets(names, source)
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o700)
    for name in names:
        copy = target / name
        if copy.exists():
            copy.chmod(0o600)
        copy.write_text((source / name).read_text())
        copy.chmod(0o444)
    return target


def read_secret(name: str, directory: Path = paths.SECRETS_DIR) -> str:
    return (directory / name).read_text().strip()


def gateway_admin(directory: Path = paths.SECRETS_DIR) -> tuple[str, str]:
    """The local gateway's administrator, as basic auth takes them: ``/system/*`` and what
    ``/healthz`` finds down are theirs (faas-cli logs in with them)."""
    return paths.GATEWAY_ADMIN, read_secret(paths.GATEWAY_PASSWORD_SECRET, directory)


def main(argv: list[str] | None = None) -> None:
    """``python -m infra.local.secretgen rotate-event-key FUNCTION | retire-event-keys |
    rotate-seal-key | retire-seal-keys | compose`` (``SECRETS_DIR`` picks the folder; then
    upload with infra/openfaas/create-secrets.sh, or ``compose`` for docker-compose's
    copies)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m infra.local.secretgen")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser("rotate-event-key", help="a new signing key for a function")
    rotate.add_argument("function")
    commands.add_parser("retire-event-keys", help="drop public keys kept by rotations")
    commands.add_parser("rotate-seal-key", help="a new key for sealed event data")
    commands.add_parser("retire-seal-keys", help="keep only the newest sealing key")
    commands.add_parser("compose", help="readable copies of every secret docker-compose mounts")
    args = parser.parse_args(argv)
    if args.command == "compose":
        from infra.generate.compose import compose_secret_names

        target = export_for_compose(compose_secret_names())
        print(f"docker-compose secrets in {target}")
    elif args.command == "rotate-seal-key":
        rotate_seal_key()
        print(f"new key first in {SEAL_KEY}; {SEAL_PUBLIC_KEY} is its public key")
    elif args.command == "retire-seal-keys":
        retire_seal_keys()
        print(f"{SEAL_KEY} now holds only the newest key")
    elif args.command == "rotate-event-key":
        rotate_event_key(args.function)
        print(f"new {event_key_secret(args.function)}; {EVENT_KEYRING} keeps the old key")
    else:
        retire_event_keys()
        print(f"{EVENT_KEYRING} now holds only the current keys")


if __name__ == "__main__":
    main()
