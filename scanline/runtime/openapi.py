"""OpenAPI 3.1 documents built from the functions' declared routes.

Each function serves its own at ``/openapi.json`` (through the gateway:
``/function/<name>/openapi.json``); ``document`` also combines several functions' routes
into one document for the whole gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from scanline.runtime.routing import OAUTH2, Operation, Routes

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "properties": {"pointer": {"type": "string"},
                                             "detail": {"type": "string"}}}},
    },
}
# RFC 6749 §5.2, what the OAuth 2.0 endpoints answer instead of a problem document.
OAUTH_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_PARAMETER_SCHEMAS = {"uuid": {"type": "string", "format": "uuid"},
                      "int": {"type": "integer"}, None: {"type": "string"}}


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": _PARAMETER_SCHEMAS.get(converter or None, {"type": "string"})}
                  for converter, name in _CONVERTER.findall(rule)]
    return _CONVERTER.sub(r"{\2}", rule), parameters


def _operation(function: str, op: Operation, method: str) -> dict[str, Any]:
    _, parameters = _path(op.rule)
    parameters += [{"name": name, "in": "query", "required": False, "schema": dict(schema)}
                   for name, schema in op.query.items()]
    parameters += [{"name": name, "in": "header", "required": False, "schema": dict(schema)}
                   for name, schema in op.headers.items()]
    responses: dict[str, Any] = {}
    for status, schema in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": f"{status}"}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": dict(schema)}}
        responses[str(status)] = entry
    if op.errors == OAUTH2:
        responses["default"] = {"description": "An RFC 6749 error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}}
    else:
        responses["default"] = {"description": "An RFC 9457 problem",
                                "content": {"application/problem+json": {
                                    "schema": {"$ref": "#/components/schemas/Problem"}}}}
    # One view may answer several methods (userinfo: GET and POST); an id names one.
    name = op.view.__name__ if len(op.methods) == 1 else f"{op.view.__name__}_{method.lower()}"
    document: dict[str, Any] = {"operationId": f"{function}.{name}", "responses": responses}
    if op.summary:
        document["summary"] = op.summary.splitlines()[0]
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {"required": True, "content": {
            media: {"schema": dict(schema)} for media, schema in op.body.items()}}
    if op.auth:
        document["security"] = [{"bearer": []}]
    return document


def paths(function: str, routes: Routes, prefix: str = "") -> dict[str, Any]:
    result: dict[str, dict[str, Any]] = {}
    for op in routes.operations:
        path, _ = _path(op.rule)
        item = result.setdefault((prefix + path).rstrip("/") or "/", {})
        for method in op.methods:
            item[method.lower()] = _operation(function, op, method)
    return result


def document(functions: Iterable[tuple[str, Routes]], *, server: str,
             per_function: bool = False) -> dict[str, Any]:
    """One document; ``per_function`` drops the ``/function/<name>`` prefix (the server
    URL carries it) for the copy a single function serves."""
    collected: dict[str, Any] = {}
    for name, routes in functions:
        collected.update(paths(name, routes, "" if per_function else f"/function/{name}"))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Scanline", "version": "1.0.0",
                 "description": "HTTP functions of Scanline behind the OpenFaaS gateway."},
        "servers": [{"url": server}],
        "paths": collected,
        "components": {
            "schemas": {"Problem": PROBLEM, "OAuthError": OAUTH_ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
    }


def function_document(name: str, routes: Routes, public_url: str) -> Mapping[str, Any]:
    return document([(name, routes)], server=f"{public_url}/function/{name}",
                    per_function=True)
