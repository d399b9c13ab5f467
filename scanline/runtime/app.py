"""The Flask app every function runs in: request → CloudEvent → handler → response.

A request carrying a CloudEvent (``ce-*`` headers, or a structured body, also when a
connector labels it ``text/plain``) is an *event delivery*: its answer follows the broker
contract (200 done, 4xx never retry, 5xx retry). Any other request is a plain call; an
event with a fresh id is synthesised for it and its answer is the handler's own status.
Errors are RFC 9457 problem details either way. On Knative (``EVENT_SINK=reply``) a
delivery sent with ``Prefer: reply`` gets the first event it emitted back as the answer.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from flask import Flask, Request, request
from flask import Response as FlaskResponse
from werkzeug.exceptions import HTTPException

from scanline import events, logs
from scanline.adapters.bus import ReplyPublisher
from scanline.bootstrap import Container
from scanline.errors import BadRequest, DependencyUnavailable, PayloadTooLarge, ScanlineError
from scanline.events import Event
from scanline.runtime import openapi
from scanline.runtime.context import Context, Response
from scanline.runtime.routing import Routes

log = logging.getLogger("scanline.runtime")

PROBLEM_TYPE = "urn:scanline:problem:"
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
Handler = Callable[[Event, Context], Any]


def problem(status: int, title: str, detail: str, *, slug: str | None = None,
            errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> FlaskResponse:
    body: dict[str, Any] = {"type": PROBLEM_TYPE + (slug or str(status)), "title": title,
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return FlaskResponse(json.dumps(body), status=status, headers=headers,
                         content_type="application/problem+json")


def _plain_data(req: Request, body: bytes) -> Any:
    media = req.mimetype
    if req.files or media == "multipart/form-data":
        return req.form.to_dict()
    if media == "application/x-www-form-urlencoded":
        return req.form.to_dict()
    if not body:
        return None
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None
    return body


def to_event(req: Request) -> Event:
    """The CloudEvent a request carries, or one synthesised for a plain call."""
    # A multipart body is parsed as a stream into req.form / req.files, never read whole.
    multipart = req.mimetype == "multipart/form-data"
    body = b"" if multipart else req.get_data(cache=True)
    if any(name.lower().startswith("ce-") for name, _ in req.headers.items()):
        return events.parse_binary(dict(req.headers), body)
    if body and events.looks_structured(req.content_type or "", body):
        return events.parse_structured(body)
    return Event(id=str(uuid.uuid4()), source=f"/gateway{req.path}", type=events.HTTP_REQUEST,
                 data=_plain_data(req, body), time=datetime.now(UTC),
                 datacontenttype=req.mimetype or None,
                 extensions={"traceparent": events.child_traceparent(
                     req.headers.get("traceparent"))},
                 synthesised=True)


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


def create_app(handler: ModuleType, container: Container) -> Flask:
    """Build the app once per process; the handler module's ``handle`` serves every call.

    ``handler.DEPENDS_ON`` (optional) names the adapters ``/_/ready`` checks;
    ``handler.routes`` (optional) is also served as the function's OpenAPI document;
    ``handler.on_start`` (optional) runs once here.
    """
    settings = container.settings
    app = Flask(settings.function_name)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = min(settings.max_request_bytes, 1024 * 1024)
    depends_on: tuple[str, ...] = tuple(getattr(handler, "DEPENDS_ON", ()))
    if {"db", "bus"} <= set(depends_on):
        # Relay what an earlier process left in the outbox, even if this one never emits.
        container.outbox.start()
    # Optional ``handler.on_start(container)``: start-up facts worth a log line (ocr says
    # which engine it runs). It must not connect to anything, like the rest of start-up.
    if hasattr(handler, "on_start"):
        handler.on_start(container)

    @app.get("/_/health")
    def health() -> FlaskResponse:
        return FlaskResponse(json.dumps({"status": "ok"}), content_type="application/json")

    @app.get("/_/ready")
    def ready() -> FlaskResponse:
        checks: dict[str, str] = {}
        for name in depends_on:
            try:
                container.ping(name)
                checks[name] = "up"
            except DependencyUnavailable as exc:
                checks[name] = f"down: {exc.detail}"
        ok = all(v == "up" for v in checks.values())
        return FlaskResponse(json.dumps({"status": "ok" if ok else "unavailable",
                                         "dependencies": checks}),
                             status=200 if ok else 503, content_type="application/json")

    routes = getattr(handler, "routes", None)
    if isinstance(routes, Routes):
        spec = openapi.function_document(settings.function_name, routes, settings.public_url)

        @app.get("/openapi.json")
        def openapi_document() -> FlaskResponse:
            return FlaskResponse(json.dumps(spec), content_type="application/json")

    @app.route("/", defaults={"path": ""}, methods=ALL_METHODS)
    @app.route("/<path:path>", methods=ALL_METHODS)
    def invoke(path: str) -> FlaskResponse:
        limit = settings.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        event = to_event(request)
        context = Context(deps=container, method=request.method, path="/" + path,
                          query=request.args.to_dict(), headers=dict(request.headers),
                          files=request.files.to_dict())
        delivery = not event.synthesised
        with logs.invocation(event.id, event.traceparent), \
                _reply_slot(container, delivery and "reply" in request.headers.get("Prefer", "")
                            ) as reply:
            response = _to_flask(handler.handle(event, context), delivery)
        if reply and response.status_code == 200:
            headers, body = events.parse_structured(reply[0]).to_binary()
            return FlaskResponse(body, status=200, headers=headers)
        return response

    @app.errorhandler(ScanlineError)
    def domain_error(exc: ScanlineError) -> FlaskResponse:
        level = logging.WARNING if exc.status >= 500 else logging.INFO
        log.log(level, "%s %s: %s", request.method, request.path, exc.detail)
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
        return problem(500, "Internal error", "the function failed; the error was logged",
                       slug="internal")

    return app
