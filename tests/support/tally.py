"""sent / delivered / lost / duplicated: the figures every fault case reports.

``sent`` is what the system accepted responsibility for (a 202, a confirmed publish);
``delivered`` how many of those reached their end (a mail, a finished job) at least once;
``lost`` the rest; ``duplicated`` every delivery beyond the first of the same item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Tally:
    case: str
    sent: int
    delivered: int
    lost: int
    duplicated: int
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, case: str, sent: Iterable[str], deliveries: Counter[str],
           **notes: Any) -> Tally:
        """Compare the items sent with how often each was delivered."""
        items = set(sent)
        delivered = sum(1 for item in items if deliveries[item] > 0)
        duplicated = sum(deliveries[item] - 1 for item in items if deliveries[item] > 1)
        return cls(case, len(items), delivered, len(items) - delivered, duplicated,
                   notes=notes)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def line(self) -> str:
        return (f"{self.case}: sent {self.sent} / delivered {self.delivered} / "
                f"lost {self.lost} / duplicated {self.duplicated}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
