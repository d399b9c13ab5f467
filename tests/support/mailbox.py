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
        # Each file is parsed once: the sink keeps every mail of every run, and parsing
        # thousands of them on each poll made "arrives within 2 s" checks fail.
        self._parsed: dict[Path, tuple[float, EmailMessage]] = {}
        self.messages()  # parse what is already there now, not inside a test's time window

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        found = []
        for path in self.directory.glob("*.eml"):
            try:
                mtime = path.stat().st_mtime
                if path not in self._parsed or self._parsed[path][0] != mtime:
                    message = parser.parsebytes(path.read_bytes())
                    self._parsed[path] = (mtime, message)  # type: ignore[assignment]
            except FileNotFoundError:  # cleared meanwhile
                continue
            found.append(self._parsed[path])
        return [message for _, message in sorted(found, key=lambda entry: entry[0])]

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
