"""The Flask app every function runs in: it enforces what the handler module declares.

A handler module exposes ``routes`` (``scanline.runtime.routing``). Every request is one of:

- an **event delivery** (``ce-*`` headers, or a structured body, also when a connector
  labels it ``text/plain``): the envelope is parsed, the signature verified (401 for an
  event that is unsigned, tampered, signed with an unknown key, or by a function not
  allowed to emit its type), the handler of its type found, its data checked against the
  type's schema, its id claimed in the handler's transaction (a duplicate answers 200 and
  does nothing), and the answer follows the broker contract: 200 done, 4xx never retry
  (dead-letter at once), 5xx retry;
- a **plain call**: the operation is routed by path and method, its body and query are
  checked against the declared schemas, the bearer token verified where it says ``auth``,
  and the view gets the result by parameter name. An operation declared ``uniform_time``
  answers no sooner than ``UNIFORM_ANSWER_SECONDS`` after the call began, whatever it
  answers (errors included): equal work alone does not give equal times on a shared CPU,
  where one password hash varies by tens of milliseconds.

Errors are RFC 9457 problem details either way. On Knative (``EVENT_SINK=reply``) a
delivery sent with ``Prefer: reply`` gets the first event it emitted back as the answer.
Nothing is validated, verified or looked up by a view itself.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from flask import Flask, Request, g, request
from flask import Response as FlaskResponse
from werkzeug.exceptions import HTTPException

from scanline import events, logs, tracing
from scanline.adapters.bus import ReplyPublisher
from scanline.bootstrap import PROVIDERS, Container
from scanline.errors import BadRequest, DependencyUnavailable, PayloadTooLarge, ScanlineError
from scanline.runtime import inputs, metrics, oauth, openapi
from scanline.runtime.client_address import client_address, parse_networks
from scanline.runtime.context import Call, Response
from scanline.runtime.injection import Plan, plan_event, plan_hook, plan_operation, readiness
from scanline.runtime.routing import OAUTH2, Operation, Routes

log = logging.getLogger("scanline.runtime")

PROBLEM_TYPE = "urn:scanline:problem:"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def problem(status: int, title: str, detail: str, *, slug: str | None = None,
            errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> FlaskResponse:
    body: dict[str, Any] = {"type": PROBLEM_TYPE + (slug or str(status)), "title": title,
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return FlaskResponse(json.dumps(body), status=status, headers=headers,
                         content_type="application/problem+json")


def _to_flask(result: Any, delivery: bool) -> FlaskResponse:
    response = result if isinstance(result, Response) else Response(body=result)
    status = response.status
    if delivery and 200 <= status < 300:
        status = 200  # connectors treat anything but 200 as a failure to retry
    body = response.body
    if body is None:
        payload: bytes | str = b""
    elif isinstance(body, (bytes, str)):
        payload = body
    else:
        payload = json.dumps(body)
    return FlaskResponse(payload, status=status, headers=response.headers,
                         content_type=response.content_type)


@contextmanager
def _reply_slot(container: Container, wanted: bool) -> Iterator[list[bytes] | None]:
    """Collect the event to send back as the reply, where the broker asked for one."""
    publisher = container.publisher if wanted else None
    if isinstance(publisher, ReplyPublisher):
        with publisher.collect() as slot:
            yield slot
    else:
        yield None


class Function:
    """A handler module's routes, planned against a container (built once per process)."""

    def __init__(self, handler: ModuleType, container: Container) -> None:
        self.container = container
        self.name = container.settings.function_name
        self.proxies = parse_networks(container.settings.trusted_proxies)
        routes = getattr(handler, "routes", None)
        if not isinstance(routes, Routes):
            raise TypeError(f"{handler.__name__} must define `routes = Routes()`")
        self.routes = routes
        self.operations = {op.view.__name__: plan_operation(self.name, op)
                           for op in routes.operations}
        self.event_plans = {t: plan_event(self.name, h) for t, h in routes.events.items()}
        hooks = [plan_hook(self.name, hook) for hook in routes.start_hooks]
        self.readiness = readiness(routes, [*self.operations.values(),
                                            *self.event_plans.values(), *hooks])
        if any(emits for _, emits in routes.views()):
            # Relay what an earlier process left in the outbox, even if this one never emits.
            container.outbox.start()
        used = {name for plan in [*self.operations.values(), *self.event_plans.values(), *hooks]
                for name in plan.dependencies}
        for name in sorted(used):
            if PROVIDERS[name].warm is not None:
                PROVIDERS[name].warm(PROVIDERS[name].get(container))
        for hook in hooks:
            hook.call(container, {})

    # --- event deliveries ----------------------------------------------------------------
    def deliver(self, req: Request, body: bytes) -> FlaskResponse:
        headers = dict(req.headers)
        if events.is_binary(headers):
            event = events.parse_binary(headers, body)
        else:
            event = events.parse_structured(body)
        g.event_type = event.type
        with tracing.span(f"event {event.type}", event.traceparent,
                          **{"cloudevents.event_id": event.id}) as traceparent, \
                logs.invocation(event.id, traceparent or event.traceparent), \
                _reply_slot(self.container, "reply" in req.headers.get("Prefer", "")) as reply:
            response = _to_flask(self._handle_event(event), delivery=True)
        if reply and response.status_code == 200:
            headers, reply_body = events.parse_structured(reply[0]).to_binary()
            return FlaskResponse(reply_body, status=200, headers=headers)
        return response

    def _handle_event(self, event: events.Event) -> Any:
        if not self.routes.events:
            raise BadRequest(f"{self.name} handles no events; call it over HTTP")
        producer = self.container.event_verifier.verify(event)  # before anything else
        handler = self.routes.events.get(event.type)
        if handler is None:
            raise BadRequest(f"{self.name} does not handle {event.type} events")
        data = event.data
        if handler.payload.SEALED:  # opened only after the signature held
            data = self.container.opener.open(event.type, data)
        payload = handler.payload.from_data(data)
        uow = self.container.unit_of_work(handler.emits)
        plan = self.event_plans[event.type]
        values = {"event": lambda: payload, "envelope": lambda: event, "uow": lambda: uow}
        log.debug("event from %s", producer)
        if not handler.inbox:
            return plan.call(self.container, values)
        with uow:
            if not uow.inbox.claim(event.id):
                g.duplicate = True
                return Response({"status": "duplicate", "id": event.id})
            return plan.call(self.container, values)

    # --- plain calls ---------------------------------------------------------------------
    def call(self, req: Request, path: str) -> FlaskResponse:
        op, arguments = self.routes.match(path, req.method)
        g.error_format, g.route = op.errors, op.rule
        plan = self.operations[op.view.__name__]
        call_id = req.headers.get("X-Call-Id") or str(uuid.uuid4())
        parent = req.headers.get("traceparent")
        with self._answer_time(op), tracing.span(f"{req.method} {op.rule}", parent) as traced, \
                logs.invocation(call_id, traced or events.child_traceparent(parent)):
            return _to_flask(plan.call(self.container, self._values(op, plan, req, path,
                                                                     arguments)),
                             delivery=False)

    @contextmanager
    def _answer_time(self, op: Operation) -> Iterator[None]:
        """Hold a ``uniform_time`` operation's answer, or error, until its time is up."""
        if not op.uniform_time:
            yield
            return
        due = time.monotonic() + self.container.settings.uniform_answer_seconds
        try:
            yield
        finally:
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
            else:
                metrics.UNIFORM_OVERRUNS.labels(op.rule).inc()
                log.warning("%s answered %.0f ms after UNIFORM_ANSWER_SECONDS: its timing may "
                            "tell; raise the setting", op.rule, -left * 1000)

    def _values(self, op: Operation, plan: Plan, req: Request, path: str,
                arguments: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {name: (lambda v=value: v) for name, value in arguments.items()}
        values.update({
            "body": lambda: inputs.body(op, req),
            "query": lambda: inputs.query(op, req.args),
            "headers": lambda: inputs.headers(op, req.headers),
            "files": lambda: req.files.to_dict(),
            "request": lambda: Call(req.method, path, dict(req.headers), client_address(
                req.remote_addr or "", req.headers.get("X-Forwarded-For", ""), self.proxies)),
            "uow": lambda: self.container.unit_of_work(op.emits),
        })
        if op.auth:
            # Verified before the body is even read, and whether or not the view uses it.
            caller = self.container.tokens.verify(_bearer(req))
            values["caller"] = lambda: caller
        if op.body is not None and "body" not in plan.per_call:
            inputs.body(op, req)  # declared, so checked, even if the view does not read it
        return values


def _bearer(req: Request) -> str | None:
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def create_app(handler: ModuleType, container: Container) -> Flask:
    """Build the app once per process from the handler module's ``routes``."""
    settings = container.settings
    function = Function(handler, container)
    app = Flask(settings.function_name)
    metrics.instrument(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = min(settings.max_request_bytes, 1024 * 1024)

    @app.get("/_/health")
    def health() -> FlaskResponse:
        return FlaskResponse(json.dumps({"status": "ok"}), content_type="application/json")

    @app.get("/_/ready")
    def ready() -> FlaskResponse:
        checks: dict[str, str] = {}
        for name in function.readiness:
            try:
                container.ping(name)
                checks[name] = "up"
            except DependencyUnavailable as exc:
                checks[name] = f"down: {exc.detail}"
        ok = all(v == "up" for v in checks.values())
        return FlaskResponse(json.dumps({"status": "ok" if ok else "unavailable",
                                         "dependencies": checks}),
                             status=200 if ok else 503, content_type="application/json")

    if function.routes.operations:
        spec = openapi.function_document(settings.function_name, function.routes,
                                         settings.public_url)

        @app.get("/openapi.json")
        def openapi_document() -> FlaskResponse:
            return FlaskResponse(json.dumps(spec), content_type="application/json")

    @app.route("/", defaults={"path": ""}, methods=ALL_METHODS)
    @app.route("/<path:path>", methods=ALL_METHODS)
    def invoke(path: str) -> FlaskResponse:
        limit = settings.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        # A multipart body is parsed as a stream into request.form/files, never read whole.
        body = b"" if request.mimetype == "multipart/form-data" else request.get_data(cache=True)
        if events.carries_event(dict(request.headers), request.content_type or "", body):
            return function.deliver(request, body)
        return function.call(request, "/" + path)

    @app.after_request
    def no_store(response: FlaskResponse) -> FlaskResponse:
        if g.get("error_format") == OAUTH2:  # RFC 6749 §5.1: token answers are not cached
            response.headers.update(oauth.NO_STORE)
        return response

    @app.errorhandler(ScanlineError)
    def domain_error(exc: ScanlineError) -> FlaskResponse:
        level = logging.WARNING if exc.status >= 500 else logging.INFO
        log.log(level, "%s %s: %s", request.method, request.path, exc.detail)
        if g.get("error_format") == OAUTH2:
            return oauth.error_response(exc)
        return problem(exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors,
                       headers=exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> FlaskResponse:
        status = exc.code or 500
        if status == 413:
            return problem(413, "Payload too large",
                           f"request body is over the {settings.max_request_bytes}-byte limit",
                           slug=PayloadTooLarge.slug)
        return problem(status, exc.name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> FlaskResponse:
        log.exception("unhandled error in %s", settings.function_name)
        if g.get("error_format") == OAUTH2:
            return oauth.error_response(None)
        return problem(500, "Internal error", "the function failed; the error was logged",
                       slug="internal")

    return app
