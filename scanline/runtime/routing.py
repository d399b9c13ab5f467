"""Sub-path routing for a function's operations, on werkzeug's router so rules,
converters and 405s behave as in any Flask app.

Each route also declares what the operation accepts and answers (JSON Schemas); the same
declarations validate requests and produce the function's OpenAPI document, so the
document cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import MethodNotAllowed as _MethodNotAllowed
from werkzeug.exceptions import NotFound as _NotFound
from werkzeug.routing import Map, Rule

from scanline.errors import MethodNotAllowed, NotFound
from scanline.events import Event
from scanline.runtime.context import Context

View = Callable[..., Any]
Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Operation:
    rule: str
    methods: tuple[str, ...]
    view: View
    summary: str = ""
    # media type -> schema of the request body (None: the operation takes no body)
    request: Mapping[str, Schema] | None = None
    # status -> schema of the JSON body (None: no body); errors are problem documents
    responses: Mapping[int, Schema | None] = field(default_factory=lambda: {200: None})
    query: Mapping[str, Schema] = field(default_factory=dict)
    auth: bool = False


class Routes:
    def __init__(self) -> None:
        self._map = Map(strict_slashes=False)
        self._views: dict[str, View] = {}
        self.operations: list[Operation] = []

    def route(self, rule: str, *methods: str, summary: str = "",
              request: Mapping[str, Schema] | None = None,
              responses: Mapping[int, Schema | None] | None = None,
              query: Mapping[str, Schema] | None = None,
              auth: bool = False) -> Callable[[View], View]:
        def register(view: View) -> View:
            self._map.add(Rule(rule, endpoint=view.__name__, methods=list(methods)))
            self._views[view.__name__] = view
            self.operations.append(Operation(
                rule, tuple(methods), view, summary or (view.__doc__ or "").strip(),
                request, dict(responses or {200: None}), dict(query or {}), auth))
            return view
        return register

    def rules(self) -> list[Rule]:
        """The werkzeug rules dispatch matches against (the OpenAPI test compares them)."""
        return list(self._map.iter_rules())

    def dispatch(self, event: Event, context: Context) -> Any:
        try:
            endpoint, args = self._map.bind("function").match(context.path, context.method)
        except _MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or []))
            raise MethodNotAllowed(f"{context.method} is not allowed on {context.path}",
                                   headers={"Allow": allowed}) from None
        except _NotFound:
            raise NotFound(f"no operation at {context.path}") from None
        return self._views[endpoint](event, context, **args)
