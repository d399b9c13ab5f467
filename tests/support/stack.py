"""The running local stack as tests see it: URLs, credentials and its supervisor."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / ".local"


@dataclass(frozen=True)
class Stack:
    # SCANLINE_GATEWAY points the e2e suite at another gateway (a second local one, compose).
    gateway: str = field(default_factory=lambda: os.environ.get("SCANLINE_GATEWAY",
                                                                "http://127.0.0.1:8080"))
    secrets_dir: Path = LOCAL / "secrets"
    mail_dir: Path = LOCAL / "mail"

    def function_url(self, name: str) -> str:
        """The function's own address, where its watchdog listens: what the OpenFaaS
        gateway forwards every public call to (the local gateway hides event-only ones)."""
        from infra.local.stackfile import load

        return f"http://127.0.0.1:{load().functions[name].port}"

    def secret(self, name: str) -> str:
        return (self.secrets_dir / name).read_text().strip()

    @property
    def admin(self) -> tuple[str, str]:
        """The gateway administrator's basic auth: ``/system/*``, and which function or
        dependency ``/healthz`` finds down (a stranger gets the verdict alone)."""
        from infra.local.secretgen import gateway_admin

        return gateway_admin(self.secrets_dir)

    def health(self) -> dict[str, Any]:
        """The gateway's full health report."""
        import requests

        return requests.get(f"{self.gateway}/healthz", auth=self.admin, timeout=30).json()

    @property
    def amqp_url(self) -> str:
        password = quote(self.secret("rabbitmq-password"), safe="")
        return f"amqp://scanline:{password}@127.0.0.1:5672/%2F"

    def supervisorctl(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c",
             str(LOCAL / "supervisord.conf"), *args],
            capture_output=True, text=True, timeout=60)
        if result.returncode not in (0, 3):  # 3: a program is not running (status)
            raise RuntimeError(f"supervisorctl {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    def stop_program(self, name: str) -> None:
        self.supervisorctl("stop", name)

    def start_program(self, name: str) -> None:
        self.supervisorctl("start", name)
