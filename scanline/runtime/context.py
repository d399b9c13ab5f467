"""The invocation context handed to ``handle(event, context)`` and the handler's result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import FileStorage

from scanline.bootstrap import Container


@dataclass
class Context:
    deps: Container
    method: str = "POST"
    # The sub-path after /function/<name>, always starting with "/".
    path: str = "/"
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, FileStorage] = field(default_factory=dict)

    @property
    def function(self) -> str:
        return self.deps.settings.function_name

    def bearer_token(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None


@dataclass
class Response:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
