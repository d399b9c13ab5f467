"""Secrets are files, never environment variables.

OpenFaaS on Kubernetes mounts ``/var/openfaas/secrets/<name>`` as a file, while
``faas-cli generate`` for Knative mounts each secret as a directory holding one file per
key. ``read`` accepts both so the same image runs on either platform.
"""

from __future__ import annotations

from pathlib import Path

from scanline.errors import DependencyUnavailable

# The public keys that verify events (scanline.signing): nothing secret in it, but OpenFaaS
# mounts only secrets into functions, so it travels the same way.
EVENT_KEYRING = "event-public-keys"
_EVENT_KEY_PREFIX = "event-key-"
# Sealed event data (scanline.sealing): send-email's private keys, and the public key the
# producers of sealed types seal with (no secret in it; it travels the same way).
SEAL_KEY = "event-seal-key"
SEAL_PUBLIC_KEY = "event-seal-public-key"


def event_key_secret(function: str) -> str:
    """The secret holding the private key ``function`` signs its events with."""
    return _EVENT_KEY_PREFIX + function


# Every secret the code reads, with the kind of value a generator must produce (and
# event-key-<function>: "ed25519-pem", one per emitting function). stack.yml, the Knative
# manifests and the local secret generator are checked against this.
SECRET_KINDS: dict[str, str] = {
    "postgres-password": "password",
    "rabbitmq-password": "password",
    "s3-access-key": "access-key",
    "s3-secret-key": "password",
    "smtp-password": "password",
    "jwt-signing-key": "ed25519-pem",
    "jwt-previous-signing-key": "ed25519-pem",
    "otp-hmac-key": "hmac-key",
    "refresh-token-key": "hmac-key",
    EVENT_KEYRING: "event-keyring",
    SEAL_KEY: "x25519-pem",
    SEAL_PUBLIC_KEY: "x25519-public-pem",
}


def secret_kind(name: str) -> str | None:
    if name.startswith(_EVENT_KEY_PREFIX):
        return "ed25519-pem"
    return SECRET_KINDS.get(name)


class SecretMissing(DependencyUnavailable):
    """A required secret file does not exist: a deployment mistake, answered 503 with the
    secret's name (never its value) until the secret is mounted."""

    def __init__(self, name: str, directory: Path) -> None:
        super().__init__("secrets", f"secret {name!r} is not mounted under {directory}")


class SecretUnreadable(DependencyUnavailable):
    """A secret file exists but this process may not read it (a bind mount with the host
    file's mode, as docker-compose makes): a deployment mistake, answered 503 like a
    missing one."""

    def __init__(self, name: str, directory: Path) -> None:
        super().__init__("secrets", f"secret {name!r} under {directory} is not readable by "
                                    "this process (check the file's mode and owner)")


class Secrets:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self, name: str, default: str | None = None) -> str:
        if secret_kind(name) is None:
            raise KeyError(f"unknown secret {name!r}: add it to scanline.secrets.SECRET_KINDS")
        path = self.directory / name
        if path.is_dir():
            # Kubernetes projects keys as files plus dot-prefixed bookkeeping entries.
            keys = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            path = path / name if (path / name).exists() or not keys else keys[0]
        try:
            return path.read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            if default is not None:
                return default
            raise SecretMissing(name, self.directory) from None
        except PermissionError:
            raise SecretUnreadable(name, self.directory) from None
