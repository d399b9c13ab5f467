"""Count mails in the sink by a key (event id, recipient, job), for the fault suite's tallies.

``Mailbox`` answers "is there a mail like this" with whole parsed messages; a fault case
asks "how many mails per item" over hundreds of items, many times a second, among thousands
of earlier mails. ``MailIndex`` reads only the headers it needs, once per file, and counts
from memory.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    event_id: str  # X-Scanline-Event-Id: the email.requested event it was sent for


class MailIndex:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen: dict[str, Mail] = {}
        self._parser = BytesHeaderParser(policy=policy.default)

    def refresh(self) -> list[Mail]:
        for path in self.directory.glob("*.eml"):
            if path.name not in self._seen:
                try:
                    headers = self._parser.parsebytes(path.read_bytes())
                except FileNotFoundError:  # cleared meanwhile
                    continue
                self._seen[path.name] = Mail(str(headers["To"] or "").lower(),
                                             str(headers["Subject"] or ""),
                                             str(headers["X-Scanline-Event-Id"] or ""))
        return list(self._seen.values())

    def count(self, key: Callable[[Mail], str | None]) -> Counter[str]:
        """Mails grouped by ``key`` (mails for which it returns None are left out)."""
        return Counter(k for mail in self.refresh() if (k := key(mail)) is not None)

    def wait_for_all(self, expected: Iterable[str], key: Callable[[Mail], str | None], *,
                     timeout: float, settle: float = 2.0) -> Counter[str]:
        """Wait until every expected key has a mail (or ``timeout``), then ``settle`` seconds
        more so late duplicates show up too; returns the counts of the expected keys."""
        wanted = set(expected)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wanted <= set(self.count(key)):
                break
            time.sleep(0.25)
        time.sleep(settle)
        counts = self.count(key)
        return Counter({k: counts[k] for k in wanted if counts[k]})
