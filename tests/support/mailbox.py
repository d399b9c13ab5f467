"""Read what the SMTP sink stored: one .eml file per message under MAIL_DIR."""

from __future__ import annotations

import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        files = sorted(self.directory.glob("*.eml"), key=lambda p: p.stat().st_mtime)
        return [parser.parsebytes(p.read_bytes()) for p in files]  # type: ignore[misc]

    def matching(self, *, subject: str | None = None, to: str | None = None,
                 header: tuple[str, str] | None = None) -> list[EmailMessage]:
        def match(m: EmailMessage) -> bool:
            return ((subject is None or subject in str(m["Subject"]))
                    and (to is None or to.lower() in str(m["To"]).lower())
                    and (header is None or m[header[0]] == header[1]))
        return [m for m in self.messages() if match(m)]

    def wait_for(self, *, timeout: float = 10.0, **criteria: object) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(**criteria)  # type: ignore[arg-type]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail matching {criteria} within {timeout} s")
            time.sleep(0.05)
