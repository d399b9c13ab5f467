"""What a function declares: its HTTP operations and its event handlers.

A handler module builds one ``Routes`` and decorates its views:

- ``@routes.http(rule, *methods, body=..., query=..., auth=..., emits=...)``: an HTTP
  operation on werkzeug's router (rules, converters and 405s behave as in any Flask app).
  ``body`` maps each accepted media type to its JSON Schema, ``query`` each parameter to
  its schema; ``auth=True`` means a valid access token is required and the view may take
  ``caller``.
- ``@routes.event(PayloadType, emits=..., inbox=True)``: the handler of one event type.
  ``inbox`` (the default) makes the runtime claim the event id in the handler's own
  transaction, so a redelivered or replayed event has no second effect; a handler whose
  own state already decides duplicates (``ocr``: the job row) says ``inbox=False``.

Everything declared here is enforced by the runtime (``scanline.runtime.app``), not by the
views: schemas are compiled when declared and checked before a view runs, tokens and event
signatures are verified before it runs, and ``emits`` is the only set of events its unit of
work can emit. The same declarations produce the function's OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import MethodNotAllowed as _MethodNotAllowed
from werkzeug.exceptions import NotFound as _NotFound
from werkzeug.routing import Map, Rule

from scanline.errors import MethodNotAllowed, NotFound
from scanline.payloads import Payload
from scanline.validation import compiled

View = Callable[..., Any]
Schema = Mapping[str, Any]
# How an operation's errors are written: RFC 9457 problem documents, or, for the OAuth 2.0
# token and revocation endpoints, RFC 6749 §5.2 error responses.
PROBLEM, OAUTH2 = "problem", "oauth2"


@dataclass(frozen=True)
class Operation:
    rule: str
    methods: tuple[str, ...]
    view: View
    summary: str = ""
    # media type -> schema of the request body (None: the operation takes no body)
    body: Mapping[str, Schema] | None = None
    # status -> schema of the JSON body (None: no body); errors are problem documents
    responses: Mapping[int, Schema | None] = field(default_factory=lambda: {200: None})
    query: Mapping[str, Schema] = field(default_factory=dict)
    auth: bool = False
    emits: tuple[type[Payload], ...] = ()
    # The rule's variables (``<uuid:job_id>`` → ``job_id``), passed to the view by name.
    path_parameters: tuple[str, ...] = ()
    # All query parameters as one object schema (what ``query`` values are checked by).
    query_schema: Schema = field(default_factory=lambda: {"type": "object"})
    errors: str = PROBLEM
    # Request headers the view reads (``headers``), by their canonical name, checked as
    # one object schema like the query.
    headers: Mapping[str, Schema] = field(default_factory=dict)
    headers_schema: Schema = field(default_factory=lambda: {"type": "object"})
    # Every answer takes the same time (``UNIFORM_ANSWER_SECONDS``): for operations whose
    # timing must not tell one kind of address from another (scanline.runtime.app).
    uniform_time: bool = False


@dataclass(frozen=True)
class EventHandler:
    payload: type[Payload]
    view: View
    emits: tuple[type[Payload], ...] = ()
    inbox: bool = True


class Routes:
    def __init__(self) -> None:
        self._map = Map(strict_slashes=False)
        self._operations: dict[str, Operation] = {}
        self.operations: list[Operation] = []
        self.events: dict[str, EventHandler] = {}
        self.start_hooks: list[View] = []

    def http(self, rule: str, *methods: str, summary: str = "",
             body: Mapping[str, Schema] | None = None,
             responses: Mapping[int, Schema | None] | None = None,
             query: Mapping[str, Schema] | None = None, auth: bool = False,
             emits: Sequence[type[Payload]] = (), errors: str = PROBLEM,
             headers: Mapping[str, Schema] | None = None,
             uniform_time: bool = False) -> Callable[[View], View]:
        for schema in [*(body or {}).values(), *(query or {}).values(),
                       *(headers or {}).values()]:
            compiled(schema)  # a broken schema fails at start-up, not at the first request

        def register(view: View) -> View:
            endpoint = view.__name__
            if endpoint in self._operations:
                raise ValueError(f"two operations are named {endpoint}")
            werkzeug_rule = Rule(rule, endpoint=endpoint, methods=list(methods))
            self._map.add(werkzeug_rule)
            operation = Operation(rule, tuple(methods), view,
                                  summary or (view.__doc__ or "").strip(), body,
                                  dict(responses or {200: None}), dict(query or {}), auth,
                                  tuple(emits), tuple(sorted(werkzeug_rule.arguments)),
                                  {"type": "object", "properties": dict(query or {})},
                                  errors, dict(headers or {}),
                                  {"type": "object", "properties": dict(headers or {})},
                                  uniform_time)
            compiled(operation.query_schema)
            compiled(operation.headers_schema)
            self._operations[endpoint] = operation
            self.operations.append(operation)
            return view
        return register

    def event(self, payload: type[Payload], *, emits: Sequence[type[Payload]] = (),
              inbox: bool = True) -> Callable[[View], View]:
        def register(view: View) -> View:
            if payload.TYPE in self.events:
                raise ValueError(f"{payload.TYPE} has two handlers")
            self.events[payload.TYPE] = EventHandler(payload, view, tuple(emits), inbox)
            return view
        return register

    def on_start(self, hook: View) -> View:
        """Run ``hook`` once when the app is built (it takes dependencies by name, like a
        view, and must not connect to anything: nothing does at start-up)."""
        self.start_hooks.append(hook)
        return hook

    def rules(self) -> list[Rule]:
        """The werkzeug rules dispatch matches against (the OpenAPI test compares them)."""
        return list(self._map.iter_rules())

    def match(self, path: str, method: str) -> tuple[Operation, dict[str, Any]]:
        try:
            endpoint, args = self._map.bind("function").match(path, method)
        except _MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or []))
            raise MethodNotAllowed(f"{method} is not allowed on {path}",
                                   headers={"Allow": allowed}) from None
        except _NotFound:
            raise NotFound(f"no operation at {path}") from None
        return self._operations[endpoint], args

    def views(self) -> list[tuple[View, tuple[type[Payload], ...]]]:
        """Every view with the events it may emit (the runtime plans injection from these)."""
        return ([(op.view, op.emits) for op in self.operations]
                + [(h.view, h.emits) for h in self.events.values()]
                + [(hook, ()) for hook in self.start_hooks])
