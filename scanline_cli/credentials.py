"""Where the CLI keeps a session: one JSON file, readable by its owner alone.

Tokens are stored per gateway (a local stack and a cluster are two accounts), written
with mode 0600 through a temporary file and a rename, so a crash never leaves half a file
and no other user can read them at any moment. ``SCANLINE_CONFIG_DIR`` moves the folder
(tests, several identities); by default it is the platform's user config folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from scanline_cli import files

FILE_NAME = "credentials.json"


def config_dir() -> Path:
    return Path(os.environ.get("SCANLINE_CONFIG_DIR") or click.get_app_dir("scanline"))


@dataclass
class Session:
    """What one gateway's login left: the tokens, and the address they belong to."""

    email: str
    access_token: str = ""
    refresh_token: str = ""
    # The sign-up waiting for its code (``scanline verify``): no tokens yet.
    pending: bool = False


class Store:
    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or config_dir()) / FILE_NAME

    def _all(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{self.path} cannot be read ({exc}); delete it and "
                                       "log in again") from None

    def get(self, gateway: str) -> Session | None:
        entry = self._all().get(gateway)
        return Session(**entry) if entry else None

    def put(self, gateway: str, session: Session) -> None:
        everything = self._all()
        everything[gateway] = asdict(session)
        self._write(everything)

    def forget(self, gateway: str) -> None:
        everything = self._all()
        if everything.pop(gateway, None) is not None:
            self._write(everything)

    def _write(self, everything: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.replace(self.path, json.dumps(everything, indent=2).encode(), mode=0o600)
