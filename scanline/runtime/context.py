"""What a view may receive about its call (``request``) and what it returns (``Response``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """The HTTP call a view serves, for the few views that need more than their body."""

    method: str
    # The sub-path after /function/<name>, always starting with "/".
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    # The client's address as the gateway saw it (its peer, or a configured proxy's
    # X-Forwarded-For), never a value the client chose.
    client: str = ""


@dataclass
class Response:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
