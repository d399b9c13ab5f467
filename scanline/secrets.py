"""Secrets are files, never environment variables.

OpenFaaS on Kubernetes mounts ``/var/openfaas/secrets/<name>`` as a file, while
``faas-cli generate`` for Knative mounts each secret as a directory holding one file per
key. ``read`` accepts both so the same image runs on either platform.
"""

from __future__ import annotations

from pathlib import Path

# Every secret the code reads, with the kind of value a generator must produce.
# stack.yml, the Knative manifests and the local secret generator are checked against this.
SECRET_KINDS: dict[str, str] = {
    "postgres-password": "password",
    "rabbitmq-password": "password",
    "s3-access-key": "access-key",
    "s3-secret-key": "password",
    "smtp-password": "password",
    "jwt-signing-key": "ed25519-pem",
    "jwt-previous-signing-key": "ed25519-pem",
    "otp-hmac-key": "hmac-key",
}


class SecretMissing(LookupError):
    """A required secret file does not exist (a deployment mistake, not a transient fault)."""


class Secrets:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self, name: str, default: str | None = None) -> str:
        if name not in SECRET_KINDS:
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
            raise SecretMissing(f"secret {name!r} not found under {self.directory}") from None
