"""Views receive what they use by parameter name, resolved when the app is built.

A view's parameters are read once, at start-up, and each name must be one the runtime
knows: a per-call value (``body``, ``query``, ``headers``, ``files``, ``request``,
``caller`` and path variables for HTTP operations; ``event`` and ``envelope`` for event
handlers; ``uow`` for both) or a process-wide dependency of
``scanline.bootstrap.PROVIDERS``. An unknown name, or ``caller`` on an operation that does
not require a token, fails the start of the function with a message naming the view,
never a request later. What the views use also decides
what ``/_/ready`` checks: nobody keeps a list of dependencies by hand.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scanline.bootstrap import PROVIDERS, Container
from scanline.runtime.routing import EventHandler, Operation, Routes

HTTP_VALUES = frozenset({"body", "query", "headers", "files", "request", "uow"})
EVENT_VALUES = frozenset({"event", "envelope", "uow"})


class StartupError(TypeError):
    """A view asks for something the runtime cannot give it."""


@dataclass(frozen=True)
class Plan:
    """How to call one view: the per-call values it takes and the dependencies it uses."""

    view: Callable[..., Any]
    per_call: tuple[str, ...]
    dependencies: tuple[str, ...]

    def call(self, container: Container, values: Mapping[str, Callable[[], Any]]) -> Any:
        """Call the view; ``values`` builds each per-call value only if the view takes it."""
        arguments = {name: values[name]() for name in self.per_call}
        arguments.update({name: PROVIDERS[name].get(container) for name in self.dependencies})
        return self.view(**arguments)


def _plan(view: Callable[..., Any], allowed: Iterable[str], where: str) -> Plan:
    allowed = frozenset(allowed)
    per_call, dependencies = [], []
    for name, parameter in inspect.signature(view).parameters.items():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise StartupError(f"{where}: *args/**kwargs cannot be injected ({name})")
        if name in allowed:
            per_call.append(name)
        elif name in PROVIDERS:
            dependencies.append(name)
        else:
            known = sorted(allowed | set(PROVIDERS))
            raise StartupError(f"{where} takes {name!r}, which is neither a value of its call "
                               f"nor a dependency; known: {', '.join(known)}")
    return Plan(view, tuple(per_call), tuple(dependencies))


def plan_operation(function: str, op: Operation) -> Plan:
    allowed = HTTP_VALUES | set(op.path_parameters) | ({"caller"} if op.auth else set())
    return _plan(op.view, allowed, f"{function}: {op.view.__name__} ({op.rule})")


def plan_event(function: str, handler: EventHandler) -> Plan:
    return _plan(handler.view, EVENT_VALUES,
                 f"{function}: {handler.view.__name__} ({handler.payload.TYPE})")


def plan_hook(function: str, hook: Callable[..., Any]) -> Plan:
    return _plan(hook, (), f"{function}: {hook.__name__} (on_start)")


def readiness(routes: Routes, plans: Iterable[Plan]) -> tuple[str, ...]:
    """The dependencies ``/_/ready`` checks: what the views use, and the broker and the
    event keys when the function emits or receives events (and the sealing keys when
    they are sealed)."""
    checks: list[str] = []
    for plan in plans:
        if "uow" in plan.per_call:
            checks.append("db")
        for name in plan.dependencies:
            checks.extend(PROVIDERS[name].needs)
    emitted = {payload for _, emits in routes.views() for payload in emits}
    if emitted:
        checks += ["bus", "event-signing-key"]
    if any(payload.SEALED for payload in emitted):
        checks.append("seal-public-key")
    if routes.events:
        checks.append("event-keyring")
    if any(handler.payload.SEALED for handler in routes.events.values()):
        checks.append("seal-key")
    return tuple(dict.fromkeys(checks))
