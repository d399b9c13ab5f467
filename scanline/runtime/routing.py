"""Sub-path routing for functions that serve more than one operation (token, ocr-jobs),
on werkzeug's router so rules, converters and 405s behave as in any Flask app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import MethodNotAllowed as _MethodNotAllowed
from werkzeug.exceptions import NotFound as _NotFound
from werkzeug.routing import Map, Rule

from scanline.errors import MethodNotAllowed, NotFound
from scanline.events import Event
from scanline.runtime.context import Context

View = Callable[..., Any]


class Routes:
    def __init__(self) -> None:
        self._map = Map(strict_slashes=False)
        self._views: dict[str, View] = {}

    def route(self, rule: str, *methods: str) -> Callable[[View], View]:
        def register(view: View) -> View:
            self._map.add(Rule(rule, endpoint=view.__name__, methods=list(methods)))
            self._views[view.__name__] = view
            return view
        return register

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
